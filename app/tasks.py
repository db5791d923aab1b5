"""Background tasks: declared once, keyed by (session, kind), never applied when stale. No Qt.

Every kind of background work is a :class:`TaskKind`: which *lane* (thread) runs it and
which session fields its result depends on. The :class:`TaskRunner` starts a job function
for a session, records the revisions of those fields (the inputs it is computed from), and
cancels it as soon as one of them changes (``invalidate``) or a newer task of the same
(session, kind) replaces it, as Orange's ``ConcurrentMixin.start()`` and napari's slicer
cancel the work they replace. Whatever a job sends back (progress, partial results, its
result, its failure) reaches the host's thread through one path, :meth:`TaskRunner.deliver`,
which drops it unless the task is still the current one of its key and its inputs are
unchanged.

Lanes: ``MODEL`` owns the models (torch is not shared across threads: load, analyse,
generate, attribute); ``GRAPH`` runs numpy/C work (graphs, layouts, paths, flow), so a
graph never waits behind a long model job. Each lane is one daemon thread: work still
running when the window closes cannot keep the process alive.

Example (no Qt: the host's thread pumps results with ``drain``)::

    runner = TaskRunner(ThreadLanes.with_queue())
    task = runner.submit(session, TaskKind.GRAPH, job, on_done=print)
    runner.executor.drain(timeout=5)
"""

from __future__ import annotations

import enum
import itertools
import queue
import threading
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from analysis.progress import Cancelled


class Lane(enum.Enum):
    MODEL = "model"
    GRAPH = "graph"


class TaskKind(enum.Enum):
    """Every kind of background work: (lane, session fields it depends on, what it is)."""

    WARM_UP = (Lane.MODEL, frozenset(), "Loading the model")
    ANALYSE = (Lane.MODEL, frozenset(), "The analysis")
    GENERATE = (Lane.MODEL, frozenset(), "The generation")
    CONTRIBUTIONS = (Lane.MODEL, frozenset({"run", "contribution_kind"}), "The contributions")
    ATTRIBUTE = (Lane.MODEL, frozenset({"run"}), "The attribution")
    GRAPH = (Lane.GRAPH, frozenset({"run", "view_matrix", "graph_settings"}), "The graph")
    LAYOUT = (Lane.GRAPH, frozenset({"run", "view_matrix", "graph_settings", "layout"}), "The force layout")
    LAYERED = (Lane.GRAPH, frozenset({"run", "layered_input", "graph_settings", "layout"}),
               "The graph across layers")
    PATH = (Lane.GRAPH, frozenset({"run", "view_matrix", "graph_settings", "path_ends", "path_kind", "layout"}),
            "The path")
    ROUTE = (Lane.GRAPH, frozenset({"run", "layered_input", "graph_settings", "path_ends", "layout"}),
             "The route across layers")
    FLOW = (Lane.GRAPH, frozenset({"run", "view_matrix", "flow_query"}), "Attention flow")

    def __init__(self, lane: Lane, depends_on: frozenset[str], title: str) -> None:
        self.lane = lane
        self.depends_on = depends_on
        self.title = title


@dataclass
class JobContext:
    """What a job function gets: report progress, send partial results, ask whether to stop."""

    kind: TaskKind
    report: Callable[[float, str], None]
    send_partial: Callable[[Any], None]
    is_cancelled: Callable[[], bool]

    def check(self) -> None:
        """Raise ``Cancelled`` when the task was cancelled or replaced."""
        if self.is_cancelled():
            raise Cancelled()

    def progress(self, fraction: float, message: str = "") -> None:
        self.check()
        self.report(fraction, message)

    def partial(self, payload: Any) -> None:
        """A partial result (a streamed token, an attribution row) for the host."""
        self.check()
        self.send_partial(payload)


@dataclass
class Task:
    """One submitted job and the inputs it was computed from."""

    id: int
    session: Any
    kind: TaskKind
    job: Callable[[JobContext], Any]
    snapshot: dict[str, int]
    handlers: dict[str, Callable | None]
    cancel_event: threading.Event = field(default_factory=threading.Event)
    settled: bool = False

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()


