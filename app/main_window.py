"""The main window: composes the widgets around one Session; it does not decide.

The session (app.session) holds what the person is looking at; the bindings
(app.view_binding, app.graph_binding) connect it to the widgets both ways; the planner
(app.planner) computes the missing results through the task runner (app.tasks, hosted by
app.worker.QtHost), which applies a result only while the inputs it was computed from are
current. The window builds menus and docks, asks for analyses, shows progress and errors,
and saves the settings.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QRect, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QGuiApplication, QIcon, QKeySequence
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QDockWidget,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMessageBox,
    QPlainTextEdit,
    QScrollArea,
    QTextEdit,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from app.exports import Exports
from app.graph_binding import GraphBinding
from app.help_browser import HelpBrowser, help_markdown
from app.model_picker import ModelPicker
from app.planner import Planner
from app.session import Session
from app.tasks import TaskKind
from app.view_binding import ViewBinding
from app.window_attribution import AttributionMixin
from app.window_files import WindowFilesMixin
from app.window_generation import GenerationMixin
from app.window_models import ModelChoiceMixin
from app.worker import QtHost
from resources import case_studies, resource_path, sample_texts
from widgets.attribution_panel import AttributionPanel
from widgets.generation_panel import GenerationPanel
from widgets.graph_panel import GraphPanel
from widgets.head_grid import HeadOverview
from widgets.heatmap import COLORMAPS, AttentionHeatmap
from widgets.heatmap_axes import value_name
from widgets.input_panel import InputPanel
from widgets.metrics_table import MetricsTable
from widgets.token_view import TokenTextView
from widgets.view_controls import ViewControls

APP_NAME = "Attention Atlas"
AUTOSAVE_MS = 60_000  # texts and choices are saved this often, and on close
SHUTDOWN_WAIT_S = 2.0  # closing waits at most this long for background work to stop
METRICS_ROWS = 8  # rows of the metrics table visible in the default layout


def dock_sizes(width: int, height: int, metrics_px: int) -> dict[str, int]:
    """Pixel sizes of the default layout in a ``width`` x ``height`` window.

    Columns: the left one (input, heads) takes 27% of the width within 300..470 px (at
    1600 px its 432 px give 12 heads tiles of 29 px, window frame included), the right one (graph,
    metrics) 32% within 420..640 px; the heatmap in the middle keeps the rest, at least
    420 px. Rows: input 40% of the left column over the heads; the metrics table
    ``metrics_px`` (its rows) or 38% of the right column, whichever is more, under the
    graph; the tokens strip 11% of the height within 80..130 px.

    Examples
    --------
    >>> s = dock_sizes(1280, 720, 240)
    >>> 1280 - s["left"] - s["right"] >= 420, s["metrics"] >= 240
    (True, True)
    """
    left = min(max(round(0.27 * width), 300), 470)
    right = min(max(round(0.32 * width), 420), 640)
    spare = width - left - right - 420
    if spare < 0:  # a narrow window: the right column gives way first, then the left
        cut = min(-spare, right - 360)
        right -= cut
        left = max(left + spare + cut, 240)
    column = max(height - 80, 200)  # menus, toolbar, status bar
    metrics = min(max(metrics_px, round(0.38 * column)), column - 260)
    return {
        "left": left, "right": right, "input": round(0.4 * column), "heads": column - round(0.4 * column),
        "graph": column - metrics, "metrics": metrics, "tokens": min(max(round(0.11 * height), 80), 130),
    }


#: The layer and head keys (PgUp/PgDn: layer, Ctrl+Left/Right: head) as (key, modifiers).
LAYER_HEAD_KEYS = (
    (Qt.Key.Key_PageUp, Qt.KeyboardModifier.NoModifier), (Qt.Key.Key_PageDown, Qt.KeyboardModifier.NoModifier),
    (Qt.Key.Key_Left, Qt.KeyboardModifier.ControlModifier), (Qt.Key.Key_Right, Qt.KeyboardModifier.ControlModifier),
)
SHORTCUT_RULE = ("PgUp/PgDn (layer) and Ctrl+←/→ (head) work everywhere in the window except in a box "
                 "where you type text (the text, the pair, the prompt, a filter): there they keep their "
                 "text meaning (PgUp/PgDn scroll the text, Ctrl+←/→ move the cursor by a word). Click the "
                 "heatmap, or press Tab, to leave the text box.")


def is_text_box(widget: QWidget | None) -> bool:
    """Whether ``widget`` is a box where a person types text: an editable line or text
    edit, but not the line inside a spin box or a combo box (there the layer/head keys
    switch, as everywhere outside text)."""
    if isinstance(widget, QLineEdit):
        return not widget.isReadOnly() and not isinstance(widget.parent(), (QAbstractSpinBox, QComboBox))
    if isinstance(widget, (QPlainTextEdit, QTextEdit)):
        return not widget.isReadOnly()
    return False


class LayerHeadKeys(QObject):
    """One rule for the layer/head keys in ``window``: in a text box they keep their text
    meaning, everywhere else they switch layer or head.

    Without it the rule depended on the widget: a text edit took Ctrl+←/→ (word by word)
    but let PgUp/PgDn switch layers, and a spin box took Ctrl+←/→ for its cursor. Qt
    asks the focus widget first (a ShortcutOverride event): accepted, the key goes to the
    widget; ignored, the window's shortcut runs. The filter sits on the focus widget only
    (it follows the focus), so other events never pass through Python for it."""

    def __init__(self, window: QWidget) -> None:
        super().__init__(window)
        self._window = window
        QApplication.instance().focusChanged.connect(self._on_focus_changed)

    def _on_focus_changed(self, old: QWidget | None, new: QWidget | None) -> None:
        if old is not None:
            old.removeEventFilter(self)
        if new is not None and new.window() is self._window:
            new.installEventFilter(self)

    def eventFilter(self, watched, event):  # noqa: N802 (Qt API)
        if event.type() != QEvent.Type.ShortcutOverride or not isinstance(watched, QWidget):
            return False
        modifiers = event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
        if not any(event.key() == key and modifiers == mods for key, mods in LAYER_HEAD_KEYS):
            return False
        if is_text_box(watched):
            event.accept()  # the text box gets the key press
        else:
            event.ignore()  # the layer/head shortcut runs
        return True


class MainWindow(WindowFilesMixin, ModelChoiceMixin, GenerationMixin, AttributionMixin, QMainWindow):
    """Attention Atlas's window. The ``*_ready`` signals fire once a result is drawn (tests,
    the smoke test)."""

    analysis_ready = Signal()
    view_ready = Signal()
    graph_ready = Signal()
    layered_ready = Signal()  # the graph across layers is on the canvas
    flow_ready = Signal()
    path_ready = Signal()
    attribution_ready = Signal()
    error_shown = Signal(str)
    warmed_up = Signal()

    def __init__(self, settings: QSettings | None = None, parent: QWidget | None = None, *, warm_up: bool = True) -> None:
        super().__init__(parent)
        self.setWindowTitle(APP_NAME)
        self.settings = settings or QSettings()
        self.session = Session()
        self.host = QtHost(self)
        self.planner = Planner(self.session, self.host.runner, on_progress=self._on_progress)
        self.planner.analysis_handlers.update(done=self._on_analysed, failed=self._on_analysis_failed,
                                              cancelled=self._on_analysis_cancelled, generated=self._on_generated)
        self._stop_generation = None
        self.help_browser: HelpBrowser | None = None  # made on the first F1
        self._fit_pending: QRect | None = None  # fit_to_screen's area, applied again once shown
        self._progress_text: dict[TaskKind, str] = {}
        self._build_widgets()
        self._build_docks()
        self._build_actions()
        self.view_binding = ViewBinding(self, self.session)
        self.graph_binding = GraphBinding(self, self.session)
        self.exports = Exports(self)
        self._connect()
        self._keys = LayerHeadKeys(self)
        self._restore_settings()
        self.status_model.setText("Type a text (or pick a sample) and press Ctrl+Enter.")
        self._autosave = QTimer(self)  # the texts and choices survive a crash, not only a close
        self._autosave.setInterval(AUTOSAVE_MS)
        self._autosave.timeout.connect(self.save_settings)
        self._autosave.start()
        if warm_up:
            QTimer.singleShot(400, self._warm_up)  # after the window has painted

    # Construction ------------------------------------------------------------------------------
    def _build_widgets(self) -> None:
        self.input_panel = InputPanel(sample_texts())
        self.model_box = ModelPicker(self.settings)
        self.view_controls = ViewControls(tuple(COLORMAPS))
        self.heatmap = AttentionHeatmap()
        self.head_overview = HeadOverview()
        self.token_view = TokenTextView()
        self.graph_panel = GraphPanel()
        self.graph_panel.canvas.set_size_metric("pagerank")
        self.metrics_table = MetricsTable()
        self.token_view.setMinimumHeight(44)  # two lines of text: the strip under the heatmap stays thin
        self.generation_panel = GenerationPanel(case_studies())
        self.attribution_panel = AttributionPanel()
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

    def _dock(self, title: str, name: str, widget: QWidget, area, *, scroll: bool = False) -> QDockWidget:
        """A dock for ``widget``; with ``scroll`` inside a scroll area, so a tall panel never
        makes the window taller than a 720-pixel screen."""
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        if scroll:
            area_widget = QScrollArea()
            area_widget.setWidgetResizable(True)
            area_widget.setFrameShape(QScrollArea.NoFrame)
            area_widget.setWidget(widget)
            widget = area_widget
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _build_docks(self) -> None:
        """Left column: Input (tabbed with Generate) over Heads. Right column: Graph (tabbed
        with Attribution) over its Metrics table, so the table lists the nodes drawn above
        it, gets the column's width and at least 8 rows, and the heatmap keeps the centre's
        full height. Bottom, under the heatmap only: the Tokens view (a line or two of text)."""
        self.setCorner(Qt.BottomLeftCorner, Qt.LeftDockWidgetArea)
        self.setCorner(Qt.BottomRightCorner, Qt.RightDockWidgetArea)
        self.input_dock = self._dock("Input", "inputDock", self.input_panel, Qt.LeftDockWidgetArea)
        self.heads_dock = self._dock("Heads", "headsDock", self.head_overview, Qt.LeftDockWidgetArea)
        self.graph_dock = self._dock("Graph", "graphDock", self.graph_panel, Qt.RightDockWidgetArea)
        self.metrics_dock = self._dock("Metrics", "metricsDock", self.metrics_table, Qt.RightDockWidgetArea)
        self.tokens_dock = self._dock("Tokens", "tokensDock", self.token_view, Qt.BottomDockWidgetArea)
        self.generate_dock = self._dock("Generate", "generateDock", self.generation_panel, Qt.LeftDockWidgetArea,
                                       scroll=True)
        self.tabifyDockWidget(self.input_dock, self.generate_dock)
        self.input_dock.raise_()
        self.attribution_dock = self._dock("Attribution", "attributionDock", self.attribution_panel,
                                          Qt.RightDockWidgetArea, scroll=True)
        self.tabifyDockWidget(self.graph_dock, self.attribution_dock)
        self.graph_dock.raise_()
        self.setDockOptions(QMainWindow.AnimatedDocks | QMainWindow.AllowTabbedDocks | QMainWindow.AllowNestedDocks)

    def fit_to_screen(self, available: QRect | None = None) -> None:
        """First start: fill the screen's available area (``available``, default the primary
        screen's) and share it out between the heatmap and the docks (see dock_sizes)."""
        if available is None:
            screen = self.screen() or QGuiApplication.primaryScreen()
            available = screen.availableGeometry() if screen is not None else QRect(0, 0, 1500, 940)
        self._fill(available)
        self._split_docks()
        if self._fit_pending is None:  # again once shown (Qt lays the docks out on show), once
            QTimer.singleShot(0, self, self._fit_again)
        self._fit_pending = available

    def _fit_again(self) -> None:
        available, self._fit_pending = self._fit_pending, None
        if available is not None:
            self._fill(available)
            self._split_docks()

    def _fill(self, available: QRect) -> None:
        """The window's frame (title bar and borders included, once the window system has
        drawn them) on ``available``."""
        frame, inner = self.frameGeometry(), self.geometry()
        margins = (inner.left() - frame.left(), inner.top() - frame.top(),
                   frame.right() - inner.right(), frame.bottom() - inner.bottom())
        self.setGeometry(available.adjusted(margins[0], margins[1], -margins[2], -margins[3]))

    def _split_docks(self) -> None:
        dock = self.metrics_dock
        title = max(dock.sizeHint().height() - self.metrics_table.sizeHint().height(), 0)
        sizes = dock_sizes(self.width(), self.height(), self.metrics_table.rows_height(METRICS_ROWS) + title + 4)
        self.resizeDocks([self.input_dock, self.graph_dock], [sizes["left"], sizes["right"]], Qt.Horizontal)
        self.resizeDocks([self.input_dock, self.heads_dock], [sizes["input"], sizes["heads"]], Qt.Vertical)
        self.resizeDocks([self.graph_dock, self.metrics_dock], [sizes["graph"], sizes["metrics"]], Qt.Vertical)
        self.resizeDocks([self.tokens_dock], [sizes["tokens"]], Qt.Vertical)

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
        exports = lambda name: lambda: getattr(self.exports, name)()  # noqa: E731 (exports made later)
        file_menu = self.menuBar().addMenu("&File")
        self.open_text_action = self._action(file_menu, "&Open text…", self.open_text_dialog, QKeySequence.Open, "Open a UTF-8 text file")
        self.open_model_action = self._action(file_menu, "Open &model folder…", self.open_model_dialog, "Ctrl+Shift+O", "Use a local model folder in Hugging Face format")
        self._action(file_menu, "Open model &file (.gguf)…", self.open_model_file_dialog, None, "Use a GGUF model file (llama.cpp, LM Studio, Ollama)")
        self.clear_cache_action = self._action(file_menu, "Clear model conversion cache…", self.clear_conversion_cache, None, "Delete the float32 copies of GGUF models made for fast loading")
        file_menu.addSeparator()
        self._action(file_menu, "Open sess&ion…", self.open_session_dialog, "Ctrl+Alt+O", "Reopen an analysis saved as a .atlas file (no model needed)")
        self._action(file_menu, "Save sessio&n…", self.save_session_dialog, "Ctrl+Shift+S", "Save the analysis and your choices as a .atlas file")
        file_menu.addSeparator()
        self.export_image_action = self._action(file_menu, "&Export heatmap figure…", lambda: self.exports.figure_dialog("heatmap"), "Ctrl+E", "Save the heatmap as PNG, SVG or PDF (size, DPI; clean by default)")
        figures = file_menu.addMenu("Export &figure")
        for what, shortcut in (("graph", "Ctrl+Shift+G"), ("heads", None), ("tokens", None)):
            self._action(figures, f"{what.capitalize()}…", lambda _=False, w=what: self.exports.figure_dialog(w), shortcut,
                         f"Save the {what} view as PNG, SVG or PDF")
        self._action(file_menu, "Export HTML &report…", exports("report_dialog"), "Ctrl+R", "One self-contained HTML file of the analysis, for any browser or notebook, offline")
        self._action(file_menu, "Export head &table as CSV…", exports("head_table_dialog"), None, "Every head's statistics")
        self._action(file_menu, "Export heatmap &matrix as CSV…", exports("matrix_dialog"), "Ctrl+Shift+E", "Save the current view's matrix with token labels")
        self._action(file_menu, "&Save analysis folder…", exports("folder_dialog"), QKeySequence.Save, "Write attention.npz, tokens.csv, edges.csv and summary.json, as the command line does")
        self._action(file_menu, "Export graph for &Gephi/Cytoscape…", exports("network_dialog"), None, "Save the graph as GEXF or GraphML")
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", self.close, QKeySequence.Quit)

        run_menu = self.menuBar().addMenu("&Analysis")
        self.analyse_action = self._action(run_menu, "&Analyse", self.analyse, "Ctrl+Return", "Run the model on the text (Ctrl+Enter)")
        self.analyse_action.setShortcuts([QKeySequence("Ctrl+Return"), QKeySequence("Ctrl+Enter")])
        self.cancel_action = self._action(run_menu, "&Cancel", self.cancel, "Esc", "Stop the running work; the previous result stays")
        self._action(run_menu, "&Generate", self.generate, "Ctrl+G", "Let the model answer the prompt of the Generate panel")
        self._action(run_menu, "A&ttribute", self.attribute, "Ctrl+Shift+A", "Which input tokens drive the output (the Attribution panel)")
        run_menu.addSeparator()
        self._action(run_menu, "Next layer", lambda: self._step("layer", 1), "PgDown")
        self._action(run_menu, "Previous layer", lambda: self._step("layer", -1), "PgUp")
        self._action(run_menu, "Next head", lambda: self._step("head", 1), "Ctrl+Right")
        self._action(run_menu, "Previous head", lambda: self._step("head", -1), "Ctrl+Left")

        view_menu = self.menuBar().addMenu("&View")
        for dock in (self.input_dock, self.generate_dock, self.heads_dock, self.graph_dock, self.attribution_dock,
                     self.tokens_dock, self.metrics_dock):
            view_menu.addAction(dock.toggleViewAction())
        view_menu.addSeparator()
        self._action(view_menu, "Reset heatmap zoom", self.heatmap.reset_view, "Ctrl+0")

        help_menu = self.menuBar().addMenu("&Help")
        self._action(help_menu, "What the numbers mean", self.show_help, "F1",
                     "The definitions of every number, the views and the shortcuts (searchable)")
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
        self.input_panel.texts_changed.connect(self._on_texts_edited)
        self.session.events.stale.connect(self._on_stale)
        self.model_box.activated.connect(self._on_model_chosen)
        self.host.busy_changed.connect(self.input_panel.set_busy)
        self.generation_panel.generate_requested.connect(self.generate)
        self.generation_panel.stop_requested.connect(self.cancel)
        self.generation_panel.step_selected.connect(self._on_step_chosen)
        self.generation_panel.case_chosen.connect(lambda case: self.set_model_source(case.get("model", "smollm2")))
        self.session.events.generation_step.connect(self.generation_panel.show_step)
        self.session.events.result.connect(self._on_result_for_generation)
        self.session.events.result.connect(self._on_result_for_attribution)
        self.session.events.attribution.connect(self._on_attribution)
        self.session.events.error.connect(self._on_attribution_error)
        self.host.settled.connect(self._on_attribution_settled)
        self._connect_attribution()
        self.host.settled.connect(self._on_settled)
        self.session.events.error.connect(self._on_task_error)
        self.session.events.view.connect(self._on_view_for_colorbar)  # after the binding has drawn it

    def _on_view_for_colorbar(self, view) -> None:
        """The colour bar says what the view's numbers are ("ALTI contribution", ...)."""
        if view is not None:
            spec = view.spec
            self.heatmap.set_value_name(value_name(spec.kind, stack=spec.stack, signed=view.signed,
                                                   through=getattr(spec, "through", "attention")))

    # Settings --------------------------------------------------------------------------------------


    # Session files ---------------------------------------------------------------------------------






    # The model ---------------------------------------------------------------------------------------











    # Analysis ----------------------------------------------------------------------------------------
    def analyse(self):
        """Run the model on the text in the background; returns the task (None if refused)."""
        text, pair = self.input_panel.text(), self.input_panel.pair()
        if not text.strip():
            self.show_error("There is no text to analyse: type a sentence or pick a sample.")
            return None
        if pair is not None and not pair.strip():
            self.show_error("The text pair is switched on but its second text is empty.")
            return None
        self.input_panel.show_message("")
        self.session.set_model_source(self.current_source())
        self.session.set_texts(text, pair)
        task = self.planner.analyse()
        self.host.update_busy()
        return task

    # Generation ------------------------------------------------------------------------------------




    def cancel(self) -> None:
        runner = self.host.runner
        generating = runner.current(self.session, TaskKind.GENERATE)
        if generating is not None and self._stop_generation is not None:
            self._stop_generation.set()  # a stop keeps the tokens generated so far
            self.input_panel.show_message("Stopping the generation; the tokens so far are kept…")
            return
        if runner.is_busy(self.session):
            runner.cancel(self.session)
            self.input_panel.show_message("Cancelling…")

    def _on_analysed(self, result) -> None:
        run, facts = result.run, result.run.model
        self.model_box.remember(self.session.result_inputs.source)
        timings = " · ".join(f"{k} {v:.2f} s" for k, v in run.timings.items() if k in ("load", "forward"))
        self.status_model.setText(
            f"{facts.name} · {run.num_tokens} tokens · {facts.num_layers} layers × {facts.num_heads} heads · {timings}")
        self.status_notice.setText(run.notice or "")
        self.input_panel.show_message(run.notice or f"Analysed {run.num_tokens} tokens.")

    def _on_analysis_failed(self, message: str) -> None:
        self.generation_panel.set_busy(False)
        if "only pickle weights" in message:
            source = self.session.model_source
            if self.ask_allow_pickle(source):
                self.input_panel.show_message(f"Loading the pickle weights of {source}…")
                self.planner.analyse(allow_pickle=True)
                self.host.update_busy()
                return
            message += " (not loaded: you declined)"
        self.show_error(f"The analysis failed: {message}")

    def ask_allow_pickle(self, source: str) -> bool:
        """Ask before loading pickle weights: they can run any code on this computer."""
        answer = QMessageBox.warning(
            self, "Allow pickle weights for this model?",
            f"“{source}” has only pickle weights (pytorch_model.bin). Loading a pickle file can run any "
            "code on this computer, with your permissions: a booby-trapped model could read or delete "
            "your files.\n\nLoad it only if you trust where the model came from.",
            QMessageBox.Yes | QMessageBox.No, QMessageBox.No)
        return answer == QMessageBox.Yes

    def _on_analysis_cancelled(self) -> None:
        self.generation_panel.set_busy(False)
        kept = " The previous result is still shown." if self.session.result is not None else ""
        self.input_panel.show_message("Cancelled." + kept)

    def _on_task_error(self, kind: TaskKind, message: str) -> None:
        self.statusBar().showMessage(f"{kind.title} could not be computed: {message}", 8000)

    def _on_progress(self, kind: TaskKind, fraction: float, message: str) -> None:
        if kind in (TaskKind.ANALYSE, TaskKind.WARM_UP):
            self.input_panel.set_progress(fraction, message)
        else:
            self.statusBar().showMessage(f"{message} {fraction:.0%}", 2000)
            self._progress_text[kind] = self.statusBar().currentMessage()

    def _on_settled(self, task, event: str) -> None:
        """A finished, failed or cancelled task's progress line leaves the status bar."""
        text = self._progress_text.pop(task.kind, None)
        if text is not None and self.statusBar().currentMessage() == text:
            self.statusBar().clearMessage()
        if event == "cancelled" and task.kind not in (TaskKind.ANALYSE, TaskKind.WARM_UP):
            if self.input_panel.message.text() == "Cancelling…":
                self.input_panel.show_message(f"{task.kind.title}: cancelled.")

    def show_error(self, message: str) -> None:
        """A readable message in the window; nothing else changes."""
        self.input_panel.show_message(message, error=True)
        self.statusBar().showMessage(message, 8000)
        self.error_shown.emit(message)

    def _step(self, what: str, delta: int) -> None:
        spin = self.view_controls.layer_spin if what == "layer" else self.view_controls.head_spin
        spin.setValue(spin.value() + delta)

    # What is shown (tests, the smoke test and scripts read these) --------------------------------------
    @property
    def result(self):
        return self.session.result

    @property
    def view(self):
        return self.session.view

    @property
    def graph(self):
        """The current view's GraphResult (None while it is computed)."""
        return self.session.graph.result if self.session.graph is not None else None

    @property
    def path(self):
        return self.session.path

    @property
    def flow(self):
        return self.session.flow

    @property
    def layered(self):
        return self.session.layered.graph if self.session.layered is not None else None

    @property
    def route(self):
        return self.session.route

    def selected_row(self) -> int | None:
        return self.session.row_of(self.session.selected_token)

    def set_graph_layout(self, kind: str) -> None:
        """Lay the graph out as ``kind``, as picking it in the canvas toolbar does."""
        self.graph_panel.canvas.set_layout(kind, self.session.positions.get(kind))
        self.session.set_layout(kind)

    def export_heatmap(self, path: str, **options) -> bool:
        return self.exports.export_heatmap(path, **options)

    def export_matrix(self, path: str) -> bool:
        return self.exports.export_matrix(path)

    def export_folder(self, folder: str) -> bool:
        return self.exports.export_folder(folder)

    def export_graph_image(self, path: str, **options) -> bool:
        return self.exports.export_graph_image(path, **options)

    def export_network(self, path: str) -> bool:
        return self.exports.export_network(path)

    # Help ----------------------------------------------------------------------------------------------
    def show_help(self) -> HelpBrowser:
        """Open (or bring to the front) the help window: the README's definitions of every
        number and the shortcuts, with a find box. Non-modal; returns the window."""
        if self.help_browser is None:
            self.help_browser = HelpBrowser(help_markdown(self.shortcut_list(), SHORTCUT_RULE), self)
            screen = self.screen().availableGeometry() if self.screen() is not None else None
            if screen is not None:
                self.help_browser.resize(min(780, screen.width()), min(820, screen.height() - 40))
        self.help_browser.show()
        self.help_browser.raise_()
        self.help_browser.activateWindow()
        self.help_browser.find_edit.setFocus()
        return self.help_browser

    def shortcut_list(self) -> list[tuple[str, str]]:
        """``(what, keys)`` of every menu action that has a shortcut, in menu order."""
        out = []

        def name(action) -> str:
            return action.text().replace("&", "").rstrip("…")

        def walk(actions, within: str | None = None) -> None:
            for action in actions:
                if action.menu() is not None:  # a menu of the bar names nothing; a submenu its items
                    walk(action.menu().actions(), "" if within is None else name(action) + ": ")
                elif action.shortcuts():
                    keys = " or ".join(k.toString(QKeySequence.SequenceFormat.NativeText) for k in action.shortcuts())
                    out.append(((within or "") + name(action), keys))

        walk(self.menuBar().actions())
        return out

    def show_about(self) -> None:
        QMessageBox.about(self, "About Attention Atlas",
                          "Attention Atlas — explore transformer attention offline, as heatmaps and graphs.")

    # Lifetime ------------------------------------------------------------------------------------------
    def closeEvent(self, event):  # noqa: N802 (Qt name)
        self.save_settings()
        self.host.shutdown(SHUTDOWN_WAIT_S)
        super().closeEvent(event)


def create_application(argv: list[str]) -> QApplication:
    app = QApplication.instance() or QApplication(argv)
    app.setApplicationName(APP_NAME)
    app.setOrganizationName("AttentionAtlas")
    app.setDesktopFileName("attention-atlas")  # matches resources/attention-atlas.desktop
    app.setWindowIcon(QIcon(str(resource_path("icons", "attention-atlas.png"))))
    return app
