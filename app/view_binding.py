"""Glue between the Session and the views of the matrix: view controls, heatmap, head
overview and token view. Widgets write the person's choices into the session; session
events redraw the widgets. Nothing here decides what to compute.

Drawing a new analysis is split over later turns of the event loop (the heatmap first, then
the head overview, then the token view), so no single turn keeps the window from answering
for long; each step runs only if its analysis is still the session's.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PySide6.QtCore import QObject, QTimer

from app.session import Session

LATER_MS = 10  # a real timer, so repaints and input pending before it go first


def later(parent: QObject, is_current: Callable[[], bool], step: Callable[[], None]) -> None:
    """Run ``step`` on a later turn of the event loop if ``is_current()`` still holds then
    (cancelled with ``parent``)."""

    def run_if_current() -> None:
        if is_current():
            step()

    QTimer.singleShot(LATER_MS, parent, run_if_current)


class ViewBinding:
    """Binds ``session`` to the window's view controls, heatmap, head overview, token view."""

    def __init__(self, window, session: Session) -> None:
        self.window = window
        self.session = session
        self._tokens_of = None  # the analysis whose tokens the token view shows
        self._computing: str | None = None  # the "Computing ALTI…" message shown, if any
        w = window
        w.view_controls.changed.connect(self._on_controls_changed)
        w.view_controls.display_changed.connect(self._on_display_changed)
        w.head_overview.head_selected.connect(self._on_head_selected)
        w.heatmap.token_selected.connect(self._on_row_selected)
        w.token_view.token_selected.connect(self._on_token_selected)
        events = session.events
        events.result.connect(self._on_result)
        events.spec.connect(self._on_spec)
        events.view.connect(self._on_view)
        events.view_error.connect(lambda message: w.show_error(message))
        events.selection.connect(lambda _token: self.show_selection())
        events.flow.connect(self._on_flow)
        events.path.connect(self._on_path)
        events.generation_step.connect(self._on_generation_step)

    # The person's choices -> session -------------------------------------------------------------
    def _on_controls_changed(self) -> None:
        if self.session.run is not None:
            self.session.set_spec(self.window.view_controls.spec())

    def _on_display_changed(self, *_) -> None:
        controls = self.window.view_controls
        self.window.heatmap.set_log_scale(controls.log_check.isChecked())
        self.window.heatmap.set_colormap(controls.colormap_box.currentText())
        self.window.head_overview.set_colormap(controls.colormap_box.currentText())

    def _on_head_selected(self, layer: int, head: int) -> None:
        if self.session.run is not None:
            self.session.set_spec(kind="head", layer=layer, head=head)

    def _on_row_selected(self, row: int) -> None:
        token = self.session.token_of_row(row)
        if token is not None:
            self.session.select_token(token)

    def _on_token_selected(self, token: int) -> None:
        if self.session.run is not None and 0 <= token < self.session.run.num_tokens:
            self.session.select_token(token)

    # Session -> widgets ----------------------------------------------------------------------------
    def _on_result(self, result) -> None:
        if result is None:
            return
        w, run = self.window, result.run
        w.view_controls.set_limits(run.num_layers, run.num_heads, has_decoder=run.decoder_attentions is not None)
        w.view_controls.set_spec(self.session.spec)

        def current() -> bool:
            return self.session.result is result

        later(w, current, lambda: w.head_overview.set_heads(result.thumbnails, result.head_stats,
                                                            masked=run.model.is_causal))
        later(w, current, lambda: self._show_tokens(result))
        later(w, current, lambda: (self.show_selection(), w.analysis_ready.emit()))

    def _on_generation_step(self, index) -> None:
        """A generation step shows, in every head's tile, the attention row of the position
        that predicted the stepped-to token (after the result's thumbnails are drawn)."""
        result = self.session.result
        if result is None:
            return
        later(self.window, lambda: self.session.result is result and self.session.generation_step == index,
              lambda: self.show_step_rows(result, index))

    def show_step_rows(self, result, index) -> None:
        from analysis.attention.head_stats import key_blocks, query_rows

        overview, run = self.window.head_overview, result.run
        if index is None or run.prompt_length is None or overview.is_empty():
            overview.set_query_rows(None)
            return
        position = run.prompt_length + index - 1
        size = result.thumbnails.shape[-1]
        rows = query_rows(run.attentions, position, size=size)
        blocks = key_blocks(run.num_tokens, size)
        masked_from = int(np.searchsorted(blocks, position, side="right")) if run.model.is_causal else None
        labels = run.labels
        step = run.generation.steps[index] if run.generation is not None else None
        chosen = (step.text or step.token) if step is not None else labels[position + 1]
        top = np.asarray(run.attentions[:, :, position, :], dtype=np.float32).argmax(axis=-1)
        tips = [[f"token {position} looks most at {int(k)} {labels[int(k)]!r} "
                 f"({float(run.attentions[layer, head, position, int(k)]):.3f})"
                 for head, k in enumerate(top[layer])] for layer in range(top.shape[0])]
        caption = f"token {position} {labels[position]!r}, which predicted {chosen!r}"
        overview.set_query_rows(rows, caption, masked_from=masked_from if masked_from < size else None, tips=tips)

    def _show_tokens(self, result) -> None:
        run = result.run
        self.window.token_view.set_tokens(run.text, run.pair, run.labels, run.offsets, run.segment_ids,
                                          run.special_mask)
        self.window.token_view.set_generated_from(run.prompt_length)
        self._tokens_of = result

    def _on_spec(self, spec) -> None:
        self.window.view_controls.set_spec(spec)

    def _on_view(self, view) -> None:
        w = self.window
        if view is None:
            w.heatmap.clear()
            missing = self.session.missing_contribution
            if missing is not None:
                from analysis.options import VIEW_ITEMS, label_of

                self._computing = (f"Computing {label_of(VIEW_ITEMS, missing)} for this run from the model "
                                   "(progress in the status bar; Esc cancels)…")
                w.input_panel.show_message(self._computing)
            return
        if self._computing is not None:  # the contributions it announced have arrived
            if w.input_panel.message.text() == self._computing:
                w.input_panel.show_message("")
            self._computing = None
        w.heatmap.set_matrix(view.matrix, view.row_labels, view.col_labels, masked=view.masked, title=view.title)
        w.heatmap.set_generated_from(*self.first_generated(view))
        spec = view.spec
        if spec.kind == "head" and spec.stack == "self":
            w.head_overview.set_current(spec.layer, spec.head)
        path = self.session.path
        w.heatmap.highlight_path(list(path.nodes) if path is not None else [])
        self.show_selection()
        w.view_ready.emit()

    def _on_path(self, path) -> None:
        self.window.heatmap.highlight_path(list(path.nodes) if path is not None else [])

    def _on_flow(self, flow) -> None:
        self.show_selection()
        if flow is not None:
            s = self.session
            self.window.statusBar().showMessage(
                f"Attention flow from '{s.run.labels[s.flow_query]}' at layer {s.view.spec.layer}", 5000)
            self.window.flow_ready.emit()

    def first_generated(self, view) -> tuple[int | None, int | None]:
        """The first view row and column holding a generated token (None, None otherwise)."""
        start = self.session.run.prompt_length
        if start is None or view.spec.stack != "self":
            return None, None
        row = next((r for r, group in enumerate(view.row_tokens) if group[-1] >= start), None)
        col = next((c for c, group in enumerate(view.col_tokens) if group[-1] >= start), None)
        return row, col

    def show_selection(self) -> None:
        """The selected token in the heatmap and the token view (and its row's colours)."""
        s, w = self.session, self.window
        view = s.view
        if view is None or s.run is None:
            return
        row = s.row_of(s.selected_token)
        w.heatmap.select_token(row)
        if self._tokens_of is not s.result:
            return  # the token view gets this analysis's tokens on a later turn, then its colours
        if view.spec.stack != "self":
            w.token_view.set_weights(None, None)
        elif view.spec.kind == "flow" and s.flow is not None:
            w.token_view.set_weights(self.per_run_token(s.flow), s.flow_query)
        elif row is not None:
            w.token_view.set_weights(self.per_run_token(view.matrix[row]), s.selected_token)
        else:
            w.token_view.set_weights(None, None)

    def per_run_token(self, column_values: np.ndarray) -> np.ndarray:
        """Spread view-column values back onto run tokens (a word's value on each piece)."""
        s = self.session
        weights = np.zeros(s.run.num_tokens)
        for value, group in zip(column_values, s.view.col_tokens, strict=True):
            weights[list(group)] = value
        return weights
