"""The window's exports: each writes what the session shows now, or explains why it cannot.

An export of a result that is out of date (a graph still being computed for a new view, a
graph that failed) is refused with a message instead of writing the old picture. A write
that fails names what could not be written and changes nothing else.
"""

from __future__ import annotations

from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QSpinBox,
    QWidget,
)

from analysis.io.folder import write_matrix_csv

FIGURE_FILTERS = "PNG image (*.png);;SVG vector image (*.svg);;PDF document (*.pdf)"


class ImageExportDialog(QDialog):
    """Ask for the width in pixels and the DPI of a figure, and whether to keep the
    on-screen highlight (the selected token, the path)."""

    def __init__(self, parent: QWidget | None, width: int = 1600, dpi: int = 150) -> None:
        super().__init__(parent)
        self.setWindowTitle("Figure size")
        self.width_spin = QSpinBox()
        self.width_spin.setRange(200, 12000)
        self.width_spin.setValue(width)
        self.width_spin.setSuffix(" px")
        self.dpi_spin = QSpinBox()
        self.dpi_spin.setRange(72, 1200)
        self.dpi_spin.setValue(dpi)
        self.dpi_spin.setSuffix(" dpi")
        self.highlight_check = QCheckBox("Keep the highlighted token and path")
        self.highlight_check.setToolTip("Off (the default): a clean figure, without the on-screen selection marks")
        form = QFormLayout(self)
        form.addRow("Width", self.width_spin)
        form.addRow("Resolution", self.dpi_spin)
        form.addRow("", self.highlight_check)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)


def with_suffix(path: str, chosen_filter: str, default: str) -> str:
    """``path`` with the extension of the chosen file-dialog filter when it has none."""
    lowered = path.lower()
    for suffix in (".png", ".svg", ".csv", ".gexf", ".graphml", ".pdf"):
        if lowered.endswith(suffix):
            return path
    for suffix in (".png", ".svg", ".csv", ".gexf", ".graphml", ".pdf"):
        if f"*{suffix}" in chosen_filter:
            return path + suffix
    return path + default


