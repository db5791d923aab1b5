"""The Qt host of the task runner: results come back to the GUI thread by a queued signal.

The lanes (app.tasks.ThreadLanes) are plain daemon threads; ``QtHost.post`` is called on a
lane's thread and emits a signal whose receiver lives in the GUI thread, so Qt queues the
callback there. Nothing here decides what to compute (app.planner does) or whether a result
still applies (app.tasks.TaskRunner.deliver does).
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Signal, Slot

from app.tasks import Lane, Task, TaskKind, TaskRunner, ThreadLanes


class QtHost(QObject):
    """Runs callbacks posted from any thread on the thread this object lives in."""

    _posted = Signal(object)
    busy_changed = Signal(bool)  # model work (load, analyse, ...) started or ended
    settled = Signal(object, str)  # Task, "done" | "failed" | "cancelled"

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._posted.connect(self._run)
        self.runner = TaskRunner(ThreadLanes(self._posted.emit))
        self.runner.listeners.append(self._on_settled)
        self._busy = False

    @Slot(object)
    def _run(self, callback: Callable[[], None]) -> None:
        callback()

    def _on_settled(self, task: Task, event: str) -> None:
        self.settled.emit(task, event)
        self.update_busy()

    def update_busy(self) -> None:
        busy = self.runner.is_busy(kinds=[k for k in TaskKind if k.lane is Lane.MODEL and k is not TaskKind.WARM_UP])
        if busy != self._busy:
            self._busy = busy
            self.busy_changed.emit(busy)

    def shutdown(self, timeout: float = 2.0) -> bool:
        """Cancel everything; wait at most ``timeout`` seconds for the lanes to stop."""
        return self.runner.shutdown(timeout)
