"""Glue between the Session and the graph views: graph controls, canvas, metrics table.

The canvas shows the session's token graph, or its graph across layers in the layered
layout of a rollout/flow view, always with the labels of the view it was computed from.
While a new graph is computed the old picture stays (repainting it greyed would cost the
window a full canvas paint per head switch), its clicks are ignored, and the info line says
what is coming; a failed graph clears it and says why. Clicks on nodes become
run tokens (``Session.token_of_row`` / ``token_of_layered_node``) before they reach the
session, so a click always means the token that was drawn.
"""

from __future__ import annotations

import numpy as np

from analysis.options import LAYERED_VIEW_KINDS
from app.session import Session
from app.tasks import TaskKind
from app.view_binding import later

EMPTY_VIEW_TEXT = ("Nothing to show: every token of this view is a special token; "
                   "turn off Hide specials to see them.")


def route_text(steps, labels) -> str:
    """``cat (L6–L3) → mat (L2–L0)``: a route's tokens, levels a token stays on grouped."""
    parts: list[list] = []
    for level, token in steps:
        if parts and parts[-1][0] == token:
            parts[-1][2] = level
        else:
            parts.append([token, level, level])
    return " → ".join(
        f"{labels[token]} (L{top})" if top == bottom else f"{labels[token]} (L{top}–L{bottom})"
        for token, top, bottom in parts
    )


