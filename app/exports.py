"""The window's exports: each writes what the session shows now, or explains why it cannot.

An export of a result that is out of date (a graph still being computed for a new view, a
graph that failed) is refused with a message instead of writing the old picture. A write
that fails names what could not be written and changes nothing else.
"""

from __future__ import annotations

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QSpinBox, QWidget

from analysis.io.folder import write_matrix_csv


class ImageExportDialog(QDialog):
    """Ask for the width in pixels and the DPI of a PNG."""

    def __init__(self, parent: QWidget | None, width: int = 1600, dpi: int = 150) -> None:
        super().__init__(parent)
        self.setWindowTitle("PNG size")
        self.width_spin = QSpinBox()
        self.width_spin.setRange(200, 12000)
        self.width_spin.setValue(width)
        self.width_spin.setSuffix(" px")
        self.dpi_spin = QSpinBox()
        self.dpi_spin.setRange(72, 1200)
        self.dpi_spin.setValue(dpi)
        self.dpi_spin.setSuffix(" dpi")
        form = QFormLayout(self)
        form.addRow("Width", self.width_spin)
        form.addRow("Resolution", self.dpi_spin)
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
        return self._write("the graph", path, lambda: writer(s.graph.result, s.view.row_labels, path))

    # Dialogs ----------------------------------------------------------------------------------------
    def heatmap_dialog(self) -> None:
        if not self._require_view():
            return
        path, chosen = QFileDialog.getSaveFileName(self.window, "Export heatmap", "attention.png",
                                                   "PNG image (*.png);;SVG vector image (*.svg)")
        if not path:
            return
        path = with_suffix(path, chosen, ".png")
        if path.lower().endswith(".svg"):
            self.export_heatmap(path)
            return
        dialog = ImageExportDialog(self.window)
        if dialog.exec() == QDialog.Accepted:
            self.export_heatmap(path, width=dialog.width_spin.value(), dpi=dialog.dpi_spin.value())

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

    def graph_image_dialog(self) -> None:
        if self._require_graph():
            path, chosen = QFileDialog.getSaveFileName(self.window, "Export graph", "graph.png",
                                                       "PNG image (*.png);;SVG vector image (*.svg)")
            if path:
                self.export_graph_image(with_suffix(path, chosen, ".png"))

    def network_dialog(self) -> None:
        if self._require_graph():
            path, chosen = QFileDialog.getSaveFileName(self.window, "Export graph", "graph.gexf",
                                                       "GEXF (*.gexf);;GraphML (*.graphml)")
            if path:
                self.export_network(with_suffix(path, chosen, ".gexf"))
