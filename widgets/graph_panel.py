"""The graph dock: sparsification/community/layout controls above the graph canvas."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QLabel,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from analysis.graph.rules import SparsifyRule
from analysis.options import PATH_ITEMS, SPARSIFY_ITEMS
from widgets.graph_canvas import GraphCanvas


class GraphPanel(QWidget):
    """Controls emit ``settings_changed`` (debounced) and ``path_kind_changed``.

    Layout and node-size selectors belong to the canvas itself."""

    settings_changed = Signal()
    path_kind_changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.canvas = GraphCanvas()

        self.rule_box = QComboBox()
        for key, name, tip in SPARSIFY_ITEMS:
            self.rule_box.addItem(name, key)
            self.rule_box.setItemData(self.rule_box.count() - 1, tip, 3)
        self.rule_box.setToolTip("How edges are chosen from the attention matrix")
        self.coverage_spin = QDoubleSpinBox()
        self.coverage_spin.setRange(1, 100)
        self.coverage_spin.setValue(90)
        self.coverage_spin.setSuffix(" %")
        self.coverage_spin.setToolTip("Share of each query's attention the kept edges cover")
        self.topk_spin = QSpinBox()
        self.topk_spin.setRange(1, 1024)
        self.topk_spin.setValue(5)
        self.topk_spin.setPrefix("k = ")
        self.topk_spin.setToolTip("Edges kept per query")
        self.min_weight_spin = QDoubleSpinBox()
        self.min_weight_spin.setDecimals(3)
        self.min_weight_spin.setRange(0, 1)
        self.min_weight_spin.setSingleStep(0.01)
        self.min_weight_spin.setPrefix("min ")
        self.min_weight_spin.setToolTip("Drop edges lighter than this, whatever the rule")
        self.loops_check = QCheckBox("Self-loops")
        self.loops_check.setToolTip("Keep a token's attention to itself as an edge")
        self.resolution_spin = QDoubleSpinBox()
        self.resolution_spin.setRange(0.1, 5.0)
        self.resolution_spin.setSingleStep(0.1)
        self.resolution_spin.setValue(1.0)
        self.resolution_spin.setPrefix("resolution ")
        self.resolution_spin.setToolTip("Louvain resolution: higher gives more, smaller communities")

        self.path_box = QComboBox()
        for key, name, tip in PATH_ITEMS:
            self.path_box.addItem(name, key)
            self.path_box.setItemData(self.path_box.count() - 1, tip, 3)
        self.path_box.setToolTip("Click a token: path source; Shift+click: target")

        self.info = QLabel("Click a node to set the path source, Shift+click for the target.")
        self.info.setWordWrap(True)
        self.info.setAlignment(Qt.AlignTop | Qt.AlignLeft)
        # A fixed height: a new text never re-lays the panel out, which would repaint the
        # whole canvas (~50-100 ms for a broad graph) on every head switch.
        self.info.setFixedHeight(self.info.fontMetrics().lineSpacing() * 3 + 4)

        grid = QGridLayout()
        grid.setContentsMargins(4, 2, 4, 2)
        grid.addWidget(self.rule_box, 0, 0)
        grid.addWidget(self.coverage_spin, 0, 1)
        grid.addWidget(self.topk_spin, 0, 1)  # shares the cell: one of the two is visible
        grid.addWidget(self.min_weight_spin, 0, 2)
        grid.addWidget(self.loops_check, 1, 0)
        grid.addWidget(self.resolution_spin, 1, 1)
        grid.addWidget(self.path_box, 1, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(grid)
        layout.addWidget(self.canvas, 1)
        layout.addWidget(self.info)

        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(150)
        self._debounce.timeout.connect(self.settings_changed)
        for signal in (self.rule_box.currentIndexChanged, self.coverage_spin.valueChanged, self.topk_spin.valueChanged,
                       self.min_weight_spin.valueChanged, self.loops_check.toggled, self.resolution_spin.valueChanged):
            signal.connect(self._on_setting_changed)
        self.path_box.currentIndexChanged.connect(self.path_kind_changed)
        self._update_enabled()

    def sizeHint(self):  # noqa: N802 (Qt name)
        """Leave the heatmap the middle of the window: the dock starts narrower than the canvas wants."""
        return QSize(470, 560)

    def _update_enabled(self) -> None:
        mode = self.rule_box.currentData()
        self.coverage_spin.setVisible(mode == "coverage")
        self.topk_spin.setVisible(mode == "top_k")

    def _on_setting_changed(self, *_):
        self._update_enabled()
        self._debounce.start()

    def rule_settings(self) -> dict:
        """Keyword arguments of ``analysis.graph.rules.SparsifyRule``."""
        return {
            "mode": self.rule_box.currentData(),
            "coverage": self.coverage_spin.value() / 100.0,
            "top_k": self.topk_spin.value(),
            "min_weight": self.min_weight_spin.value(),
            "self_loops": self.loops_check.isChecked(),
        }

    def rule(self) -> SparsifyRule:
        return SparsifyRule(**self.rule_settings())

    def set_rule(self, rule: SparsifyRule, resolution: float) -> None:
        """Show a rule and resolution without emitting ``settings_changed``."""
        widgets = (self.rule_box, self.coverage_spin, self.topk_spin, self.min_weight_spin, self.loops_check,
                   self.resolution_spin)
        blocked = [w.blockSignals(True) for w in widgets]
        self.rule_box.setCurrentIndex(max(0, self.rule_box.findData(rule.mode)))
        self.coverage_spin.setValue(rule.coverage * 100.0)
        self.topk_spin.setValue(rule.top_k)
        self.min_weight_spin.setValue(rule.min_weight)
        self.loops_check.setChecked(rule.self_loops)
        self.resolution_spin.setValue(resolution)
        for widget, old in zip(widgets, blocked, strict=True):
            widget.blockSignals(old)
        self._update_enabled()

    def path_kind(self) -> str:
        return self.path_box.currentData()

    def set_path_kind(self, kind: str) -> None:
        blocked = self.path_box.blockSignals(True)
        self.path_box.setCurrentIndex(max(0, self.path_box.findData(kind)))
        self.path_box.blockSignals(blocked)

    def resolution(self) -> float:
        return self.resolution_spin.value()

    def layout_kind(self) -> str:
        return self.canvas.layout_kind()

    def widest(self) -> bool:
        return self.path_box.currentData() == "widest"

    def flush(self) -> None:
        if self._debounce.isActive():
            self._debounce.stop()
            self.settings_changed.emit()
