"""The Session: the one source of truth of what the person is looking at. No Qt.

It holds the person's choices (model, texts, view, graph settings, layout, path kind, the
selected token and the path ends) and the results derived from them (the analysis, its
view, the graph, the force layout, the graph across layers, the path, the route, the
flow). Widgets show it and write the person's choices into it; the planner
(:mod:`app.planner`) computes what is missing in the background; the window composes.

Every field has a *revision*. A background task records the revisions of the fields it
depends on (``TaskKind.depends_on``, :mod:`app.tasks`); a change of one of them bumps its
revision, clears the results that depend on it and emits ``events.changed`` with the
fields that changed, so the task runner cancels exactly the dependent tasks and their late
results can no longer be applied. Besides the person's choices, three fields are derived:
``run`` (a new analysis), ``view_matrix`` (the view's matrix changed: anything but the
flow query), ``layered_input`` (the stack/layer a graph across layers is built from) and
``flow_query`` (the token whose flow the flow view shows).

Tokens: one token space, the run's token indices. ``row_of(token)`` maps a token to the
view's row (a word of several pieces is one row; a dropped special has none),
``token_of_row(row)`` back to the first token of the row, and ``layered_node`` /
``token_of_layered_node`` to and from the nodes of the graph across layers.

Several sessions can exist at once (comparisons); each has its own events and tasks.

Example::

    session = Session()
    session.events.view.connect(lambda view: print(view.title))
    session.set_result(result)          # an app.jobs.AnalysisResult
    session.set_spec(layer=2, head=5)   # prints "... · layer 2 · head 5"
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace

import numpy as np
from psygnal import Signal, SignalGroup

from analysis.attention.views import (
    AttentionView,
    MissingContributions,
    ViewSpec,
    make_view,
    needed_contribution,
    view_matrix_key,
    view_position,
)
from analysis.graph.rules import DEFAULT_RULE, SparsifyRule
from analysis.options import LAYERED_VIEW_KINDS, LAYOUT_KINDS, PATH_KINDS
from app.tasks import TaskKind

DEFAULT_SOURCE = "default"

# Which result each kind of task produces, as the attribute of the Session that holds it.
RESULT_OF = {
    TaskKind.GRAPH: "graph",
    TaskKind.LAYOUT: "positions",
    TaskKind.LAYERED: "layered",
    TaskKind.PATH: "path",
    TaskKind.ROUTE: "route",
    TaskKind.FLOW: "flow",
}


def is_empty(value) -> bool:
    """No result: None, or an empty dict of layouts."""
    return value is None or (isinstance(value, dict) and not value)


@dataclass(frozen=True)
class GraphSettings:
    """How the view becomes a graph: the sparsification rule, Louvain's resolution and seed."""

    rule: SparsifyRule = DEFAULT_RULE
    resolution: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not (np.isfinite(self.resolution) and self.resolution > 0):
            raise ValueError(f"the Louvain resolution must be a positive number, got {self.resolution!r}")


@dataclass(frozen=True)
class AnalysisInputs:
    """What an analysis was asked for: enough to tell whether the shown one is out of date."""

    source: str
    text: str
    pair: str | None = None
    kind: str = "analyse"  # or "generate": then `text` is the prompt, not the input box's text


class SessionEvents(SignalGroup):
    changed = Signal(object)  # frozenset of field names whose revision changed
    model_source = Signal(str)
    texts = Signal()
    stale = Signal(bool)  # the shown result no longer matches the texts or the model
    result = Signal(object)  # app.jobs.AnalysisResult | None
    spec = Signal(object)  # ViewSpec (the person's; the view's own adds the flow query)
    view = Signal(object)  # AttentionView | None
    view_error = Signal(str)
    graph_settings = Signal(object)
    layout = Signal(str)
    path_kind = Signal(str)
    selection = Signal(object)  # run token index | None
    path_ends = Signal()
    generation_step = Signal(object)  # the generated token stepped to (index) | None
    attribution = Signal(object)  # {"attribution"|"generation": ..., "comparison": ...} | None
    graph = Signal(object)  # app.jobs.GraphOutcome | None
    positions = Signal(object)  # dict kind -> [n, 2]
    layered = Signal(object)
    path = Signal(object)
    route = Signal(object)
    flow = Signal(object)  # per view column | None
    error = Signal(object, str)  # TaskKind, message


