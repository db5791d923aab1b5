"""The window's attribution: the Attribution panel, run on the shown analysis or generation.

A mixin of :class:`app.main_window.MainWindow`. The planner runs the attribution in the
model lane (Esc cancels); a generation's rows arrive as partial results; clicking a unit
of the result selects its token in every view.
"""

from __future__ import annotations

from app.tasks import TaskKind

TARGETS = {  # what each kind of model can be asked for (the job says why when a head is missing)
    "decoder": ("next_token", "generation"),
    "encoder-decoder": ("next_token",),
    "encoder": ("similarity", "masked_token", "class", "qa_start", "qa_end"),
}


class AttributionMixin:
    """Attribution in the main window."""

    def attribute(self):
        """Attribute the shown run's output with the panel's settings; returns the task."""
        panel, session = self.attribution_panel, self.session
        if session.run is None:
            self.show_error("Nothing to attribute yet: analyse a text or generate an answer first.")
            return None
        settings = panel.settings()
        if settings["target"] == "similarity" and session.run.pair is None:
            self.show_error("The similarity target compares two texts: switch on the text pair, type the second "
                            "text and analyse again.")
            return None
        self.attribution_dock.raise_()
        panel.set_busy(True)
        panel.show_message("Attributing…")
        task = self.planner.attribute(settings, on_row=self._on_attribution_row)
        self.host.update_busy()
        return task

    def _on_attribution_row(self, payload) -> None:
        row, scores = payload
        self.attribution_panel.show_generation_row(row, scores, ())

    def _on_attribution(self, outcome) -> None:
        panel = self.attribution_panel
        panel.set_busy(False)
        if outcome is None:
            return
        if "generation" in outcome:
            panel.show_generation(outcome["generation"])
        else:
            panel.show_attribution(outcome["attribution"], outcome.get("comparison"))
        self.attribution_ready.emit()

    def _on_result_for_attribution(self, result) -> None:
        panel = self.attribution_panel
        if result is None:
            return
        panel.set_targets(TARGETS.get(result.run.model.architecture, ()))
        panel.show_message("Pick a method and a target and press Attribute.")

    def _on_attribution_settled(self, task, event: str) -> None:
        """A cancelled attribution (Esc, Cancel) leaves the panel ready for the next one."""
        if task.kind is TaskKind.ATTRIBUTE and event == "cancelled" and task.session is self.session:
            self.attribution_panel.set_busy(False)
            self.attribution_panel.show_message("Cancelled; the previous result, if any, is still shown.")

    def _on_attribution_error(self, kind: TaskKind, message: str) -> None:
        if kind is TaskKind.ATTRIBUTE:
            self.attribution_panel.set_busy(False)
            self.attribution_panel.show_message(f"The attribution failed: {message}")
            self.show_error(f"The attribution failed: {message}")

    def _on_attribution_token(self, token: int) -> None:
        """A unit of the result was clicked: select its token, when the attribution's tokens
        are the run's (a similarity encodes each text on its own: no token of the run)."""
        run, outcome = self.session.run, self.session.attribution
        result = (outcome or {}).get("attribution") or (outcome or {}).get("generation")
        if run is not None and result is not None and tuple(result.inputs.tokens) == tuple(run.tokens):
            self.session.select_token(token)
