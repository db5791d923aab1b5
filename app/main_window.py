"""The main window: composes the widgets, keeps the analysis state, talks to the worker.

State flows one way: a finished analysis (an ``AttentionRun``) -> the current view (sliced in
this thread, from memory) -> the heatmap, token view and head overview at once; then the
view's graph, paths and flow are computed in the worker and drawn when they arrive. The
person's text is never cleared by a failure, and a failed or cancelled run keeps the
previous result on screen.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QGuiApplication, QIcon, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDockWidget,
    QFileDialog,
    QFormLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QSpinBox,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from analysis.attention.views import (
    AttentionView,
    ViewSpec,
    make_view,
    stack_attentions,
    values_for_view,
    view_position,
)
from analysis.io.folder import write_matrix_csv
from analysis.models.hub_cache import cached_hub_models
from app.jobs import (
    AnalyseRequest,
    AnalysisResult,
    GraphOutcome,
    GraphRequest,
    LayeredOutcome,
    analyse_job,
    flow_job,
    graph_job,
    layered_job,
    path_job,
    route_job,
    warm_up_job,
)
from app.worker import WorkerClient
from resources import resource_path, sample_texts
from widgets.graph_panel import GraphPanel
from widgets.head_grid import HeadOverview
from widgets.heatmap import COLORMAPS, AttentionHeatmap
from widgets.input_panel import InputPanel
from widgets.metrics_table import MetricsTable
from widgets.token_view import TokenTextView
from widgets.view_controls import ViewControls

APP_NAME = "Attention Atlas"
DEFAULT_SOURCE = "default"
DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2 (embedded)"
MAX_RECENT = 8
LATER_MS = 10  # _later(): a real timer, so repaints and input pending before it go first
LAYERED_KINDS = ("rollout", "flow")  # views whose graph can be shown across layers


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


class MainWindow(QMainWindow):
    """Attention Atlas's window. ``analysis_ready``/``graph_ready`` help tests and the smoke test."""

    analysis_ready = Signal()
    view_ready = Signal()
    graph_ready = Signal()
    layered_ready = Signal()  # the graph across layers is on the canvas
    flow_ready = Signal()
    path_ready = Signal()
    error_shown = Signal(str)
    warmed_up = Signal()

    def __init__(self, settings: QSettings | None = None, parent: QWidget | None = None, *, warm_up: bool = True) -> None:
        super().__init__(parent)
        self.setWindowTitle(APP_NAME)
        self.settings = settings or QSettings()
        self.worker = WorkerClient(self)
        self.result: AnalysisResult | None = None
        self.view: AttentionView | None = None
        self.graph = None
        self.graph_positions: dict[str, np.ndarray] = {}
        self.flow: np.ndarray | None = None
        self.selected_token: int | None = None  # a run token index
        self.path_source: int | None = None  # view rows
        self.path_target: int | None = None
        self.path = None
        self._graph_info = ""
        # Rollout / flow views with the "layered" layout: the graph across layers (nodes =
        # tokens at each level, analysis.graph.layered) replaces the token graph on the canvas.
        self.graph_layout = "arc"  # the layout the person chose on the canvas
        self.layered = None  # analysis.graph.layered.LayeredGraph on the canvas; None: token graph
        self._layered_key: tuple | None = None  # (stack, layer, rule) shown or being built
        self.route = None  # analysis.graph.paths.LayeredPathResult
        self.route_query: int | None = None  # token indices of the view's stack
        self.route_target: int | None = None
        self._analysed_source: str | None = None
        self._view_key: tuple | None = None

        self._build_widgets()
        self._build_docks()
        self._build_actions()
        self._connect()
        self._restore_settings()
        self._update_placeholders()
        if warm_up:
            QTimer.singleShot(400, self._warm_up)  # after the window has painted

    def _warm_up(self) -> None:
        """Load the chosen model in the worker while the person types (see ``warm_up_job``)."""
        if not self.worker.is_busy("analyse"):
            self.worker.submit("warmup", warm_up_job(self.current_source()))

    # Construction ------------------------------------------------------------------------
    def _build_widgets(self) -> None:
        self.input_panel = InputPanel(sample_texts())
        self.model_box = QComboBox()
        self.model_box.setMinimumWidth(260)
        self.model_box.setToolTip("The model to analyse with: the embedded default, a local folder, or a cached hub model")
        self.view_controls = ViewControls(tuple(COLORMAPS))
        self.heatmap = AttentionHeatmap()
        self.head_overview = HeadOverview()
        self.token_view = TokenTextView()
        self.graph_panel = GraphPanel()
        self.graph_panel.canvas.set_size_metric("pagerank")
        self.metrics_table = MetricsTable()

        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.view_controls)
        layout.addWidget(self.heatmap, 1)
        self.setCentralWidget(central)

        self.status_model = QLabel()
        self.status_notice = QLabel()
        self.status_notice.setStyleSheet("color: #8a5a00;")
        self.statusBar().addWidget(self.status_model)
        self.statusBar().addPermanentWidget(self.status_notice)

    def _dock(self, title: str, name: str, widget: QWidget, area) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _build_docks(self) -> None:
        self.input_dock = self._dock("Input", "inputDock", self.input_panel, Qt.LeftDockWidgetArea)
        self.heads_dock = self._dock("Heads", "headsDock", self.head_overview, Qt.LeftDockWidgetArea)
        self.graph_dock = self._dock("Graph", "graphDock", self.graph_panel, Qt.RightDockWidgetArea)
        self.tokens_dock = self._dock("Tokens", "tokensDock", self.token_view, Qt.BottomDockWidgetArea)
        self.metrics_dock = self._dock("Metrics", "metricsDock", self.metrics_table, Qt.BottomDockWidgetArea)
        self.tabifyDockWidget(self.tokens_dock, self.metrics_dock)
        self.tokens_dock.raise_()
        self.setDockOptions(QMainWindow.AnimatedDocks | QMainWindow.AllowTabbedDocks | QMainWindow.AllowNestedDocks)

    def _fit_to_screen(self) -> None:
        """First start: fill most of the screen, heatmap in the middle, docks in proportion."""
        screen = QGuiApplication.primaryScreen()
        available = screen.availableGeometry() if screen is not None else None
        width = min(1500, int(available.width() * 0.96)) if available else 1500
        height = min(940, int(available.height() * 0.94)) if available else 940
        self.resize(width, height)
        self._split_docks()
        QTimer.singleShot(0, self._split_docks)  # again once shown: Qt lays docks out on show

    def _split_docks(self) -> None:
        width, height = self.width(), self.height()
        self.resizeDocks([self.input_dock, self.graph_dock], [int(width * 0.22), int(width * 0.34)], Qt.Horizontal)
        self.resizeDocks([self.input_dock, self.heads_dock], [int(height * 0.45), int(height * 0.35)], Qt.Vertical)
        self.resizeDocks([self.tokens_dock], [int(height * 0.12)], Qt.Vertical)

    def _action(self, menu, text: str, slot, shortcut=None, tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.setStatusTip(tip or text)
        action.setToolTip(tip or text)
        action.triggered.connect(slot)
        menu.addAction(action)
        return action

    def _build_actions(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self.open_text_action = self._action(file_menu, "&Open text…", self.open_text_dialog, QKeySequence.Open, "Open a UTF-8 text file")
        self.open_model_action = self._action(file_menu, "Open &model folder…", self.open_model_dialog, "Ctrl+Shift+O", "Use a local model folder in Hugging Face format")
        file_menu.addSeparator()
        self.export_image_action = self._action(file_menu, "&Export heatmap image…", self.export_heatmap_dialog, "Ctrl+E", "Save the heatmap as PNG (choose size and DPI) or SVG")
        self.export_csv_action = self._action(file_menu, "Export heatmap &matrix as CSV…", self.export_matrix_dialog, "Ctrl+Shift+E", "Save the current view's matrix with token labels")
        self.export_folder_action = self._action(file_menu, "&Save analysis folder…", self.export_folder_dialog, QKeySequence.Save, "Write attention.npz, tokens.csv, edges.csv and summary.json, as the command line does")
        self.export_graph_action = self._action(file_menu, "Export &graph image…", self.export_graph_image_dialog, "Ctrl+Shift+G", "Save the graph canvas as PNG or SVG")
        self.export_network_action = self._action(file_menu, "Export graph for &Gephi/Cytoscape…", self.export_network_dialog, None, "Save the graph as GEXF or GraphML")
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", self.close, QKeySequence.Quit)

        run_menu = self.menuBar().addMenu("&Analysis")
        self.analyse_action = self._action(run_menu, "&Analyse", self.analyse, "Ctrl+Return", "Run the model on the text (Ctrl+Enter)")
        self.analyse_action.setShortcuts([QKeySequence("Ctrl+Return"), QKeySequence("Ctrl+Enter")])
        self.cancel_action = self._action(run_menu, "&Cancel", self.cancel, "Esc", "Stop the running work; the previous result stays")
        run_menu.addSeparator()
        self._action(run_menu, "Next layer", lambda: self._step("layer", 1), "PgDown")
        self._action(run_menu, "Previous layer", lambda: self._step("layer", -1), "PgUp")
        self._action(run_menu, "Next head", lambda: self._step("head", 1), "Ctrl+Right")
        self._action(run_menu, "Previous head", lambda: self._step("head", -1), "Ctrl+Left")

        view_menu = self.menuBar().addMenu("&View")
        for dock in (self.input_dock, self.heads_dock, self.graph_dock, self.tokens_dock, self.metrics_dock):
            view_menu.addAction(dock.toggleViewAction())
        view_menu.addSeparator()
        self._action(view_menu, "Reset heatmap zoom", self.heatmap.reset_view, "Ctrl+0")

        help_menu = self.menuBar().addMenu("&Help")
        self._action(help_menu, "What the numbers mean", self.show_conventions, "F1")
        self._action(help_menu, "About Attention Atlas", self.show_about)

        toolbar = QToolBar("Model")
        toolbar.setObjectName("modelToolbar")
        toolbar.addWidget(QLabel(" Model "))
        toolbar.addWidget(self.model_box)
        toolbar.addAction(self.open_model_action)
        toolbar.addSeparator()
        toolbar.addAction(self.analyse_action)
        toolbar.addAction(self.export_image_action)
        self.addToolBar(toolbar)

    def _connect(self) -> None:
        self.input_panel.analyse_requested.connect(self.analyse)
        self.input_panel.cancel_requested.connect(self.cancel)
        self.input_panel.file_error.connect(self.show_error)
        self.model_box.activated.connect(self._on_model_chosen)
        self.view_controls.changed.connect(self.refresh_view)
        self.view_controls.display_changed.connect(self._on_display_changed)
        self.head_overview.head_selected.connect(self._on_head_selected)
        self.heatmap.token_selected.connect(self._on_view_row_selected)
        self.token_view.token_selected.connect(self._on_run_token_selected)
        self.metrics_table.token_selected.connect(self._on_view_row_selected)
        self.graph_panel.canvas.token_selected.connect(self._on_canvas_node_selected)
        self.graph_panel.canvas.source_selected.connect(self._on_path_source)
        self.graph_panel.canvas.target_selected.connect(self._on_path_target)
        self.graph_panel.canvas.layout_changed.connect(self._on_graph_layout_changed)
        self.graph_panel.settings_changed.connect(self.request_graph)
        self.graph_panel.path_kind_changed.connect(self.request_path)
        self._progress_text: dict[str, str] = {}  # per job kind: its progress line in the status bar
        self.worker.progress.connect(self._on_progress)
        self.worker.finished.connect(self._on_finished)
        self.worker.failed.connect(self._on_failed)
        self.worker.cancelled.connect(self._on_cancelled)
        self.worker.busy_changed.connect(self.input_panel.set_busy)

    # Settings ------------------------------------------------------------------------------
    def _restore_settings(self) -> None:
        geometry = self.settings.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self._fit_to_screen()
        state = self.settings.value("window/state")
        if state is not None:
            self.restoreState(state)
        self._fill_model_box(str(self.settings.value("model/last", DEFAULT_SOURCE)))
        text = self.settings.value("input/text")
        if text:
            self.input_panel.set_texts(str(text), self.settings.value("input/pair") or None)
        colormap = self.settings.value("view/colormap")
        if colormap and self.view_controls.colormap_box.findText(str(colormap)) >= 0:
            self.view_controls.colormap_box.setCurrentText(str(colormap))
        self._on_display_changed()

    def save_settings(self) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.settings.setValue("model/last", self.current_source())
        self.settings.setValue("input/text", self.input_panel.text())
        self.settings.setValue("input/pair", self.input_panel.pair() or "")
        self.settings.setValue("view/colormap", self.view_controls.colormap_box.currentText())
        self.settings.sync()

    def recent_models(self) -> list[str]:
        value = self.settings.value("model/recent") or []
        return [value] if isinstance(value, str) else [str(v) for v in value]

    def _remember_model(self, source: str) -> None:
        if source == DEFAULT_SOURCE:
            return
        recent = [source, *[s for s in self.recent_models() if s != source]][:MAX_RECENT]
        self.settings.setValue("model/recent", recent)

    def _fill_model_box(self, current: str) -> None:
        self.model_box.blockSignals(True)
        self.model_box.clear()
        self.model_box.addItem(DEFAULT_MODEL_NAME, DEFAULT_SOURCE)
        self.model_box.setItemData(0, "The embedded sentence-transformers/all-MiniLM-L6-v2 (6 layers × 12 heads)", Qt.ToolTipRole)
        sources = [DEFAULT_SOURCE]
        for source in [*self.recent_models(), *cached_hub_models()]:
            if source not in sources:
                sources.append(source)
                self.model_box.addItem(_model_display_name(source), source)
                self.model_box.setItemData(self.model_box.count() - 1, source, Qt.ToolTipRole)
        if current not in sources:
            self.model_box.addItem(_model_display_name(current), current)
        self.model_box.addItem("Open model folder…", "__open__")
        self.model_box.setCurrentIndex(max(0, self.model_box.findData(current)))
        self.model_box.blockSignals(False)

    def current_source(self) -> str:
        source = self.model_box.currentData()
        return DEFAULT_SOURCE if source in (None, "__open__") else str(source)

    def set_model_source(self, source: str) -> None:
        """Choose a model (a folder path, a hub id or 'default'); the next analysis uses it."""
        if self.model_box.findData(source) < 0:
            self._fill_model_box(source)
        self.model_box.setCurrentIndex(self.model_box.findData(source))

    # Analysis -------------------------------------------------------------------------------
    def analyse(self) -> int | None:
        """Run the model on the text in the worker; returns the request id (None if refused)."""
        text = self.input_panel.text()
        pair = self.input_panel.pair()
        if not text.strip():
            self.show_error("There is no text to analyse: type a sentence or pick a sample.")
            return None
        if pair is not None and not pair.strip():
            self.show_error("The text pair is switched on but its second text is empty.")
            return None
        self.input_panel.show_message("")
        source = self.current_source()
        self._analysed_source = source
        return self.worker.submit("analyse", analyse_job(AnalyseRequest(source, text, pair)))

    def cancel(self) -> None:
        if self.worker.is_busy():
            self.worker.cancel()
            self.input_panel.show_message("Cancelling…")

    def _on_progress(self, kind: str, _id: int, fraction: float, message: str) -> None:
        if kind in ("analyse", "warmup"):
            self.input_panel.set_progress(fraction, message)
        elif kind in ("flow", "graph", "layered"):
            self.statusBar().showMessage(f"{message} {fraction:.0%}", 2000)
            self._progress_text[kind] = self.statusBar().currentMessage()

    def _clear_progress(self, kind: str) -> None:
        """A finished job's last progress line leaves the status bar (other messages stay)."""
        text = self._progress_text.pop(kind, None)
        if text is not None and self.statusBar().currentMessage() == text:
            self.statusBar().clearMessage()

    def _on_finished(self, kind: str, _id: int, result) -> None:
        self._clear_progress(kind)
        handler = {
            "analyse": self._on_analysis,
            "graph": self._on_graph,
            "flow": self._on_flow,
            "path": self._on_path,
            "layered": self._on_layered,
            "route": self._on_route,
            "warmup": self._on_warm_up,
        }[kind]
        handler(result)

    def _on_warm_up(self, facts) -> None:
        if self.result is None:
            self.status_model.setText(f"{facts.name} is loaded: type a text (or pick a sample) and press Ctrl+Enter.")
        self.warmed_up.emit()

    def _on_failed(self, kind: str, _id: int, message: str) -> None:
        self._clear_progress(kind)
        prefix = {"analyse": "The analysis failed", "graph": "The graph could not be computed",
                  "flow": "Attention flow failed", "path": "No path",
                  "layered": "The graph across layers could not be built", "route": "No route",
                  "warmup": "The model could not be loaded"}[kind]
        self.show_error(f"{prefix}: {message}")

    def _on_cancelled(self, kind: str, _id: int) -> None:
        self._clear_progress(kind)
        if kind == "layered":
            self._layered_key = None  # built again on the next change of view, rule or layout
        if kind == "analyse":
            kept = " The previous result is still shown." if self.result is not None else ""
            self.input_panel.show_message("Cancelled." + kept)
        self.statusBar().showMessage(f"{kind.capitalize()} cancelled", 3000)

    def show_error(self, message: str) -> None:
        """A readable message in the window; nothing else changes."""
        self.input_panel.show_message(message, error=True)
        self.statusBar().showMessage(message, 8000)
        self.error_shown.emit(message)

    def _on_analysis(self, result: AnalysisResult) -> None:
        run = result.run
        self.result = result
        self._remember_model(self._analysed_source or DEFAULT_SOURCE)
        facts = run.model
        has_decoder = run.decoder_attentions is not None
        self.view_controls.set_limits(run.num_layers, run.num_heads, has_decoder=has_decoder)
        self.selected_token = None
        self.path_source = self.path_target = None
        self.route_query = self.route_target = None
        self.route = None
        self._layered_key = None  # rebuilt for the new run if the layered layout is chosen
        timings = " · ".join(f"{k} {v:.2f} s" for k, v in run.timings.items() if k in ("load", "forward"))
        self.status_model.setText(
            f"{facts.name} · {run.num_tokens} tokens · {facts.num_layers} layers × {facts.num_heads} heads · {timings}"
        )
        self.status_notice.setText(run.notice or "")
        self.input_panel.show_message(run.notice or f"Analysed {run.num_tokens} tokens.")
        self.refresh_view()
        # The other views on later turns of the event loop, so that no turn (and its repaint)
        # keeps the window from answering for long; analysis_ready once all are shown.
        self._later(result, lambda: self.head_overview.set_heads(
            result.thumbnails, result.head_stats, masked=facts.is_causal))
        self._later(result, lambda: self.token_view.set_tokens(
            run.text, run.pair, run.labels, run.offsets, run.segment_ids, run.special_mask))
        self._later(result, self.analysis_ready.emit)

    def _later(self, owner, step) -> None:
        """Run ``step`` on a later turn of the event loop (a real timer: pending repaints and
        input are handled first), unless ``owner`` (an analysis or a graph) was replaced."""

        def run_if_current() -> None:
            if owner is self.result or owner is self.graph:
                step()

        QTimer.singleShot(LATER_MS, self, run_if_current)  # cancelled if the window goes

    def view_spec(self) -> ViewSpec:
        controls = self.view_controls
        query = self.selected_token if self.selected_token is not None else self._default_query()
        return ViewSpec(
            kind=controls.kind(),
            layer=controls.layer_spin.value(),
            head=controls.head_spin.value(),
            stack=controls.stack() if self.result and self.result.run.decoder_attentions is not None else "self",
            merge_words=controls.words_check.isChecked(),
            drop_special=controls.special_check.isChecked(),
            query=query if controls.kind() == "flow" else None,
        )

    def _default_query(self) -> int:
        """First non-special token: the flow view's query until the person picks one."""
        if self.result is None:
            return 0
        real = np.flatnonzero(~self.result.run.special_mask)
        return int(real[0]) if len(real) else 0

    def refresh_view(self) -> None:
        """Slice the run in memory into the selected view and repaint; graph work goes to the worker."""
        if self.result is None:
            return
        try:
            view = make_view(self.result.run, self.view_spec())
        except ValueError as error:
            self.show_error(str(error))
            return
        key = _view_matrix_key(self.result.run, view.spec)
        matrix_changed = key != self._view_key
        self._view_key = key
        self.view = view
        self.heatmap.set_matrix(view.matrix, view.row_labels, view.col_labels, masked=view.masked, title=view.title)
        spec = view.spec
        if spec.kind == "head" and spec.stack == "self":
            self.head_overview.set_current(spec.layer, spec.head)
        self._show_selection()
        self.view_ready.emit()
        if matrix_changed:
            self.path = None
            self.path_source = self.path_target = None
            self.request_graph()
        if spec.kind == "flow":
            self.request_flow()
        else:
            self.flow = None
        self.graph_panel.canvas.set_layered_available(spec.kind in LAYERED_KINDS and spec.stack != "cross")
        self._sync_layered()

    def _on_display_changed(self, *_):
        self.heatmap.set_log_scale(self.view_controls.log_check.isChecked())
        self.heatmap.set_colormap(self.view_controls.colormap_box.currentText())

    def _step(self, what: str, delta: int) -> None:
        spin = self.view_controls.layer_spin if what == "layer" else self.view_controls.head_spin
        spin.setValue(spin.value() + delta)

    # Graph, flow, paths ---------------------------------------------------------------------
    def request_graph(self) -> None:
        view = self.view
        if view is None:
            return
        if not view.is_square:
            self.graph = None
            self.graph_panel.canvas.set_graph([], np.zeros(0, int), np.zeros(0, int), np.zeros(0))
            self.graph_panel.info.setText("Cross-attention links two token sequences: the graph shows self-attention views.")
            return
        request = GraphRequest(
            matrix=view.matrix,
            rule=self.graph_panel.rule_settings(),  # made a SparsifyRule in the worker
            resolution=self.graph_panel.resolution(),
        )
        self.worker.submit("graph", graph_job(request))
        self._sync_layered()  # a new sparsification rule rebuilds the graph across layers too

    def _on_graph(self, outcome: GraphOutcome) -> None:
        view = self.view
        if view is None or outcome.result.n != len(view.row_labels):
            return  # a graph of a view that is gone
        self.graph = outcome.result
        self.graph_positions = dict(outcome.positions)
        result = outcome.result
        communities = len(set(result.communities.tolist()))
        self._graph_info = (
            f"{len(result.weights)} edges ({result.rule.describe()}) · {communities} communities · "
            f"modularity {result.modularity:.3f} · {result.timings.get('total', sum(result.timings.values())):.3f} s. "
            "Click a node: path source; Shift+click: target."
        )
        if self.layered is None and self._layered_key is None:  # else the graph across layers is shown
            self._draw_token_graph(edges_later=True)
            self._later(result, self.graph_panel.canvas.draw_pending_edges)
        # The table on a later turn of the event loop: each drawing step stays short.
        self._later(result, lambda: self._fill_metrics_table(result))

    def _fill_metrics_table(self, graph) -> None:
        if graph is not self.graph or self.view is None:
            return  # a newer graph arrived in between
        self.metrics_table.set_metrics(self.view.row_labels, self._graph_metrics(), graph.communities)
        self._show_selection()
        self.graph_ready.emit()

    def _graph_metrics(self) -> dict[str, np.ndarray]:
        metrics = dict(self.graph.metrics)
        if self.flow is not None:
            metrics["flow"] = self.flow
        return metrics

    def _draw_token_graph(self, restore_path: bool = False, edges_later: bool = False) -> None:
        """Put the view's token graph (``self.graph``, already computed) on the canvas."""
        view, result, canvas = self.view, self.graph, self.graph_panel.canvas
        if view is None or result is None or result.n != len(view.row_labels):
            return
        canvas.set_graph(view.row_labels, result.sources, result.targets, result.weights,
                         metrics=self._graph_metrics(), communities=result.communities,
                         positions=self.graph_positions, edges_later=edges_later)
        canvas.set_source(self.path_source if self.path_source is not None and self.path_source < result.n else None)
        canvas.set_target(self.path_target if self.path_target is not None and self.path_target < result.n else None)
        self.graph_panel.info.setText(self._graph_info)
        if restore_path and self.path is not None and self.path_source is not None and self.path_target is not None:
            canvas.highlight_path(list(self.path.nodes))
            self.graph_panel.info.setText(self._path_text(self.path))

    # The graph across layers (rollout / flow views, "layered" layout) ----------------------------
    def set_graph_layout(self, kind: str) -> None:
        """Lay the graph out as ``kind``, as picking it in the canvas toolbar does."""
        self.graph_panel.canvas.set_layout(kind)
        self._on_graph_layout_changed(kind)

    def _on_graph_layout_changed(self, kind: str) -> None:
        self.graph_layout = kind
        self._sync_layered()

    def _wants_layered(self) -> bool:
        view = self.view
        return (self.graph_layout == "layered" and self.result is not None and view is not None
                and view.spec.kind in LAYERED_KINDS and view.spec.stack != "cross")

    def _stack_labels(self) -> tuple[str, ...]:
        """Token labels of the view's attention stack (the layered graph is over these tokens)."""
        run = self.result.run
        return tuple(run.decoder_labels or ()) if self.view.spec.stack == "decoder" else tuple(run.labels)

    def _sync_layered(self) -> None:
        """Build the graph across layers when the view and the chosen layout ask for it (once
        per stack, layer and rule); go back to the token graph when they no longer do."""
        if not self._wants_layered():
            if self._layered_key is not None or self.layered is not None:
                self._layered_key = None
                self._leave_layered()
            return
        rule = self.graph_panel.rule_settings()
        spec = self.view.spec
        key = (spec.stack, spec.layer, tuple(sorted(rule.items())))
        if key == self._layered_key:
            return
        self._layered_key = key
        attentions = stack_attentions(self.result.run, spec.stack)
        self.worker.submit("layered", layered_job(attentions, spec.layer, rule, spec.stack))

    def _leave_layered(self) -> None:
        self.layered = None
        self.route = None
        if not self.worker.is_busy("graph"):  # else _on_graph draws the new token graph
            self._draw_token_graph(restore_path=True)
            self._show_selection()

    def _on_layered(self, outcome: LayeredOutcome) -> None:
        graph, key = outcome.graph, self._layered_key
        if (key is None or not self._wants_layered() or (outcome.stack, graph.layer) != key[:2]
                or graph.num_tokens != len(self._stack_labels())):
            return  # the view or the layout moved on
        from analysis.graph.layered import node_labels

        self.layered = graph
        self.route = None
        canvas = self.graph_panel.canvas
        canvas.set_graph(node_labels(graph, self._stack_labels()), graph.sources, graph.targets, graph.weights,
                         node_layer=graph.node_layer)
        self._mark_route_ends()
        self.graph_panel.info.setText(self._layered_text(graph, outcome.seconds))
        self._show_selection()
        self.request_route()  # the same two tokens, through the new layers
        self.layered_ready.emit()

    def _layered_text(self, graph, seconds: float) -> str:
        from analysis.graph.layered import CANVAS_EDGE_LIMIT

        top = graph.num_layers_shown - 1
        rule = graph.rule.describe().split(";")[0]
        text = (f"Across layers: rows L0 (input embeddings) … L{top} (output of layer {graph.layer}); "
                f"{graph.num_nodes} nodes, {len(graph.weights)} edges ({rule}")
        if graph.capped_per_node:
            text += f", at most {graph.capped_per_node} per node: the canvas draws up to {CANVAS_EDGE_LIMIT:,}"
        text += f") · {seconds:.3f} s. "
        if self.view.spec.merge_words or self.view.spec.drop_special:
            text += "Nodes are the model's tokens (not merged into words, specials kept). "
        return text + "Click a node: route from its token at the top; Shift+click: to its token at L0."

    def _layered_token(self, node: int) -> int | None:
        """The token of a node of the graph across layers (None if it is not one)."""
        graph = self.layered
        if graph is None or not 0 <= node < graph.num_nodes:
            return None
        token = int(graph.node_token[node])
        return token if token < len(self._stack_labels()) else None

    def _mark_route_ends(self) -> None:
        """Source ring on the query at the top level, target ring on the target at L0."""
        from analysis.graph.layered import node_id

        graph, canvas = self.layered, self.graph_panel.canvas
        top = graph.num_layers_shown - 1
        count = graph.num_tokens
        query, target = self.route_query, self.route_target
        canvas.set_source(node_id(graph, top, query) if query is not None and query < count else None)
        canvas.set_target(node_id(graph, 0, target) if target is not None and target < count else None)

    def request_route(self) -> None:
        if self.layered is None or self.route_query is None or self.route_target is None:
            return
        if max(self.route_query, self.route_target) >= self.layered.num_tokens:
            return
        attentions = stack_attentions(self.result.run, self.view.spec.stack)
        self.worker.submit("route", route_job(attentions, self.route_query, self.route_target, self.layered.layer))

    def _on_route(self, route) -> None:
        graph = self.layered
        if graph is None or route.layer != graph.layer:
            return
        from analysis.graph.layered import route_nodes

        self.route = route
        nodes = route_nodes(graph, route.steps) if route.found else []
        self.graph_panel.canvas.highlight_path(nodes)
        labels = self._stack_labels()
        if route.found:
            text = f"Route: {_route_text(route.steps, labels)}  (probability {route.probability:.3g})"
        else:
            text = f"No route from '{labels[route.query]}' down to '{labels[route.target]}': {route.reason}."
        if self.graph_panel.widest():
            text += " Across layers the route is the most probable one."
        if self.view.spec.merge_words or self.view.spec.drop_special:
            text += " Nodes are the model's tokens (not merged into words, specials kept)."
        self.graph_panel.info.setText(text)
        self.path_ready.emit()

    def request_flow(self) -> None:
        if self.result is None or self.view is None:
            return
        spec = self.view.spec
        attentions = stack_attentions(self.result.run, spec.stack)
        self.worker.submit("flow", flow_job(attentions, spec.query, spec.layer))

    def _on_flow(self, flow: np.ndarray) -> None:
        if self.view is None or self.view.spec.kind != "flow":
            return
        self.flow = values_for_view(self.view, flow, side="col")
        self._show_selection()
        if self.graph is not None:
            metrics = {**self.graph.metrics, "flow": self.flow}
            self.metrics_table.set_metrics(self.view.row_labels, metrics, self.graph.communities)
        self.statusBar().showMessage(
            f"Attention flow from '{self.result.run.labels[self.view.spec.query]}' at layer {self.view.spec.layer}", 5000)
        self.flow_ready.emit()

    def _on_path_source(self, row: int) -> None:
        if self.layered is not None:  # a node of the graph across layers: the route's query
            self.route_query = self._layered_token(row)
            self._mark_route_ends()
            self.request_route()
            return
        self.path_source = row
        self.request_path()

    def _on_path_target(self, row: int) -> None:
        if self.layered is not None:  # its token at L0 is where the route ends
            self.route_target = self._layered_token(row)
            self._mark_route_ends()
            self.request_route()
            return
        self.path_target = row
        self.request_path()

    def request_path(self) -> None:
        if self.layered is not None:
            self.request_route()
            return
        if self.view is None or self.path_source is None or self.path_target is None or not self.view.is_square:
            return
        rule = self.graph.rule if self.graph is not None else None
        self.worker.submit("path", path_job(self.view.matrix, self.path_source, self.path_target,
                                            self.graph_panel.widest(), rule))

    def _on_path(self, path) -> None:
        self.path = path
        nodes = list(path.nodes)
        self.heatmap.highlight_path(nodes)
        if self.layered is None:
            self.graph_panel.canvas.highlight_path(nodes)
            self.graph_panel.info.setText(self._path_text(path))
        self.path_ready.emit()

    def _path_text(self, path) -> str:
        labels = self.view.row_labels if self.view else ()
        if path.nodes:
            route = " → ".join(labels[n] for n in path.nodes)
            what = "bottleneck" if self.graph_panel.widest() else "probability"
            value = path.bottleneck if self.graph_panel.widest() else path.probability
            return f"Path: {route}  ({what} {value:.3g})"
        return f"No path from '{labels[path.source]}' to '{labels[path.target]}' in this graph."

    # Selection, linked across views ----------------------------------------------------------
    def _on_head_selected(self, layer: int, head: int) -> None:
        self.view_controls.set_head(layer, head)
        self.view_controls.flush()

    def _on_view_row_selected(self, row: int) -> None:
        if self.view is None or not 0 <= row < len(self.view.row_tokens):
            return
        self._select_run_token(self.view.row_tokens[row][0])

    def _on_run_token_selected(self, token: int) -> None:
        self._select_run_token(token)

    def _on_canvas_node_selected(self, node: int) -> None:
        if self.layered is not None:
            token = self._layered_token(node)
            if token is not None:
                self._select_run_token(token)
            return
        self._on_view_row_selected(node)

    def _select_run_token(self, token: int) -> None:
        self.selected_token = token
        if self.view is not None and self.view.spec.kind == "flow" and self.view.spec.query != token:
            self.refresh_view()  # the flow follows the selected token
        else:
            self._show_selection()

    def selected_row(self) -> int | None:
        if self.view is None or self.selected_token is None:
            return None
        return view_position(self.view, self.selected_token, "row")

    def _show_selection(self) -> None:
        """Reflect the selected token in every view without feedback loops."""
        view = self.view
        if view is None or self.result is None:
            return
        row = self.selected_row()
        self.heatmap.select_token(row)
        if view.is_square:
            self.graph_panel.canvas.select_token(row if self.layered is None else self._layered_selection())
            if row is not None:
                self.metrics_table.select_token(row)
        if view.spec.stack != "self":
            self.token_view.set_weights(None, None)
            return
        if view.spec.kind == "flow" and self.flow is not None:
            weights = self._per_run_token(self.flow)
            self.token_view.set_weights(weights, view.spec.query)
        elif row is not None:
            self.token_view.set_weights(self._per_run_token(view.matrix[row]), self.selected_token)
        else:
            self.token_view.set_weights(None, None)

    def _layered_selection(self) -> int | None:
        """The node of the selected token in the graph across layers: the clicked one if it is
        that token's, else the token at the top level."""
        graph, token = self.layered, self.selected_token
        if token is None or token >= graph.num_tokens:
            return None
        current = self.graph_panel.canvas.selected_token()
        if current is not None and current < graph.num_nodes and graph.node_token[current] == token:
            return current
        from analysis.graph.layered import node_id

        return node_id(graph, graph.num_layers_shown - 1, token)

    def _per_run_token(self, column_values: np.ndarray) -> np.ndarray:
        """Spread view-column values back onto run tokens (a word's value on each of its pieces)."""
        weights = np.zeros(self.result.run.num_tokens)
        for value, group in zip(column_values, self.view.col_tokens, strict=True):
            weights[list(group)] = value
        return weights

    # Model choice -----------------------------------------------------------------------------
    def _on_model_chosen(self, index: int) -> None:
        if self.model_box.itemData(index) == "__open__":
            self.open_model_dialog()

    def open_model_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a model folder (Hugging Face format)")
        if folder:
            self.set_model_source(folder)
            self.input_panel.show_message(f"Model: {folder}. Press Ctrl+Enter to analyse with it.")
        else:
            self.set_model_source(self.current_source())

    def open_text_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a text", "", "Text files (*.txt *.md);;All files (*)")
        if path:
            self.input_panel.load_file(path)

    # Export -------------------------------------------------------------------------------------
    def _require_view(self) -> bool:
        if self.view is None:
            self.show_error("Nothing to export yet: analyse a text first.")
            return False
        return True

    def _require_graph(self) -> bool:
        if self.graph is None:
            self.show_error("There is no graph to export yet.")
            return False
        return True

    def _write(self, what: str, path: str, write) -> bool:
        """Run ``write()``; on failure a clear message naming ``what`` and False, else a status line."""
        try:
            write()
        except OSError as error:
            self.show_error(f"Could not export {what}: {error}")
            return False
        self.statusBar().showMessage(f"Saved {path}", 5000)
        return True

    def export_heatmap(self, path: str, *, width: int | None = None, dpi: int = 150) -> bool:
        """PNG or SVG by extension; a clear message and False when it cannot be written."""
        if not self._require_view():
            return False
        if path.lower().endswith(".svg"):
            return self._write("the heatmap", path, lambda: self.heatmap.export_svg(path))
        return self._write("the heatmap", path, lambda: self.heatmap.export_png(path, width=width, dpi=dpi))

    def export_matrix(self, path: str) -> bool:
        view = self.view
        return self._require_view() and self._write(
            "the matrix", path, lambda: write_matrix_csv(path, view.matrix, view.row_labels, view.col_labels))

    def export_folder(self, folder: str) -> bool:
        """The same four files as ``attention-atlas analyze``, for the current view and graph."""
        if not self._require_view():
            return False
        from analysis.io.folder import write_analysis_folder

        graph = self.graph if self.graph is not None and self.graph.n == len(self.view.row_labels) else None
        flow = self.flow if self.view.spec.kind == "flow" else None
        return self._write("the analysis", folder,
                           lambda: write_analysis_folder(folder, self.result.run, self.view, graph, flow))

    def export_graph_image(self, path: str, *, width: int | None = None) -> bool:
        if not self._require_graph():
            return False
        canvas = self.graph_panel.canvas
        if path.lower().endswith(".svg"):
            return self._write("the graph", path, lambda: canvas.export_svg(path))
        return self._write("the graph", path, lambda: canvas.export_png(path, width=width))

    def export_network(self, path: str) -> bool:
        if not self._require_graph():
            return False
        from analysis.graph.export import write_gexf, write_graphml

        writer = write_graphml if path.lower().endswith(".graphml") else write_gexf
        return self._write("the graph", path, lambda: writer(self.graph, self.view.row_labels, path))

    def export_heatmap_dialog(self) -> None:
        if not self._require_view():
            return
        path, chosen = QFileDialog.getSaveFileName(self, "Export heatmap", "attention.png", "PNG image (*.png);;SVG vector image (*.svg)")
        if not path:
            return
        if path.lower().endswith(".svg") or chosen.startswith("SVG"):
            self.export_heatmap(path if path.lower().endswith(".svg") else path + ".svg")
            return
        dialog = ImageExportDialog(self)
        if dialog.exec() == QDialog.Accepted:
            self.export_heatmap(path, width=dialog.width_spin.value(), dpi=dialog.dpi_spin.value())

    def export_matrix_dialog(self) -> None:
        if self._require_view():
            path, _ = QFileDialog.getSaveFileName(self, "Export matrix", "attention.csv", "CSV (*.csv)")
            if path:
                self.export_matrix(path)

    def export_folder_dialog(self) -> None:
        if self._require_view():
            folder = QFileDialog.getExistingDirectory(self, "Save the analysis into a folder")
            if folder:
                self.export_folder(folder)

    def export_graph_image_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export graph", "graph.png", "PNG image (*.png);;SVG vector image (*.svg)")
        if path:
            self.export_graph_image(path)

    def export_network_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export graph", "graph.gexf", "GEXF (*.gexf);;GraphML (*.graphml)")
        if path:
            self.export_network(path)

    # Help ------------------------------------------------------------------------------------------
    def show_conventions(self) -> None:
        QMessageBox.information(self, "What the numbers mean", CONVENTIONS_TEXT)

    def show_about(self) -> None:
        QMessageBox.about(self, "About Attention Atlas",
                          "Attention Atlas — explore transformer attention offline, as heatmaps and graphs.")

    def _update_placeholders(self) -> None:
        if self.result is None:
            self.status_model.setText("Type a text (or pick a sample) and press Ctrl+Enter.")

    # Lifetime -----------------------------------------------------------------------------------------
    def closeEvent(self, event):  # noqa: N802 (Qt name)
        self.save_settings()
        self.worker.shutdown()
        super().closeEvent(event)


CONVENTIONS_TEXT = """\
Heatmap: rows are queries, columns are keys. A[i, j] is how much query token i attends to key token j; each row sums to 1.
Causal models: the upper triangle is masked (a token cannot see later tokens), not weak attention.

Graph: an edge i → j with weight A[i, j] means "i attends to j". Path lengths are −ln(weight): the most probable path is the chain of attention with the largest product of weights; the widest path maximises its weakest link.

Communities: Louvain on the undirected graph with weights A[i, j] + A[j, i], seeded; the resolution sets their size.

Rollout: per layer 0.5·mean-of-heads + 0.5·I, rows renormalised, multiplied through the layers. Flow: maximum flow from the selected token at the chosen layer to each input token, through the layered graph with those residual-augmented matrices as capacities.
Across layers (rollout or flow view, layered graph layout): L0 is a token's input embedding, Lk its output of layer k−1; edge (Lk+1, i) → (Lk, j) weighs that residual-augmented matrix of layer k. The route is the most probable chain from a token at the top down to a token at L0.

Words: a word receives the sum of the attention paid to its pieces and pays the mean of its pieces' attention.
Hide specials: special tokens are dropped and each row renormalised."""


def _view_matrix_key(run, spec: ViewSpec) -> tuple:
    """What a view's matrix depends on: the run (a new analysis is always new) and every part
    of the spec but the flow query (the flow view's matrix is the rollout, whatever the query)."""
    return (id(run), spec.kind, spec.layer, spec.head, spec.stack, spec.merge_words, spec.drop_special)


def _route_text(steps, labels) -> str:
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


def _model_display_name(source: str) -> str:
    return Path(source).name if os.path.isdir(source) else source


def create_application(argv: list[str]) -> QApplication:
    app = QApplication.instance() or QApplication(argv)
    app.setApplicationName(APP_NAME)
    app.setOrganizationName("AttentionAtlas")
    app.setDesktopFileName("attention-atlas")  # matches resources/attention-atlas.desktop
    app.setWindowIcon(QIcon(str(resource_path("icons", "attention-atlas.png"))))
    return app
