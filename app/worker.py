"""The background worker that owns the model, and the GUI-side client that talks to it.

One long-lived ``AtlasWorker`` QObject lives in a QThread; torch is imported there, never
in the GUI thread. Each request has a kind ("analyse", "graph", "flow", ...) and an id. The
newest request of a kind wins: a queued older one is skipped, a running older one stops at
its next step (the same check as the Cancel button), and a late result of an older one is
dropped by the client. Progress, results, failures and cancellations come back by signal.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal, Slot

from analysis.progress import Cancelled


@dataclass
class JobContext:
    """What a job function gets: report progress, ask whether to stop."""

    kind: str
    request_id: int
    report: Callable[[float, str], None]
    is_cancelled: Callable[[], bool]

    def check(self) -> None:
        """Raise ``Cancelled`` when the person cancelled or a newer request arrived."""
        if self.is_cancelled():
            raise Cancelled()

    def progress(self, fraction: float, message: str = "") -> None:
        self.check()
        self.report(fraction, message)


class AtlasWorker(QObject):
    """Runs job functions one at a time in its own thread."""

    progress = Signal(str, int, float, str)  # kind, request id, fraction 0..1, message
    finished = Signal(str, int, object)  # kind, request id, result
    failed = Signal(str, int, str)  # kind, request id, readable message
    cancelled = Signal(str, int)  # kind, request id

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._latest: dict[str, int] = {}
        self._cancelled: dict[str, int] = {}

    # Called from the GUI thread: plain, lock-protected bookkeeping, never queued.
    def mark_latest(self, kind: str, request_id: int) -> None:
        with self._lock:
            self._latest[kind] = request_id

    def cancel(self, kind: str, request_id: int) -> None:
        with self._lock:
            self._cancelled[kind] = max(request_id, self._cancelled.get(kind, -1))

    def _is_stale(self, kind: str, request_id: int) -> bool:
        with self._lock:
            return request_id != self._latest.get(kind) or request_id <= self._cancelled.get(kind, -1)

    @Slot(str, int, object)
    def run_job(self, kind: str, request_id: int, job: Callable[[JobContext], Any]) -> None:
        """Run ``job(context)`` unless it is already stale; report how it ended."""
        if self._is_stale(kind, request_id):
            self.cancelled.emit(kind, request_id)
            return
        context = JobContext(
            kind=kind,
            request_id=request_id,
            report=lambda fraction, message: self.progress.emit(kind, request_id, float(fraction), message),
            is_cancelled=lambda: self._is_stale(kind, request_id),
        )
        try:
            result = job(context)
            context.check()
        except Cancelled:
            self.cancelled.emit(kind, request_id)
        except MemoryError:
            self.failed.emit(kind, request_id, "Out of memory: try a shorter text or a smaller model.")
        except Exception as error:  # a readable message in the window, never a crash
            self.failed.emit(kind, request_id, readable_error(error))
        else:
            self.finished.emit(kind, request_id, result)


def readable_error(error: BaseException) -> str:
    """One or two lines a person can act on; the traceback goes to stderr for bug reports."""
    message = str(error).strip() or type(error).__name__
    known = ("ModelLoadError", "InputError", "ExportError", "ValueError", "FileNotFoundError")
    if type(error).__name__ not in known:
        traceback.print_exception(error)
        message = f"{type(error).__name__}: {message}"
    return message


class WorkerClient(QObject):
    """GUI-side handle: submits jobs, drops stale results, re-emits the current ones."""

    progress = Signal(str, int, float, str)
    finished = Signal(str, int, object)
    failed = Signal(str, int, str)
    cancelled = Signal(str, int)
    busy_changed = Signal(bool)

    _dispatch = Signal(str, int, object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._thread = QThread()
        self._thread.setObjectName("atlas-worker")
        self._worker = AtlasWorker()
        self._worker.moveToThread(self._thread)
        self._dispatch.connect(self._worker.run_job)
        self._worker.progress.connect(self._on_progress)
        self._worker.finished.connect(self._on_finished)
        self._worker.failed.connect(self._on_failed)
        self._worker.cancelled.connect(self._on_cancelled)
        self._next_id = 0
        self._latest: dict[str, int] = {}
        self._pending: set[tuple[str, int]] = set()
        self._thread.start()

    def submit(self, kind: str, job: Callable[[JobContext], Any]) -> int:
        """Queue ``job`` as the newest request of ``kind``; returns its id."""
        self._next_id += 1
        request_id = self._next_id
        self._latest[kind] = request_id
        self._worker.mark_latest(kind, request_id)
        self._pending.add((kind, request_id))
        self.busy_changed.emit(True)
        self._dispatch.emit(kind, request_id, job)
        return request_id

    def cancel(self, kind: str | None = None) -> None:
        """Stop the current request of ``kind`` (all kinds when None) at its next step."""
        for k, request_id in self._latest.items():
            if kind is None or k == kind:
                self._worker.cancel(k, request_id)

    def is_busy(self, kind: str | None = None) -> bool:
        return any(kind is None or k == kind for k, _ in self._pending)

    def latest_id(self, kind: str) -> int | None:
        return self._latest.get(kind)

    def shutdown(self, timeout_ms: int = 10000) -> None:
        """Cancel everything and stop the thread (called when the window closes)."""
        self.cancel()
        self._thread.quit()
        self._thread.wait(timeout_ms)

    def _settle(self, kind: str, request_id: int) -> bool:
        """Forget a request; True when it is the current one of its kind."""
        self._pending.discard((kind, request_id))
        if not self._pending:
            self.busy_changed.emit(False)
        return self._latest.get(kind) == request_id

    @Slot(str, int, float, str)
    def _on_progress(self, kind: str, request_id: int, fraction: float, message: str) -> None:
        if self._latest.get(kind) == request_id:
            self.progress.emit(kind, request_id, fraction, message)

    @Slot(str, int, object)
    def _on_finished(self, kind: str, request_id: int, result: object) -> None:
        if self._settle(kind, request_id):
            self.finished.emit(kind, request_id, result)

    @Slot(str, int, str)
    def _on_failed(self, kind: str, request_id: int, message: str) -> None:
        if self._settle(kind, request_id):
            self.failed.emit(kind, request_id, message)

    @Slot(str, int)
    def _on_cancelled(self, kind: str, request_id: int) -> None:
        if self._settle(kind, request_id):
            self.cancelled.emit(kind, request_id)
