"""The graph canvas's chrome: the toolbar above the plot (layout, node size, fit, the path
legend), the hint over the plot and the note under it.

These show text and report what the person picked; what the texts say is decided by the
small functions :func:`hint_for` and :func:`note_for`.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6 import QtCore, QtWidgets
from PySide6.QtCore import Qt, Signal

__all__ = [
    "ARC_LEGEND",
    "DIRECTION_LEGEND",
    "EMPTY_HINT",
    "LAYING_OUT_HINT",
    "NO_EDGES_HINT",
    "CanvasToolbar",
    "HintOverlay",
    "hint_for",
    "note_for",
]

EMPTY_HINT = "Analyse a text to see its attention graph"
NO_EDGES_HINT = "No edges to draw: every attention weight was pruned.\nLower the sparsification threshold."
LAYING_OUT_HINT = "Laying out…"
LAYERED_NOTE = (
    "Layered layout needs a graph across layers (attention flow / rollout); showing the arc layout."
)
ARC_LEGEND = "arcs above the line: a token attends to a later token · below: to an earlier one"
DIRECTION_LEGEND = "arrowheads point to the attended token · width and darkness = attention weight"
SOURCE_COLOR = "#1a9850"
TARGET_COLOR = "#7b3294"
GENERATED_COLOR = "#bf5b00"  # a generation's tokens, as on the heatmap's axes and in the figures


def hint_for(nodes: int, edges: int, layout_pending: bool, empty: str = EMPTY_HINT) -> str:
    """The hint over the plot: what is missing (``empty`` without nodes), or "" when the
    graph speaks for itself."""
    if nodes == 0:
        return empty
    if edges == 0:
        return NO_EDGES_HINT
    if layout_pending:
        return LAYING_OUT_HINT
    return ""


def note_for(*, layered_missing: bool, has_edges: bool, arc: bool, drawn: int, total: int) -> str:
    """The note under the plot: why "layered" shows arcs, how to read the edges, and how
    many of them are drawn."""
    notes = [LAYERED_NOTE] if layered_missing else []
    if has_edges:
        notes.append(ARC_LEGEND if arc else DIRECTION_LEGEND)
        if drawn < total:
            notes.append(f"Drawing the strongest {drawn:,} of {total:,} edges.")
    return "  ".join(notes)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;")


class CanvasToolbar(QtWidgets.QWidget):
    """Layout and size pickers, a Fit button and the legend of the path's ends.

    Signals
    -------
    layout_picked(str): the person picked a layout.
    size_picked(str): the person picked a size metric ("" = uniform).
    fit_clicked(): the person asked to see the whole graph.
    Setting the shown values (:meth:`show_layout`, :meth:`show_metrics`) emits nothing.
    """

    layout_picked = Signal(str)
    size_picked = Signal(str)
    fit_clicked = Signal()

    def __init__(self, layouts: Sequence[str], parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self._layouts = tuple(layouts)
        self.layout_combo = QtWidgets.QComboBox()
        self.layout_combo.addItems(list(self._layouts))
        self.layout_combo.setToolTip("Node layout")
        self.size_combo = QtWidgets.QComboBox()
        self.size_combo.addItem("uniform")
        self.size_combo.setToolTip("Node size by metric")
        self.fit_button = QtWidgets.QToolButton()
        self.fit_button.setText("Fit")
        self.fit_button.setToolTip("Reset zoom and pan to show the whole graph")
        self.size_combo.setMinimumContentsLength(len("out_strength"))  # "pagerank", "betweenness" read whole
        self.size_combo.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.legend = ElidedLegend()
        bar = QtWidgets.QHBoxLayout(self)
        bar.setContentsMargins(4, 2, 4, 2)
        bar.setSpacing(6)
        bar.addWidget(QtWidgets.QLabel("Layout"))
        bar.addWidget(self.layout_combo)
        bar.addSpacing(8)
        bar.addWidget(QtWidgets.QLabel("Size"))
        bar.addWidget(self.size_combo)
        bar.addWidget(self.fit_button)
        self.generated_legend = QtWidgets.QLabel(
            f"<span style='color:{GENERATED_COLOR}'>◯</span> generated")
        self.generated_legend.setToolTip("Tokens the model generated (its answer) have an orange ring and label")
        self.generated_legend.setVisible(False)
        bar.addSpacing(8)
        bar.addWidget(self.generated_legend)
        bar.addSpacing(8)
        bar.addWidget(self.legend, 1)
        self.layout_combo.currentIndexChanged.connect(
            lambda row: self.layout_picked.emit(self._layouts[row])
        )
        self.size_combo.currentIndexChanged.connect(
            lambda row: self.size_picked.emit("" if row <= 0 else self.size_combo.itemText(row))
        )
        self.fit_button.clicked.connect(self.fit_clicked)

    def show_layout(self, kind: str, layered_enabled: bool) -> None:
        """Show ``kind`` as the chosen layout; "layered" can be picked only if enabled."""
        model = self.layout_combo.model()
        item = model.item(self._layouts.index("layered")) if hasattr(model, "item") else None
        if item is not None:
            item.setEnabled(layered_enabled)
        blocked = self.layout_combo.blockSignals(True)
        self.layout_combo.setCurrentIndex(self._layouts.index(kind))
        self.layout_combo.blockSignals(blocked)

    def show_metrics(self, names: Sequence[str], current: str | None) -> None:
        """Offer "uniform" and ``names``; show ``current`` (None: uniform)."""
        names = list(names)
        blocked = self.size_combo.blockSignals(True)
        self.size_combo.clear()
        self.size_combo.addItem("uniform")
        for name in names:
            self.size_combo.addItem(name)
        self.size_combo.setCurrentIndex(0 if current is None else 1 + names.index(current))
        self.size_combo.blockSignals(blocked)

    def show_generated(self, shown: bool) -> None:
        """Show the legend entry "generated" (a generation's tokens are on the canvas)."""
        self.generated_legend.setVisible(bool(shown))

    def generated_legend_text(self) -> str:
        return "generated" if not self.generated_legend.isHidden() else ""

    def show_ends(self, source: str | None, target: str | None, has_nodes: bool) -> None:
        """The legend: the path's source and target (their display names), or how to
        pick them."""
        if source is None and target is None:
            plain = "click a token: path source · shift-click: target" if has_nodes else ""
            html = f"<span style='color:#7b8794'>{plain}</span>"
        else:
            s_txt, t_txt = source or "—", target or "—"
            plain = f"source: {s_txt} → target: {t_txt}"
            html = (
                f"<span style='color:{SOURCE_COLOR}'><b>source:</b> {_escape(s_txt)}</span>"
                f" → <span style='color:{TARGET_COLOR}'><b>target:</b> {_escape(t_txt)}</span>"
            )
        self.legend.show_text(html, plain)

    @property
    def legend_plain(self) -> str:
        """The legend as plain text (what it says, whether or not it is elided)."""
        return self.legend.plain


class ElidedLegend(QtWidgets.QLabel):
    """A one-line rich-text label that never widens its dock: when its text does not fit,
    it shows the plain text elided with "…" (the whole text in its tooltip)."""

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.setTextFormat(Qt.TextFormat.RichText)
        self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Preferred)
        self.setMinimumWidth(0)
        self.html = ""
        self.plain = ""

    def show_text(self, html: str, plain: str) -> None:
        self.html, self.plain = html, plain
        self._fit()

    def resizeEvent(self, event):  # noqa: N802 (Qt name)
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        metrics = self.fontMetrics()
        if metrics.horizontalAdvance(self.plain) <= self.width():
            self.setText(self.html)
            self.setToolTip("")
        else:
            self.setText(_escape(metrics.elidedText(self.plain, Qt.TextElideMode.ElideRight, max(self.width(), 0))))
            self.setToolTip(self.plain)


class HintOverlay(QtWidgets.QLabel):
    """A muted sentence over a view (mouse passes through), kept 20 px inside it; centred
    when the view is empty, at the top when there is something under it to see."""

    def __init__(self, view: QtWidgets.QWidget):
        super().__init__(view)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setWordWrap(True)
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.setStyleSheet("color: #7b8794; font-size: 14px; background: transparent;")
        self._view = view
        view.installEventFilter(self)

    def show_text(self, text: str, at_top: bool) -> None:
        self.setText(text)
        self.setVisible(bool(text))
        if at_top:
            self.setAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
        else:
            self.setAlignment(Qt.AlignmentFlag.AlignCenter)

    def eventFilter(self, obj, event):
        if obj is self._view and event.type() == QtCore.QEvent.Type.Resize:
            self.setGeometry(self._view.rect().adjusted(20, 20, -20, -20))
        return super().eventFilter(obj, event)