class GraphBinding:
    """Binds ``session`` to the window's graph panel (controls, canvas, info) and metrics table."""

    def __init__(self, window, session: Session) -> None:
        self.window = window
        self.session = session
        self.panel = window.graph_panel
        self.canvas = window.graph_panel.canvas
        self.table = window.metrics_table
        self._drawn = None  # the GraphOutcome / LayeredOutcome on the canvas
        self._tabled = None  # (graph, flow) in the metrics table
        self._force_drawn = None  # the force positions handed to the canvas
        p, c = self.panel, self.canvas
        p.settings_changed.connect(self._on_settings_changed)
        p.path_kind_changed.connect(lambda: session.set_path_kind(p.path_kind()))
        c.layout_changed.connect(self._on_layout_chosen)
        c.token_selected.connect(lambda node: self._select(self.token_of_node(node)))
        c.source_selected.connect(lambda node: self._set_end(source=self.token_of_node(node)))
        c.target_selected.connect(lambda node: self._set_end(target=self.token_of_node(node)))
        self.table.token_selected.connect(self._on_table_row)
        events = session.events
        for signal in (events.view, events.graph, events.layered, events.layout, events.positions):
            signal.connect(lambda *_: self.refresh())
        events.path.connect(lambda _path: self._show_path())
        events.route.connect(lambda _route: self._show_path())
        events.path_ends.connect(self._show_ends)
        events.selection.connect(lambda _token: self._show_selection())
        events.flow.connect(lambda _flow: self._fill_table())
        events.error.connect(self._on_error)
        events.graph_settings.connect(lambda settings: p.set_rule(settings.rule, settings.resolution))
        events.path_kind.connect(p.set_path_kind)
        events.layout.connect(self._on_layout)

    # The person's choices -> session -------------------------------------------------------------
    def _on_settings_changed(self) -> None:
        try:
            rule = self.panel.rule()
        except ValueError as error:
            self.window.show_error(str(error))
            return
        self.session.set_graph_settings(rule=rule, resolution=self.panel.resolution())

    def _on_layout_chosen(self, kind: str) -> None:
        self.session.set_layout(kind)

    def token_of_node(self, node: int) -> int | None:
        """The run token a node on the canvas stands for (None when it is not one)."""
        if self._drawn is not None and self._drawn is self.session.layered:
            return self.session.token_of_layered_node(node)
        if self._drawn is not None and self._drawn is self.session.graph:
            return self.session.token_of_row(node)
        return None  # an out-of-date picture: clicks mean nothing

    def _on_table_row(self, row: int) -> None:
        """A row of the metrics table: a token only while the table shows the current graph."""
        if self._tabled is not None and self._tabled[0] is self.session.graph:
            self._select(self.session.token_of_row(row))

    def _select(self, token: int | None) -> None:
        if token is not None:
            self.session.select_token(token)

    def _set_end(self, **end) -> None:
        if next(iter(end.values())) is not None:
            self.session.set_path_ends(**end)

    # Session -> widgets ----------------------------------------------------------------------------
    def _on_layout(self, kind: str) -> None:
        if self.canvas.layout_kind() != kind or kind == "force":
            positions = self.session.positions.get(kind)
            if kind != "force" or positions is not None:
                self.canvas.set_layout(kind, positions)

    def _shown(self):
        """What the canvas should show now: the graph across layers or the token graph."""
        s = self.session
        return s.layered if s.layered_mode else s.graph

    def refresh(self) -> None:
        """Bring the canvas, the table and the info line up to the session."""
        s, canvas = self.session, self.canvas
        view = s.view
        canvas.set_layered_available(view is not None and view.spec.kind in LAYERED_VIEW_KINDS
                                     and view.spec.stack != "cross")
        if view is None or not view.is_square:
            self._clear("Cross-attention links two token sequences: the graph shows self-attention views."
                        if view is not None else "")
            return
        if view.matrix.shape[0] == 0:  # every token hidden (all special, Hide specials on)
            self._clear(EMPTY_VIEW_TEXT, hint=EMPTY_VIEW_TEXT)
            return
        shown = self._shown()
        if shown is None:
            kind = TaskKind.LAYERED if s.layered_mode else TaskKind.GRAPH
            if kind in s.errors:
                self._clear(f"{kind.title} could not be computed: {s.errors[kind]}")
            else:  # the old picture stays until the new one arrives; its clicks mean nothing
                what = "graph across layers" if s.layered_mode else "graph"
                self.panel.info.setText(f"Computing the {what} of {view.spec.describe()}…")
            self._fill_table()
            return
        if shown is not self._drawn:
            self._draw(shown)
        elif shown is s.graph and s.layout == "force" and s.positions.get("force") is not None:
            positions = s.positions["force"]
            if positions is not self._force_drawn:
                self._force_drawn = positions
                canvas.set_layout("force", positions)
        self._fill_table()

    def _clear(self, message: str, *, hint: str | None = None) -> None:
        self._drawn = None
        self.canvas.clear(hint)
        self.table.clear()
        self._tabled = None
        self.panel.info.setText(message)

    def _draw(self, shown) -> None:
        s, canvas, w = self.session, self.canvas, self.window
        self._drawn = shown
        if shown is s.layered:
            from analysis.graph.layered import node_labels

            graph = shown.graph
            canvas.set_graph(node_labels(graph, self.stack_labels()), graph.sources, graph.targets, graph.weights,
                             node_layer=graph.node_layer)
            canvas.set_generated(self.generated_nodes(graph.node_token))
            self._show_ends()
            self._show_path()
            self._show_selection()
            w.layered_ready.emit()
            return
        result = shown.result
        positions = {k: v for k, v in s.positions.items() if v.shape == (result.n, 2)}
        self._force_drawn = positions.get("force")
        canvas.set_graph(s.view.row_labels, result.sources, result.targets, result.weights,
                         metrics=self.metrics(), communities=result.communities, positions=positions,
                         edges_later=True)
        canvas.set_generated(self.generated_nodes([group[-1] for group in s.view.row_tokens]))
        self._show_ends()
        self.panel.info.setText(self.info_text())

        def current() -> bool:
            return self._drawn is shown

        later(w, current, canvas.draw_pending_edges)
        later(w, current, lambda: (self._show_path(), self._fill_table(), self._show_selection(),
                                   w.graph_ready.emit()))

    def generated_nodes(self, last_token) -> np.ndarray | None:
        """Bool per node: it stands for a generated token (its last run token is at or past
        the run's ``prompt_length``); None without a generation or off the self-attention
        stack (where the run's tokens are not the nodes)."""
        s = self.session
        start = s.run.prompt_length if s.run is not None else None
        if start is None or s.view is None or s.view.spec.stack != "self":
            return None
        return np.asarray(last_token, dtype=np.int64) >= start

    def metrics(self) -> dict[str, np.ndarray]:
        s = self.session
        metrics = dict(s.graph.result.metrics) if s.graph is not None else {}
        if s.flow is not None and s.view is not None and s.view.spec.kind == "flow":
            metrics["flow"] = s.flow
        return metrics

    def _fill_table(self) -> None:
        s = self.session
        graph = s.graph
        if graph is None or s.view is None or graph.result.n != len(s.view.row_labels):
            return
        key = (graph, s.flow if s.view.spec.kind == "flow" else None)
        if self._tabled is not None and self._tabled[0] is key[0] and self._tabled[1] is key[1]:
            return
        self._tabled = key
        self.table.set_metrics(s.view.row_labels, self.metrics(), graph.result.communities)
        row = s.row_of(s.selected_token)
        if row is not None:
            self.table.select_token(row)

    def _show_selection(self) -> None:
        s, canvas = self.session, self.canvas
        if self._drawn is None:
            return
        if self._drawn is s.layered:
            canvas.select_token(self._layered_selection())
            return
        if self._drawn is s.graph:
            row = s.row_of(s.selected_token)
            canvas.select_token(row)
            if row is not None and self._tabled is not None:
                self.table.select_token(row)

    def _layered_selection(self) -> int | None:
        """The selected token's node across layers: the clicked one if it is that token's,
        else the token at the top level."""
        s = self.session
        graph, token = s.layered.graph, s.selected_token
        if token is None or token >= graph.num_tokens:
            return None
        current = self.canvas.selected_token()
        if current is not None and current < graph.num_nodes and graph.node_token[current] == token:
            return current
        return s.layered_node(token, graph.num_layers_shown - 1)

    def _show_ends(self) -> None:
        s, canvas = self.session, self.canvas
        if self._drawn is None:
            return
        if self._drawn is s.layered:
            top = s.layered.graph.num_layers_shown - 1
            canvas.set_source(s.layered_node(s.path_source, top))
            canvas.set_target(s.layered_node(s.path_target, 0))
        else:
            canvas.set_source(s.row_of(s.path_source))
            canvas.set_target(s.row_of(s.path_target))

    def _show_path(self) -> None:
        s, canvas = self.session, self.canvas
        if self._drawn is None:
            return
        if self._drawn is s.layered:
            from analysis.graph.layered import route_nodes

            route = s.route
            canvas.highlight_path(route_nodes(s.layered.graph, route.steps) if route is not None and route.found
                                  else [])
        elif self._drawn is s.graph:
            canvas.highlight_path(list(s.path.nodes) if s.path is not None else [])
        self.panel.info.setText(self.info_text())
        if (s.path is not None and self._drawn is s.graph) or (s.route is not None and self._drawn is s.layered):
            self.window.path_ready.emit()

    def _on_error(self, kind: TaskKind, message: str) -> None:
        if kind in (TaskKind.GRAPH, TaskKind.LAYERED):
            self.refresh()
        elif kind in (TaskKind.PATH, TaskKind.ROUTE, TaskKind.LAYOUT):
            self.panel.info.setText(f"{kind.title} could not be computed: {message}")

    # Texts ------------------------------------------------------------------------------------------
    def stack_labels(self) -> tuple[str, ...]:
        run, spec = self.session.run, self.session.view.spec
        return tuple(run.decoder_labels or ()) if spec.stack == "decoder" else tuple(run.labels)

    def info_text(self) -> str:
        s = self.session
        if self._drawn is not None and self._drawn is s.layered:
            return self._route_text() if s.route is not None else self._layered_text()
        if s.graph is None:
            return ""
        if s.path is not None:
            return self._path_text(s.path)
        result = s.graph.result
        communities = len(set(result.communities.tolist()))
        text = (f"{len(result.weights)} edges ({result.rule.describe()}) · {communities} communities · "
                f"modularity {result.modularity:.3f} · {result.timings.get('total', 0.0):.3f} s. ")
        if s.graph.note:
            text += f"Note: {s.graph.note}. "
        return text + "Click a node: path source; Shift+click: target."

    def _path_text(self, path) -> str:
        labels = self.session.view.row_labels
        if path.nodes:
            route = " → ".join(labels[n] for n in path.nodes)
            widest = self.session.path_kind == "widest"
            what, value = ("bottleneck", path.bottleneck) if widest else ("probability", path.probability)
            return f"Path: {route}  ({what} {value:.3g})"
        return f"No path from '{labels[path.source]}' to '{labels[path.target]}' in this graph."

    def _layered_text(self) -> str:
        from analysis.graph.layered import CANVAS_EDGE_LIMIT

        s = self.session
        outcome = s.layered
        graph = outcome.graph
        top = graph.num_layers_shown - 1
        rule = graph.rule.describe().split(";")[0]
        text = (f"Across layers: rows L0 (input embeddings) … L{top} (output of layer {graph.layer}); "
                f"{graph.num_nodes} nodes, {len(graph.weights)} edges ({rule}")
        if graph.capped_per_node:
            text += f", at most {graph.capped_per_node} per node: the canvas draws up to {CANVAS_EDGE_LIMIT:,}"
        text += f") · {outcome.seconds:.3f} s. "
        if s.view.spec.merge_words or s.view.spec.drop_special:
            text += "Nodes are the model's tokens (not merged into words, specials kept). "
        return text + "Click a node: route from its token at the top; Shift+click: to its token at L0."

    def _route_text(self) -> str:
        s = self.session
        route, labels = s.route, self.stack_labels()
        if route.found:
            text = f"Route: {route_text(route.steps, labels)}  (probability {route.probability:.3g})"
        else:
            text = f"No route from '{labels[route.query]}' down to '{labels[route.target]}': {route.reason}."
        if s.path_kind == "widest":
            text += " Across layers the route is the most probable one."
        if s.view.spec.merge_words or s.view.spec.drop_special:
            text += " Nodes are the model's tokens (not merged into words, specials kept)."
        return text
