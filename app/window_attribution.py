"""The window's attribution: the Attribution panel, run on the shown analysis or generation.

A mixin of :class:`app.main_window.MainWindow`. The planner runs the attribution in the
model lane (Esc cancels); a generation's rows arrive as partial results; clicking a unit
of the result selects its token in every view.
"""

from __future__ import annotations

from app.tasks import TaskKind

EXPORT_TITLES = {"strip": "the attribution strip", "bars": "the attribution bar chart",
                 "matrix": "the generation's attribution matrix", "scores": "the attribution scores",
                 "comparison": "the comparison of methods"}

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

    def _connect_attribution(self) -> None:
        """The panel's requests and the linked selection (called once, by the window)."""
        panel = self.attribution_panel
        panel.run_requested.connect(self.attribute)
        panel.cancel_requested.connect(self.cancel)
        panel.token_selected.connect(self._on_attribution_token)
        panel.export_requested.connect(self.attribution_export_dialog)
        self.session.events.selection.connect(self._on_selection_for_attribution)
        self.session.events.attribution.connect(
            lambda _outcome: self._on_selection_for_attribution(self.session.selected_token))

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

    def _on_selection_for_attribution(self, token) -> None:
        """Linked selection: a token selected in any view is framed in the panel too."""
        run, outcome = self.session.run, self.session.attribution
        result = (outcome or {}).get("attribution") or (outcome or {}).get("generation")
        same_tokens = run is not None and result is not None and tuple(result.inputs.tokens) == tuple(run.tokens)
        self.attribution_panel.set_selected_token(token if same_tokens else None)

    def attribution_file_name(self, what: str, suffix: str) -> str:
        """e.g. ``SmolLM2_integrated_gradients_strip.svg``."""
        result = self.attribution_panel.result()
        model = (self.session.run.model.name if self.session.run is not None else "attention").split(" ")[0]
        method = result.method if result is not None else "attribution"
        return f"{model.split('/')[-1]}_{method}_{what}{suffix}".replace(" ", "_")

    def export_attribution(self, what: str, path: str, *, width: int | None = None, dpi: float | None = None,
                           include_highlight: bool = False) -> bool:
        """Write one of the panel's views (``strip``, ``bars``, ``matrix``) as a figure or
        its ``scores`` / ``comparison`` as CSV; a failure is explained in the window."""
        panel = self.attribution_panel
        try:
            if what == "scores":
                panel.export_scores_csv(path)
            elif what == "comparison":
                panel.export_comparison_csv(path)
            else:
                panel.export_figure(what, path, width=width, dpi=dpi, include_highlight=include_highlight)
        except (ValueError, OSError) as error:
            self.show_error(f"Could not export {EXPORT_TITLES[what]}: {error}")
            return False
        self.statusBar().showMessage(f"Saved {EXPORT_TITLES[what]} to {path}", 5000)
        return True

    def attribution_export_dialog(self, what: str) -> None:
        from pathlib import Path

        from PySide6.QtWidgets import QDialog, QFileDialog

        from app.exports import FIGURE_FILTERS, ImageExportDialog, with_suffix

        if self.attribution_panel.result() is None:
            self.show_error("Nothing to export yet: attribute first (the Attribution panel).")
            return
        table = what in ("scores", "comparison")
        suffix = ".csv" if table else ".png"
        folder = str(self.settings.value("export/folder") or "")
        proposed = str(Path(folder) / self.attribution_file_name(what, suffix))
        filters = "CSV (*.csv)" if table else FIGURE_FILTERS
        path, chosen = QFileDialog.getSaveFileName(self, f"Export {EXPORT_TITLES[what]}", proposed, filters)
        if not path:
            return
        path = with_suffix(path, chosen, suffix)
        self.settings.setValue("export/folder", str(Path(path).parent))
        if table:
            self.export_attribution(what, path)
            return
        dialog = ImageExportDialog(self)
        if dialog.exec() == QDialog.Accepted:
            self.export_attribution(what, path, width=dialog.width_spin.value(), dpi=dialog.dpi_spin.value(),
                                    include_highlight=dialog.highlight_check.isChecked())