class Session:
    """What the person is looking at; see the module docstring."""

    def __init__(self, model_source: str = DEFAULT_SOURCE) -> None:
        self.events = SessionEvents()
        self._revisions: Counter[str] = Counter()
        self.model_source = model_source
        self.text = ""
        self.pair: str | None = None
        self.spec = ViewSpec()
        self.graph_settings = GraphSettings()
        self.layout = "arc"
        self.path_kind = "probable"
        self.selected_token: int | None = None
        self.path_source: int | None = None
        self.path_target: int | None = None
        self.generation_step: int | None = None
        self.attribution: dict | None = None  # of the current run (app.jobs.attribute_job)
        self.result = None
        self.result_inputs: AnalysisInputs | None = None
        self.view: AttentionView | None = None
        self.view_error: str | None = None
        self.graph = None
        self.positions: dict[str, np.ndarray] = {}
        self.layered = None
        self.path = None
        self.route = None
        self.flow: np.ndarray | None = None
        self.errors: dict[TaskKind, str] = {}
        self._flow_query: int | None = None
        self._matrix_key: tuple | None = None
        self._layered_key: tuple | None = None

    # Revisions -------------------------------------------------------------------------------
    def snapshot(self, fields) -> dict[str, int]:
        """The revisions of ``fields`` now (what a task is computed from)."""
        return {name: self._revisions[name] for name in fields}

    def is_current(self, snapshot: dict[str, int]) -> bool:
        """True while none of the snapshot's fields changed."""
        return all(self._revisions[name] == revision for name, revision in snapshot.items())

    def revision(self, name: str) -> int:
        return self._revisions[name]

    def _bump(self, fields: set[str]) -> None:
        """Bump revisions, drop the results (and errors) that depend on them, announce."""
        if not fields:
            return
        for name in fields:
            self._revisions[name] += 1
        cleared = []
        for kind, attribute in RESULT_OF.items():
            if kind.depends_on & fields:
                self.errors.pop(kind, None)
                empty = {} if attribute == "positions" else None
                if not is_empty(getattr(self, attribute)):
                    setattr(self, attribute, empty)
                    cleared.append(attribute)
        self.events.changed.emit(frozenset(fields))
        for attribute in cleared:
            getattr(self.events, attribute).emit(getattr(self, attribute))

    # The person's choices --------------------------------------------------------------------
    def set_model_source(self, source: str) -> None:
        if source != self.model_source:
            self.model_source = source
            self._bump({"model_source"})
            self.events.model_source.emit(source)
            self.events.stale.emit(self.is_stale)

    def set_texts(self, text: str, pair: str | None = None) -> None:
        pair = pair if pair else None
        if (text, pair) != (self.text, self.pair):
            self.text, self.pair = text, pair
            self._bump({"texts"})
            self.events.texts.emit()
            self.events.stale.emit(self.is_stale)

    @property
    def is_stale(self) -> bool:
        """A result is shown, and the texts or the model differ from what it was made of."""
        inputs = self.result_inputs
        if inputs is None:
            return False
        if inputs.kind == "generate":
            return inputs.source != self.model_source
        return (inputs.source, inputs.text, inputs.pair) != (self.model_source, self.text, self.pair)

    def analysis_inputs(self) -> AnalysisInputs:
        return AnalysisInputs(self.model_source, self.text, self.pair)

    def set_spec(self, spec: ViewSpec | None = None, **changes) -> None:
        """Change what to look at (``kind``, ``layer``, ``head``, ``stack``, ``merge_words``,
        ``drop_special``); the flow query follows the selection, not the spec."""
        spec = replace(spec or self.spec, **changes)
        spec = replace(spec, query=None)
        if spec == self.spec:
            return
        self.spec = spec
        self.events.spec.emit(spec)
        self._refresh_view()

    def set_graph_settings(self, settings: GraphSettings | None = None, **changes) -> None:
        settings = replace(settings or self.graph_settings, **changes)
        if settings != self.graph_settings:
            self.graph_settings = settings
            self._bump({"graph_settings"})
            self.events.graph_settings.emit(settings)

    def set_layout(self, kind: str) -> None:
        if kind not in LAYOUT_KINDS:
            raise ValueError(f"unknown layout {kind!r}; choose one of {', '.join(LAYOUT_KINDS)}")
        if kind != self.layout:
            self.layout = kind
            self._bump({"layout"})
            self.events.layout.emit(kind)

    def set_path_kind(self, kind: str) -> None:
        if kind not in PATH_KINDS:
            raise ValueError(f"unknown path kind {kind!r}; choose one of {', '.join(PATH_KINDS)}")
        if kind != self.path_kind:
            self.path_kind = kind
            self._bump({"path_kind"})
            self.events.path_kind.emit(kind)

    def select_token(self, token: int | None) -> None:
        """Select a run token (None: nothing); in the flow view the flow follows it."""
        token = self._checked_token(token)
        if token == self.selected_token:
            return
        self.selected_token = token
        self.events.selection.emit(token)
        self._refresh_view()  # the flow query may follow

    def set_path_ends(self, source: int | None = ..., target: int | None = ...) -> None:
        """Set the path's source and/or target (run tokens; None clears one; ``...`` keeps it)."""
        source = self.path_source if source is ... else self._checked_token(source)
        target = self.path_target if target is ... else self._checked_token(target)
        if (source, target) != (self.path_source, self.path_target):
            self.path_source, self.path_target = source, target
            self._bump({"path_ends"})
            self.events.path_ends.emit()

    def set_generation_step(self, index: int | None) -> None:
        """Step to generated token ``index``: the position that predicted it (the one before
        it) becomes the selected token and the path's source, so every view shows what that
        query looked at."""
        run = self.run
        generation = run.generation if run is not None else None
        if index is not None and (generation is None or not 0 <= index < len(generation.steps)):
            raise IndexError(f"step {index} is not a step of the current generation")
        self.generation_step = index
        self.events.generation_step.emit(index)
        if index is not None:
            position = run.prompt_length + index - 1
            self.select_token(position)
            self.set_path_ends(source=position)

    def _checked_token(self, token: int | None) -> int | None:
        if token is None:
            return None
        run = self.run
        if run is None or not 0 <= int(token) < self.num_stack_tokens:
            raise IndexError(f"token {token} is not a token of the current run")
        return int(token)

    # Results ---------------------------------------------------------------------------------
    @property
    def run(self):
        return self.result.run if self.result is not None else None

    def set_result(self, result, inputs: AnalysisInputs | None = None) -> None:
        """Show a new analysis: selection, path ends and every derived result start afresh."""
        self.result = result
        self.result_inputs = inputs
        self.selected_token = None
        self.path_source = self.path_target = None
        self.generation_step = None
        self.attribution = None
        self.errors.clear()
        self.view = None
        self._matrix_key = self._layered_key = self._flow_query = None
        if result is not None:
            self._fit_spec_to_run()
        self.events.result.emit(result)
        self.events.attribution.emit(None)
        self.events.selection.emit(None)
        self.events.path_ends.emit()
        self.events.stale.emit(self.is_stale)
        self._refresh_view({"run", "path_ends"})

    @property
    def missing_contribution(self) -> str | None:
        """The contribution kind the chosen view needs and the run lacks (None otherwise): a
        contribution view's own array, or the per-layer matrices a rollout or flow *through*
        a contribution goes through (analysis.attention.views.needed_contribution)."""
        run = self.run
        if run is None:
            return None
        try:
            return needed_contribution(run, self.spec)
        except ValueError:
            return None

    def set_attribution(self, outcome: dict | None) -> None:
        """The attribution computed for the current run (cleared by a new run)."""
        self.attribution = outcome
        self.events.attribution.emit(outcome)

    def add_contributions(self, arrays: dict) -> None:
        """The run gains contribution matrices (computed on demand): the same run otherwise,
        so the selection, the path ends and every attention result stay."""
        run = replace(self.run, contributions={**self.run.contributions, **arrays})
        self.result = replace(self.result, run=run)
        self._refresh_view()

    def _fit_spec_to_run(self) -> None:
        run = self.result.run
        spec = self.spec
        layers, heads = run.num_layers, run.num_heads
        layer = min(spec.layer, layers - 1) if spec.layer >= 0 else max(spec.layer, -layers)
        stack = spec.stack if run.decoder_attentions is not None else "self"
        fitted = replace(spec, layer=layer, head=min(spec.head, heads - 1), stack=stack)
        if fitted != spec:
            self.spec = fitted
            self.events.spec.emit(fitted)

    def set_task_result(self, kind: TaskKind, value) -> None:
        """Store what a task computed (the runner only calls this while it is current)."""
        attribute = RESULT_OF[kind]
        if kind is TaskKind.LAYOUT:
            value = {**self.positions, **value}
        if kind is TaskKind.GRAPH:
            self.positions = dict(value.positions)
        self.errors.pop(kind, None)
        setattr(self, attribute, value)
        getattr(self.events, attribute).emit(value)

    def set_task_error(self, kind: TaskKind, message: str) -> None:
        """A task failed: its result is gone (nothing stale stays shown) and the message kept."""
        attribute = RESULT_OF.get(kind)
        if attribute is not None and not is_empty(getattr(self, attribute)):
            setattr(self, attribute, {} if attribute == "positions" else None)
            getattr(self.events, attribute).emit(getattr(self, attribute))
        self.errors[kind] = message
        self.events.error.emit(kind, message)

    # The view --------------------------------------------------------------------------------
    @property
    def flow_query(self) -> int | None:
        """The flow view's query: the selected token, else the first non-special token."""
        return self._flow_query

    def _default_query(self) -> int:
        run = self.run
        real = np.flatnonzero(~run.special_mask)
        return int(real[0]) if len(real) else 0

    def _refresh_view(self, changed: set[str] | None = None) -> None:
        """Make the view of the run for the current spec (in memory, this thread) and bump
        the derived fields whose value changed (with ``changed``, in one announcement)."""
        changed = set(changed or ())
        run = self.run
        if run is None:
            self._bump(changed)
            return
        query = None
        if self.spec.kind == "flow":
            selected = self.selected_token
            query = selected if selected is not None and selected < run.num_tokens else self._default_query()
        if query != self._flow_query:
            self._flow_query = query
            changed.add("flow_query")
        try:
            view = make_view(run, replace(self.spec, query=query))
        except MissingContributions as missing:
            self.view, self.view_error = None, None
            self._matrix_key = ("missing", missing.kind)
            self._bump(changed | {"view_matrix", "contribution_kind"})
            self.events.view.emit(None)
            return
        except ValueError as error:
            self.view, self.view_error = None, str(error)
            self._matrix_key = None
            self._bump(changed | {"view_matrix"})
            self.events.view.emit(None)
            self.events.view_error.emit(str(error))
            return
        self.view_error = None
        key = (view_matrix_key(view.spec),)
        if key != self._matrix_key:
            self._matrix_key = key
            changed.add("view_matrix")
        layered_key = ((view.spec.stack, view.spec.layer, view.spec.through)
                       if view.spec.kind in LAYERED_VIEW_KINDS else None)
        if layered_key != self._layered_key:
            self._layered_key = layered_key
            changed.add("layered_input")
        self.view = view
        self._bump(changed)
        self.events.view.emit(view)

    @property
    def layered_mode(self) -> bool:
        """The canvas shows the graph across layers: a rollout or flow view of self-attention
        with the layered layout chosen."""
        view = self.view
        return (self.layout == "layered" and view is not None and view.spec.kind in LAYERED_VIEW_KINDS
                and view.spec.stack != "cross")

    # One token space ---------------------------------------------------------------------------
    @property
    def num_stack_tokens(self) -> int:
        """Tokens of the stack the view's rows come from (decoder tokens for decoder views)."""
        run = self.run
        if run is None:
            return 0
        if self.spec.stack in ("decoder", "cross") and run.decoder_labels is not None:
            return len(run.decoder_labels)
        return run.num_tokens

    def row_of(self, token: int | None) -> int | None:
        """The view row holding run token ``token`` (None when dropped or nothing is shown)."""
        if token is None or self.view is None:
            return None
        return view_position(self.view, token, "row")

    def token_of_row(self, row: int) -> int | None:
        """The first run token of view row ``row`` (None when out of range)."""
        view = self.view
        if view is None or not 0 <= row < len(view.row_tokens):
            return None
        return view.row_tokens[row][0]

    def layered_node(self, token: int | None, level: int) -> int | None:
        """The node of ``token`` at ``level`` of the graph across layers (None if none)."""
        graph = self.layered.graph if self.layered is not None else None
        if token is None or graph is None or not 0 <= token < graph.num_tokens:
            return None
        from analysis.graph.layered import node_id

        return node_id(graph, level, token)

    def token_of_layered_node(self, node: int) -> int | None:
        graph = self.layered.graph if self.layered is not None else None
        if graph is None or not 0 <= node < graph.num_nodes:
            return None
        token = int(graph.node_token[node])
        return token if token < graph.num_tokens else None