def readable_error(error: BaseException) -> str:
    """One or two lines a person can act on; the traceback goes to stderr for bug reports."""
    message = str(error).strip() or type(error).__name__
    known = ("ModelLoadError", "InputError", "ExportError", "ValueError", "FileNotFoundError", "GenerationError",
             "AttributionError")
    if type(error).__name__ not in known:
        traceback.print_exception(error)
        message = f"{type(error).__name__}: {message}"
    return message


class ThreadLanes:
    """One daemon thread per lane, running tasks in the order submitted (cancelled ones are
    skipped). What a task sends back goes through ``post(callback)``, which must run the
    callback on the host's thread (Qt: a queued signal; tests: :meth:`with_queue`)."""

    def __init__(self, post: Callable[[Callable[[], None]], None]) -> None:
        self._post = post
        self._queues: dict[Lane, queue.Queue] = {}
        self._threads: dict[Lane, threading.Thread] = {}
        self._running: dict[Lane, Task | None] = {}
        self._host_queue: queue.Queue | None = None
        self._stopping = False

    @classmethod
    def with_queue(cls) -> ThreadLanes:
        """Lanes whose results wait in a queue until :meth:`drain` runs them (no Qt)."""
        host: queue.Queue = queue.Queue()
        lanes = cls(host.put)
        lanes._host_queue = host
        return lanes

    def drain(self, timeout: float = 0.0, until: Callable[[], bool] | None = None) -> None:
        """Run posted callbacks on this thread; with ``until``, keep waiting (up to
        ``timeout`` seconds) until it returns True."""
        import time

        assert self._host_queue is not None, "drain() needs lanes made by with_queue()"
        deadline = time.monotonic() + timeout
        while True:
            try:
                callback = self._host_queue.get(timeout=max(0.0, min(0.05, deadline - time.monotonic())))
            except queue.Empty:
                callback = None
            if callback is not None:
                callback()
            if until is None and self._host_queue.empty() and callback is None:
                return
            if until is not None and until():
                return
            if time.monotonic() >= deadline:
                if until is not None:
                    raise TimeoutError("the tasks did not finish in time")
                return

    def start(self, task: Task, deliver: Callable[[Task, str, Any], None]) -> None:
        lane = task.kind.lane
        if lane not in self._threads:
            self._queues[lane] = queue.Queue()
            self._running[lane] = None
            thread = threading.Thread(target=self._loop, args=(lane,), name=f"atlas-{lane.value}", daemon=True)
            self._threads[lane] = thread
            thread.start()
        self._queues[lane].put((task, deliver))

    def _loop(self, lane: Lane) -> None:
        while True:
            item = self._queues[lane].get()
            if item is None:
                return
            task, deliver = item
            self._running[lane] = task
            try:
                self._run(task, deliver)
            finally:
                self._running[lane] = None

    def _run(self, task: Task, deliver) -> None:
        def post(event: str, payload: Any = None) -> None:
            if self._stopping:  # shut down: nobody applies it, and the host may be gone
                return
            self._post(lambda: deliver(task, event, payload))

        if task.cancelled:
            post("cancelled")
            return
        context = JobContext(
            kind=task.kind,
            report=lambda fraction, message: post("progress", (float(fraction), message)),
            send_partial=lambda payload: post("partial", payload),
            is_cancelled=lambda: task.cancelled or self._stopping,
        )
        try:
            result = task.job(context)
            context.check()
        except Cancelled:
            post("cancelled")
        except MemoryError:
            post("failed", "Out of memory: try a shorter text or a smaller model.")
        except Exception as error:  # a readable message in the window, never a crash
            post("failed", readable_error(error))
        else:
            post("done", result)

    def busy_lanes(self) -> list[Lane]:
        return [lane for lane, task in self._running.items() if task is not None]

    def shutdown(self, timeout: float = 2.0) -> bool:
        """Ask every lane to stop after its current task; wait up to ``timeout`` seconds in
        all. True when every lane stopped (a lane stuck in a long C call is left behind: it
        is a daemon thread and cannot keep the process alive)."""
        import time

        self._stopping = True
        for q in self._queues.values():
            q.put(None)
        deadline = time.monotonic() + timeout
        stopped = True
        for thread in self._threads.values():
            thread.join(max(0.0, deadline - time.monotonic()))
            stopped &= not thread.is_alive()
        return stopped


