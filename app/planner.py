"""What to compute, and when: the session's missing results become background tasks. No Qt.

The planner listens to ``session.events.changed``: it has the runner cancel the tasks
that depend on the changed fields, then submits what the session now shows but lacks.
Only work that is shown is computed: the force layout only while the force layout is
chosen, the graph across layers only in the layered layout of a rollout or flow view, a
path only when both ends are set, flow only in the flow view. A task that failed is not
tried again until one of its inputs changes (its error stays in ``session.errors``).
"""

from __future__ import annotations

from collections.abc import Callable

from analysis.attention.views import values_for_view
from app import jobs
from app.session import RESULT_OF, AnalysisInputs, Session, is_empty
from app.tasks import Task, TaskKind, TaskRunner


class Planner:
    """Keeps one session's derived results computed, through one task runner."""

    def __init__(self, session: Session, runner: TaskRunner,
                 on_progress: Callable[[TaskKind, float, str], None] | None = None) -> None:
        self.session = session
        self.runner = runner
        self.on_progress = on_progress
        self.analysis_handlers: dict[str, Callable] = {}  # "done", "failed", "cancelled"
        session.events.changed.connect(self._on_changed)

    def _on_changed(self, fields: frozenset[str]) -> None:
        self.runner.invalidate(self.session, fields)
        self.plan()

    # Requests by the person ------------------------------------------------------------------
    def analyse(self, inputs: AnalysisInputs | None = None, *, allow_pickle: bool = False) -> Task:
        """Run the model on the session's texts (or ``inputs``); the result replaces the shown
        one when it arrives, unless a newer analysis was asked for meanwhile."""
        inputs = inputs or self.session.analysis_inputs()
        request = jobs.AnalyseRequest(inputs.source, inputs.text, inputs.pair, allow_pickle)

        def done(result) -> None:
            self.session.set_result(result, inputs)
            self._call("done", result)

        return self._submit(TaskKind.ANALYSE, jobs.analyse_job(request), done,
                            failed=lambda message: self._call("failed", message),
                            cancelled=lambda: self._call("cancelled"))

    def generate(self, prompt: str, settings: dict, *, on_token: Callable | None = None) -> tuple[Task, object]:
        """Let the session's model answer ``prompt``; tokens reach ``on_token`` as they come.
        Returns the task and its stop event (set it to end early and keep the tokens)."""
        import threading

        stop = threading.Event()
        inputs = AnalysisInputs(self.session.model_source, prompt, None, kind="generate")
        request = jobs.GenerateRequest(inputs.source, prompt, dict(settings), stop)

        def done(result) -> None:
            self.session.set_result(result, inputs)
            steps = result.run.generation.steps if result.run.generation is not None else ()
            if steps:
                self.session.set_generation_step(len(steps) - 1)
            self._call("generated", result)

        task = self.runner.submit(
            self.session, TaskKind.GENERATE, jobs.generate_job(request), on_done=done,
            on_failed=lambda message: self._call("failed", message), on_cancelled=lambda: self._call("cancelled"),
            on_partial=on_token,
            on_progress=(lambda f, m: self.on_progress(TaskKind.GENERATE, f, m)) if self.on_progress else None,
        )
        return task, stop

    def attribute(self, settings: dict, *, on_row: Callable | None = None) -> Task:
        """Attribute the current run's output (settings from the attribution panel)."""
        s = self.session
        return self.runner.submit(
            s, TaskKind.ATTRIBUTE, jobs.attribute_job(s.run, dict(settings)), on_done=s.set_attribution,
            on_failed=lambda message: s.set_task_error(TaskKind.ATTRIBUTE, message), on_partial=on_row,
            on_progress=(lambda f, m: self.on_progress(TaskKind.ATTRIBUTE, f, m)) if self.on_progress else None,
        )

    def warm_up(self, source: str, on_done: Callable | None = None) -> Task:
        return self._submit(TaskKind.WARM_UP, jobs.warm_up_job(source), on_done or (lambda _facts: None),
                            failed=lambda message: None)

    def _call(self, event: str, *args) -> None:
        handler = self.analysis_handlers.get(event)
        if handler is not None:
            handler(*args)

    # Derived results ---------------------------------------------------------------------------
    def needed(self) -> list[TaskKind]:
        """The derived results the session shows but lacks (and that are not being computed)."""
        s = self.session
        view = s.view
        if s.missing_contribution is not None:
            wanted = [TaskKind.CONTRIBUTIONS]
            return [k for k in wanted if k not in s.errors and self.runner.current(s, k) is None]
        if view is None or not view.is_square or view.matrix.size == 0:
            return []
        wanted = [TaskKind.GRAPH]
        if s.layout == "force" and s.graph is not None and "force" not in s.positions:
            wanted.append(TaskKind.LAYOUT)
        ends = s.path_source is not None and s.path_target is not None
        if s.layered_mode:
            wanted.append(TaskKind.LAYERED)
            if ends and s.layered is not None:
                wanted.append(TaskKind.ROUTE)
        elif ends and s.row_of(s.path_source) is not None and s.row_of(s.path_target) is not None:
            wanted.append(TaskKind.PATH)
        if view.spec.kind == "flow":
            wanted.append(TaskKind.FLOW)
        return [kind for kind in wanted if self._missing(kind)]

    def _missing(self, kind: TaskKind) -> bool:
        s = self.session
        missing = kind is TaskKind.LAYOUT or is_empty(getattr(s, RESULT_OF[kind]))  # LAYOUT: see needed()
        return missing and kind not in s.errors and self.runner.current(s, kind) is None

    def plan(self) -> list[TaskKind]:
        """Submit every needed task; returns their kinds."""
        kinds = self.needed()
        for kind in kinds:
            self._start(kind)
        return kinds

    def _start(self, kind: TaskKind) -> None:
        s = self.session
        view, settings = s.view, s.graph_settings
        if kind is TaskKind.CONTRIBUTIONS:
            wanted = s.missing_contribution
            self._submit(kind, jobs.contributions_job(s.run, wanted, capture=getattr(s.result, "capture", None)),
                         lambda arrays: (s.add_contributions(arrays), self.plan()))
        elif kind is TaskKind.GRAPH:
            request = jobs.GraphRequest(view.matrix, settings.rule, settings.resolution, settings.seed,
                                        signed=view.signed, force_layout=s.layout == "force")
            self._submit_result(kind, jobs.graph_job(request))
        elif kind is TaskKind.LAYOUT:
            self._submit_result(kind, jobs.force_layout_job(s.graph.result, settings.seed))
        elif kind is TaskKind.PATH:
            job = jobs.path_job(view.matrix, s.row_of(s.path_source), s.row_of(s.path_target),
                                s.path_kind == "widest", settings.rule, signed=view.signed)
            self._submit_result(kind, job)
        elif kind is TaskKind.LAYERED:
            spec = view.spec
            self._submit_result(kind, jobs.layered_job(s.run, spec.layer, settings.rule, spec.stack,
                                                       through=spec.through))
        elif kind is TaskKind.ROUTE:
            spec = view.spec
            self._submit_result(kind, jobs.route_job(s.run, s.path_source, s.path_target, spec.layer,
                                                     stack=spec.stack, through=spec.through))
        elif kind is TaskKind.FLOW:
            spec, flow_view = view.spec, view

            def done(token_flow) -> None:
                s.set_task_result(TaskKind.FLOW, values_for_view(flow_view, token_flow, side="col"))

            self._submit(kind, jobs.flow_job(s.run, spec.query, spec.layer, stack=spec.stack, through=spec.through),
                         done)

    def _submit_result(self, kind: TaskKind, job) -> Task:
        def done(value) -> None:
            self.session.set_task_result(kind, value)
            self.plan()  # what needs this result (a route needs its layers, a layout its graph)

        return self._submit(kind, job, done)

    def _submit(self, kind: TaskKind, job, done, *, failed=None, cancelled=None) -> Task:
        s = self.session
        progress = None
        if self.on_progress is not None:
            def progress(fraction: float, message: str, kind=kind) -> None:
                self.on_progress(kind, fraction, message)
        return self.runner.submit(
            s, kind, job, on_done=done,
            on_failed=failed or (lambda message: s.set_task_error(kind, message)),
            on_cancelled=cancelled, on_progress=progress,
        )