class Exports:
    """Export actions of a window: ``window.session``, ``window.show_error`` and the widgets."""

    def __init__(self, window) -> None:
        self.window = window

    @property
    def session(self):
        return self.window.session

    def _write(self, what: str, path: str, write) -> bool:
        """Run ``write()``; on failure a clear message naming ``what`` and False, else a status line."""
        try:
            write()
        except OSError as error:
            self.window.show_error(f"Could not export {what}: {error}")
            return False
        self.window.statusBar().showMessage(f"Saved {path}", 5000)
        return True

    def _require_view(self) -> bool:
        if self.session.view is None:
            self.window.show_error("Nothing to export yet: analyse a text first.")
            return False
        return True

    def _require_graph(self) -> bool:
        """The graph on the canvas is the current view's (not an older one being replaced)."""
        s = self.session
        binding = self.window.graph_binding
        if s.view is None:
            self.window.show_error("There is no graph to export yet: analyse a text first.")
            return False
        drawn = binding._drawn
        if drawn is None or drawn not in (s.graph, s.layered):
            from app.tasks import TaskKind

            failed = s.errors.get(TaskKind.GRAPH)
            reason = (f"the graph of this view could not be computed ({failed})" if failed
                      else "the graph of this view is still being computed; export it once it is drawn")
            self.window.show_error(f"Nothing exported: {reason}.")
            return False
        return True

    # Writers (tests and the smoke test call these directly) -------------------------------------
    def export_heatmap(self, path: str, *, width: int | None = None, dpi: int = 150) -> bool:
        """PNG or SVG by extension; a clear message and False when it cannot be written."""
        if not self._require_view():
            return False
        heatmap = self.window.heatmap
        if path.lower().endswith(".svg"):
            return self._write("the heatmap", path, lambda: heatmap.export_svg(path))
        return self._write("the heatmap", path, lambda: heatmap.export_png(path, width=width, dpi=dpi))

    def export_matrix(self, path: str) -> bool:
        view, run = self.session.view, self.session.run
        return self._require_view() and self._write(
            "the matrix", path, lambda: write_matrix_csv(path, view.matrix, view.row_labels, view.col_labels,
                                                         view=view, model=run.model.name))

    def export_folder(self, folder: str) -> bool:
        """The same four files as ``attention-atlas analyze``, for the current view and graph."""
        if not self._require_view():
            return False
        from analysis.io.folder import write_analysis_folder

        s = self.session
        graph = s.graph.result if s.graph is not None else None
        flow = s.flow if s.view.spec.kind == "flow" else None
        return self._write("the analysis", folder,
                           lambda: write_analysis_folder(folder, s.run, s.view, graph, flow))

    def export_graph_image(self, path: str, *, width: int | None = None) -> bool:
        if not self._require_graph():
            return False
        canvas = self.window.graph_panel.canvas
        if path.lower().endswith(".svg"):
            return self._write("the graph", path, lambda: canvas.export_svg(path))
        return self._write("the graph", path, lambda: canvas.export_png(path, width=width))

    def export_network(self, path: str) -> bool:
        s = self.session
        if not self._require_graph():
            return False
        if s.graph is None:
            self.window.show_error("Nothing exported: the token graph of this view is still being computed.")
            return False
        from analysis.graph.export import write_gexf, write_graphml

        writer = write_graphml if path.lower().endswith(".graphml") else write_gexf
        options = self.network_options()
        return self._write("the graph", path, lambda: writer(s.graph.result, s.view.row_labels, path, **options))

    def network_options(self) -> dict:
        """What a GEXF/GraphML file of the token graph records besides the graph, as the
        canvas shows it: ``positions`` (the canvas's node positions when it draws this graph,
        else those the session has for the chosen layout, else None: the arc), the size
        metric, and the run's facts: ``model``, ``view`` and ``meta`` (layer, head, layout)."""
        s, canvas = self.session, self.window.graph_panel.canvas
        n = s.graph.result.n
        positions = None
        if self.window.graph_binding._drawn is s.graph and canvas.node_positions().shape == (n, 2):
            positions, layout = canvas.node_positions(), canvas.layout_kind()
        else:  # the canvas shows another picture (the graph across layers)
            known = s.positions.get(s.layout)
            if known is not None and known.shape == (n, 2):
                positions, layout = known, s.layout
            else:
                layout = "arc"  # what the file gets without positions
        spec = s.view.spec
        meta = {"layer": int(spec.layer), "layout": layout}
        if spec.kind == "head":
            meta["head"] = int(spec.head)
        metric = canvas.size_metric()
        return {
            "positions": positions,
            "size_metric": metric if metric in s.graph.result.metrics else "pagerank",
            "model": s.run.model.name,
            "view": s.view,
            "meta": meta,
        }

    def figure_name(self, what: str, suffix: str) -> str:
        """A file name that says what it holds, e.g. ``minilm_L2H3_heatmap.svg``."""
        s = self.session
        model = (s.run.model.name if s.run is not None else "attention").split(" ")[0].split("/")[-1]
        spec = s.view.spec if s.view is not None else None
        where = ""
        if spec is not None:
            where = f"_L{spec.layer}H{spec.head}" if spec.kind == "head" else f"_L{spec.layer}{spec.kind}"
        return f"{model}{where}_{what}{suffix}".replace(" ", "_")

    def _folder(self) -> str:
        return str(self.window.settings.value("export/folder") or "")

    def _remember(self, path: str) -> None:
        from pathlib import Path

        self.window.settings.setValue("export/folder", str(Path(path).parent))

    def export_figure(self, what: str, path: str, *, width: int | None = None, dpi: float | None = None,
                      include_highlight: bool = False) -> bool:
        """A figure of one view (``heatmap``, ``graph``, ``heads``, ``tokens``) as PNG, SVG or
        PDF by extension: clean unless ``include_highlight``, titled by the view."""
        if not self._require_view() or (what == "graph" and not self._require_graph()):
            return False
        w = self.window
        widget = {"heatmap": w.heatmap, "graph": w.graph_panel.canvas, "heads": w.head_overview,
                  "tokens": w.token_view}[what]
        title = f"{self.session.view.title} · graph" if what == "graph" else None
        try:
            return self._write(f"the {what} figure", path, lambda: widget.export_figure(
                path, width=width, dpi=dpi, include_highlight=include_highlight, title=title))
        except ValueError as error:
            w.show_error(f"Could not export the {what} figure: {error}")
            return False

    def export_report(self, path: str) -> bool:
        """One self-contained HTML file of the analysis (heatmap, heads, tokens, graph)."""
        if not self._require_view():
            return False
        from analysis.io.report import write_html_report

        s = self.session
        graph = s.graph.result if s.graph is not None else None
        return self._write("the report", path, lambda: write_html_report(
            path, s.run, s.view, graph, head_stats=s.result.head_stats, flow=s.flow,
            colormap=self.window.view_controls.colormap_box.currentText(), selected=s.row_of(s.selected_token)))

    def export_head_table(self, path: str) -> bool:
        if not self._require_view():
            return False
        return self._write("the head table", path, lambda: self.window.head_overview.export_head_table_csv(path))

    def figure_dialog(self, what: str) -> None:
        if not self._require_view() or (what == "graph" and not self._require_graph()):
            return
        from pathlib import Path

        proposed = str(Path(self._folder()) / self.figure_name(what, ".png"))
        path, chosen = QFileDialog.getSaveFileName(self.window, f"Export the {what} figure", proposed, FIGURE_FILTERS)
        if not path:
            return
        path = with_suffix(path, chosen, ".png")
        self._remember(path)
        dialog = ImageExportDialog(self.window)
        if dialog.exec() == QDialog.Accepted:
            self.export_figure(what, path, width=dialog.width_spin.value(), dpi=dialog.dpi_spin.value(),
                               include_highlight=dialog.highlight_check.isChecked())

    def report_dialog(self) -> None:
        if self._require_view():
            from pathlib import Path

            proposed = str(Path(self._folder()) / self.figure_name("report", ".html"))
            path, _ = QFileDialog.getSaveFileName(self.window, "Export an HTML report", proposed, "HTML (*.html)")
            if path:
                path = path if path.lower().endswith((".html", ".htm")) else path + ".html"
                self._remember(path)
                self.export_report(path)

    def head_table_dialog(self) -> None:
        if self._require_view():
            from pathlib import Path

            proposed = str(Path(self._folder()) / self.figure_name("heads", ".csv"))
            path, chosen = QFileDialog.getSaveFileName(self.window, "Export the head table", proposed, "CSV (*.csv)")
            if path:
                path = with_suffix(path, chosen, ".csv")
                self._remember(path)
                self.export_head_table(path)

    # Dialogs ----------------------------------------------------------------------------------------
    def matrix_dialog(self) -> None:
        if self._require_view():
            path, chosen = QFileDialog.getSaveFileName(self.window, "Export matrix", "attention.csv", "CSV (*.csv)")
            if path:
                self.export_matrix(with_suffix(path, chosen, ".csv"))

    def folder_dialog(self) -> None:
        if self._require_view():
            folder = QFileDialog.getExistingDirectory(self.window, "Save the analysis into a folder")
            if folder:
                self.export_folder(folder)

    def network_dialog(self) -> None:
        if self._require_graph():
            path, chosen = QFileDialog.getSaveFileName(self.window, "Export graph", "graph.gexf",
                                                       "GEXF (*.gexf);;GraphML (*.graphml)")
            if path:
                self.export_network(with_suffix(path, chosen, ".gexf"))