class TaskRunner:
    """Starts tasks for sessions, cancels those whose inputs change, applies only current ones.

    A session passed to :meth:`submit` needs ``snapshot(fields) -> dict`` and
    ``is_current(snapshot) -> bool`` (see ``app.session.Session``). Handlers run on the
    host's thread: ``on_done(result)``, ``on_failed(message)``, ``on_cancelled()``,
    ``on_progress(fraction, message)``, ``on_partial(payload)``.
    """

    def __init__(self, executor: ThreadLanes) -> None:
        self.executor = executor
        self._ids = itertools.count(1)
        self._current: dict[tuple[int, TaskKind], Task] = {}
        self._pending: dict[int, Task] = {}  # started, not yet settled
        self.listeners: list[Callable[[Task, str], None]] = []  # told of every settled task

    def submit(
        self,
        session,
        kind: TaskKind,
        job: Callable[[JobContext], Any],
        *,
        on_done: Callable[[Any], None] | None = None,
        on_failed: Callable[[str], None] | None = None,
        on_cancelled: Callable[[], None] | None = None,
        on_progress: Callable[[float, str], None] | None = None,
        on_partial: Callable[[Any], None] | None = None,
    ) -> Task:
        """Start ``job`` as the newest task of (``session``, ``kind``); the one it replaces is
        cancelled."""
        key = (id(session), kind)
        previous = self._current.get(key)
        if previous is not None:
            previous.cancel_event.set()
        task = Task(
            id=next(self._ids),
            session=session,
            kind=kind,
            job=job,
            snapshot=session.snapshot(kind.depends_on),
            handlers={"done": on_done, "failed": on_failed, "cancelled": on_cancelled,
                      "progress": on_progress, "partial": on_partial},
        )
        self._current[key] = task
        self._pending[task.id] = task
        self.executor.start(task, self.deliver)
        return task

    def invalidate(self, session, fields: Iterable[str]) -> list[TaskKind]:
        """Cancel the current tasks of ``session`` that depend on any of ``fields``; returns
        their kinds."""
        fields = set(fields)
        hit = []
        for (owner, kind), task in list(self._current.items()):
            if owner == id(session) and kind.depends_on & fields and not task.settled:
                task.cancel_event.set()
                hit.append(kind)
        return hit

    def cancel(self, session=None, kinds: Iterable[TaskKind] | None = None) -> None:
        """Cancel the current tasks (of ``session`` and of ``kinds``, when given)."""
        kinds = set(kinds) if kinds is not None else None
        for (owner, kind), task in self._current.items():
            if (session is None or owner == id(session)) and (kinds is None or kind in kinds):
                task.cancel_event.set()

    def current(self, session, kind: TaskKind) -> Task | None:
        """The newest task of (``session``, ``kind``) while it has not settled."""
        task = self._current.get((id(session), kind))
        return task if task is not None and not task.settled and not task.cancelled else None

    def is_busy(self, session=None, kinds: Iterable[TaskKind] | None = None) -> bool:
        kinds = set(kinds) if kinds is not None else None
        return any((session is None or t.session is session) and (kinds is None or t.kind in kinds)
                   for t in self._pending.values())

    def is_applicable(self, task: Task) -> bool:
        """True while ``task`` is the newest of its key, not cancelled, and its inputs are
        unchanged."""
        return (self._current.get((id(task.session), task.kind)) is task and not task.cancelled
                and task.session.is_current(task.snapshot))

    def deliver(self, task: Task, event: str, payload: Any = None) -> None:
        """On the host's thread: hand ``event`` of ``task`` to its handler if it still applies."""
        final = event in ("done", "failed", "cancelled")
        if final:
            task.settled = True
            self._pending.pop(task.id, None)
        applicable = self.is_applicable(task) if event != "cancelled" else (
            self._current.get((id(task.session), task.kind)) is task)
        if applicable:
            handler = task.handlers.get(event)
            if handler is not None:
                if event == "progress":
                    handler(*payload)
                elif event == "cancelled":
                    handler()
                else:
                    handler(payload)
        if final:
            for listener in self.listeners:
                listener(task, event)

    def shutdown(self, timeout: float = 2.0) -> bool:
        """Cancel everything and stop the lanes, waiting at most ``timeout`` seconds."""
        self.cancel()
        return self.executor.shutdown(timeout)
