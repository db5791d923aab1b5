"""Interactive node-link view of an attention graph.

:class:`GraphCanvas` draws tokens as nodes and attention as directed edges
(``i -> j`` with weight ``A[i, j]``: "token i attends to token j") in a pyqtgraph
ViewBox.  It shows state and reports what the person did; it runs no model and no
graph algorithm: metrics, communities and paths arrive as plain arrays, and layouts
come from :mod:`analysis.graph.layout` (called here directly, or handed in precomputed by
the app through ``set_layout(kind, positions=...)``).

Drawing is batched so that 512 tokens with ~25k edges stay interactive:

* edges are bucketed by weight into ``EDGE_BINS`` bins, one path item per bin (one pen:
  width and opacity grow with the bin), never one item or pen per edge;
* arrowheads (straight-edge layouts) are one filled path per bin, recomputed only when
  the zoom level changes so they keep a constant size on screen;
* all labels are painted by one item that thins them on screen (greedy, by importance)
  so they never overlap; hovered, selected, source, target and path nodes always get
  their label.

Software rasterisation of wide antialiased strokes costs ~0.1 ms per long edge, so
only the strongest ``THICK_EDGE_BUDGET`` edges are drawn wider than one pixel.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets
from PySide6.QtCore import Qt, Signal

from analysis.graph.layout import arc_layout, circular_layout, force_layout, layered_layout

__all__ = ["GraphCanvas", "weight_bins", "EDGE_BINS", "COMMUNITY_PALETTE"]

EDGE_BINS = 5
THICK_EDGE_BUDGET = 1500  # edges drawn wider than 1 px (wide AA strokes are slow)
#: Edges drawn at most; the strongest are kept. A broad 512-token head keeps ~200k edges at
#: 90% coverage: drawing them all costs ~0.3 s on the GUI thread and shows only a haze.
#: Measured on a 700x600 canvas, broad head, force layout: 12,000 edges took 96 ms to paint,
#: 4,000 took 46 ms (within the 50 ms stall budget) and looked the same.
MAX_DRAWN_EDGES = 4000
ARROW_BUDGET = 1500  # strongest edges that get an arrowhead in straight layouts

# Tableau 10, then the lighter Tableau 20 partners: qualitative, stable per community id.
COMMUNITY_PALETTE = (
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1",
    "#76b7b2", "#edc948", "#9c755f", "#ff9da7", "#bab0ac",
    "#a0cbe8", "#ffbe7d", "#8cd17d", "#ff9d9a", "#d4a6c8",
    "#86bcb6", "#f1ce63", "#d7b5a6", "#fabfd2", "#79706e",
)  # fmt: skip
NO_COMMUNITY_COLOR = "#6b7f99"
EDGE_RGB = (44, 58, 74)
HIGHLIGHT_COLOR = "#d81b60"
SOURCE_COLOR = "#1a9850"
TARGET_COLOR = "#7b3294"
SELECTED_COLOR = "#222222"
BACKGROUND = "#ffffff"

_BIN_WIDTHS = (1.0, 1.0, 1.6, 2.4, 3.4)
_BIN_ALPHAS = (60, 95, 140, 190, 235)  # upper bounds; lowered where edges pile up
_BIN_TARGET_OPACITY = (0.22, 0.38, 0.6, 0.82, 0.95)  # where edges overlap on average


def _node_px_range(n: int) -> tuple[float, float, float]:
    """(smallest, largest, uniform) node diameter in pixels for a graph of n nodes."""
    if n <= 64:
        return 7.0, 26.0, 12.0
    if n <= 200:
        return 5.0, 18.0, 9.0
    return 4.0, 14.0, 6.0

EMPTY_HINT = "Analyse a text to see its attention graph"
NO_EDGES_HINT = "No edges to draw: every attention weight was pruned.\nLower the sparsification threshold."
ARC_LEGEND = "arcs above the line: a token attends to a later token · below: to an earlier one"
DIRECTION_LEGEND = "arrowheads point to the attended token · width and darkness = attention weight"


def drawn_edge_mask(sources: np.ndarray, targets: np.ndarray, weights: np.ndarray,
                    limit: int | None = None) -> np.ndarray:
    """Edges worth drawing: not self-loops, and only the ``limit`` strongest (ties by order).

    Linear time (a partition, not a sort): broad heads keep ~200k edges at 512 tokens."""
    limit = MAX_DRAWN_EDGES if limit is None else limit
    keep = sources != targets
    candidates = np.flatnonzero(keep)
    if candidates.shape[0] > limit:
        strength = weights[candidates]
        cut = np.partition(strength, candidates.shape[0] - limit)[candidates.shape[0] - limit]
        above = candidates[strength > cut]
        tied = candidates[strength == cut][: limit - above.shape[0]]  # earliest ties first
        keep = np.zeros_like(keep)
        keep[above] = True
        keep[tied] = True
    return keep


def weight_bins(weights: np.ndarray, n_bins: int = EDGE_BINS) -> np.ndarray:
    """Bin index ``0 .. n_bins-1`` per edge by weight relative to the strongest edge.

    The square root spreads the many small attention weights over the lower bins while
    the strongest links land in the top bin.
    """
    w = np.abs(np.asarray(weights, dtype=np.float64).ravel())
    w = np.where(np.isfinite(w), w, 0.0)
    if w.size == 0:
        return np.zeros(0, dtype=np.int64)
    wmax = w.max()
    if wmax <= 0:
        return np.zeros(w.shape, dtype=np.int64)
    b = np.floor(np.sqrt(w / wmax) * n_bins).astype(np.int64)
    return np.clip(b, 0, n_bins - 1)


def _display_label(text: str) -> str:
    text = str(text)
    if text.strip() == "":
        return repr(text)
    return text


def _fmt(value: float) -> str:
    v = float(value)
    if not math.isfinite(v):
        return "nan"
    if v != 0 and (abs(v) >= 1e4 or abs(v) < 1e-3):
        return f"{v:.3g}"
    return f"{v:.3f}"


# ----------------------------------------------------------------------------------
# geometry (numpy): edges as segment pairs or sampled arcs, arrowheads as triangles
# ----------------------------------------------------------------------------------


def _straight_xy(pos: np.ndarray, s: np.ndarray, t: np.ndarray):
    m = s.shape[0]
    x = np.empty(2 * m)
    y = np.empty(2 * m)
    x[0::2] = pos[s, 0]
    x[1::2] = pos[t, 0]
    y[0::2] = pos[s, 1]
    y[1::2] = pos[t, 1]
    return x, y, "pairs"


def _arc_samples(m: int) -> int:
    """Points per arc: smooth for a few edges, cheaper (still round) for thousands."""
    return 32 if m <= 1000 else (16 if m <= 2500 else 10)


def _arc_xy(pos: np.ndarray, s: np.ndarray, t: np.ndarray, k: int | None = None):
    """Quadratic Bezier arcs bulging to the left of the direction of travel.

    On the arc layout's horizontal line that puts ``i -> j`` with ``i < j`` above the
    line and ``i > j`` below it; for dragged nodes the rule still holds.
    """
    m = s.shape[0]
    k = k or _arc_samples(m)
    p = pos[s]
    q = pos[t]
    d = q - p
    normal = np.column_stack([-d[:, 1], d[:, 0]])  # left of travel, length = |d|
    c = 0.5 * (p + q) + normal  # control point: arc height = |d| / 2
    u = np.linspace(0.0, 1.0, k)
    a = ((1 - u) ** 2)[None, :, None]
    b = (2 * u * (1 - u))[None, :, None]
    e = (u**2)[None, :, None]
    pts = a * p[:, None, :] + b * c[:, None, :] + e * q[:, None, :]  # [m, k, 2]
    connect = np.ones(m * k, dtype=bool)
    connect[k - 1 :: k] = False
    return pts[:, :, 0].ravel(), pts[:, :, 1].ravel(), connect


def _arrow_xy(tip_from: np.ndarray, tip_to: np.ndarray, back_px: np.ndarray, length_px: float, px: float):
    """Triangles pointing from ``tip_from`` towards ``tip_to``; the tip sits
    ``back_px`` pixels before ``tip_to`` (the node's rim).  Returns x, y, connect for a
    path of unclosed triangles (filled with the winding rule)."""
    d = tip_to - tip_from
    L = np.hypot(d[:, 0], d[:, 1])
    ok = L > (back_px + length_px + 2.0) * px
    d, L, tip_to, back_px = d[ok], L[ok], tip_to[ok], back_px[ok]
    u = d / L[:, None]
    perp = np.column_stack([-u[:, 1], u[:, 0]])
    tip = tip_to - u * (back_px * px)[:, None]
    base = tip - u * (length_px * px)
    half = 0.42 * length_px * px
    left = base + perp * half
    right = base - perp * half
    m = tip.shape[0]
    pts = np.stack([tip, left, right], axis=1)  # [m, 3, 2]
    connect = np.ones(m * 3, dtype=bool)
    connect[2::3] = False
    return pts[:, :, 0].ravel(), pts[:, :, 1].ravel(), connect


def _to_path(x, y, connect, fill: bool = False) -> QtGui.QPainterPath:
    if len(x) == 0:
        return QtGui.QPainterPath()
    path = pg.arrayToQPath(np.ascontiguousarray(x), np.ascontiguousarray(y), connect)
    if fill:
        path.setFillRule(Qt.FillRule.WindingFill)
    return path


# ----------------------------------------------------------------------------------
# graphics items
# ----------------------------------------------------------------------------------


class _PathBatch(pg.GraphicsObject):
    """One QPainterPath drawn with one pen/brush: a batch of edges or arrowheads.

    Not hit-testable (empty shape) so hovering over 25k edges costs nothing."""

    def __init__(self, pen=None, brush=None):
        super().__init__()
        self._path = QtGui.QPainterPath()
        self._rect = QtCore.QRectF()
        self._pen = pg.mkPen(pen) if pen is not None else QtGui.QPen(Qt.PenStyle.NoPen)
        self._brush = pg.mkBrush(brush) if brush is not None else QtGui.QBrush()
        self.n_items = 0  # edges (or arrowheads) in this batch, for tests
        self.setAcceptHoverEvents(False)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)

    def set_path(self, path: QtGui.QPainterPath, n_items: int = 0) -> None:
        self.prepareGeometryChange()
        self._path = path
        self._rect = path.boundingRect()
        self.n_items = int(n_items)
        self.update()

    def set_pen(self, pen) -> None:
        self._pen = pg.mkPen(pen)
        self.update()

    def pen(self) -> QtGui.QPen:
        return QtGui.QPen(self._pen)

    def boundingRect(self) -> QtCore.QRectF:
        return QtCore.QRectF(self._rect)

    def shape(self) -> QtGui.QPainterPath:
        return QtGui.QPainterPath()

    def paint(self, p, *args):
        if self._path.isEmpty():
            return
        p.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing, True)
        pen = self._pen
        if (
            self._exportOpts is False
            and pen.style() != Qt.PenStyle.NoPen
            and pen.widthF() > 1.0
            and self.n_items > 8
        ):
            self._paint_hairline_passes(p, pen)
            return
        if self._exportOpts is not False and pen.style() != Qt.PenStyle.NoPen:
            scale = self._exportOpts.get("resolutionScale", 1.0)
            if scale != 1.0:
                pen = QtGui.QPen(pen)
                pen.setWidthF(pen.widthF() * scale)
        p.setPen(pen)
        p.setBrush(self._brush)
        p.drawPath(self._path)

    def _paint_hairline_passes(self, p, pen: QtGui.QPen) -> None:
        """A wide line as several one-pixel strokes shifted by sub-pixel offsets.

        Qt's raster engine strokes wide antialiased curves ~30x slower than hairlines
        (~1 ms per long arc), so on screen a batch of many wide edges is drawn as a
        hairline at the centre plus a ring of shifted copies; each pass carries part of
        the opacity so the core reaches the pen's.  Exports use the real wide pen."""
        width = pen.widthF()
        radius = (width - 1.0) / 2.0
        ring = 4 if width < 2.5 else 6
        offsets = [(0.0, 0.0)] + [
            (radius * math.cos(2 * math.pi * k / ring), radius * math.sin(2 * math.pi * k / ring))
            for k in range(ring)
        ]
        color = QtGui.QColor(pen.color())
        alpha = color.alphaF()
        color.setAlphaF(1.0 - (1.0 - min(alpha, 0.999)) ** (1.0 / len(offsets)))
        thin = QtGui.QPen(pen)
        thin.setWidthF(1.0)
        thin.setColor(color)
        thin.setCosmetic(True)
        p.setPen(thin)
        p.setBrush(QtGui.QBrush())
        base = p.transform()
        for dx, dy in offsets:
            p.setTransform(base * QtGui.QTransform.fromTranslate(dx, dy))
            p.drawPath(self._path)
        p.setTransform(base)


class _NodeItem(pg.ScatterPlotItem):
    """The nodes. Hit-testing is done by the canvas (nearest node in pixels); this item
    only routes hover, click and drag to it (pattern of pyqtgraph's CustomGraphItem)."""

    def __init__(self, canvas: GraphCanvas):
        super().__init__(pxMode=True, hoverable=False, tip=None)
        self._canvas = canvas
        self._drag_index = -1
        self._drag_offset = None

    def hoverEvent(self, ev):
        if ev.exit:
            self._canvas._on_node_hover(-1)
            return
        i = self._canvas._node_at(ev.pos())
        if i >= 0:
            ev.acceptClicks(Qt.MouseButton.LeftButton)
            ev.acceptDrags(Qt.MouseButton.LeftButton)
        self._canvas._on_node_hover(i)

    def mouseClickEvent(self, ev):
        if ev.button() != Qt.MouseButton.LeftButton:
            ev.ignore()
            return
        i = self._canvas._node_at(ev.pos())
        if i < 0:
            ev.ignore()
            return
        ev.accept()
        self._canvas._on_node_clicked(i, ev.modifiers())

    def mouseDragEvent(self, ev):
        if ev.button() != Qt.MouseButton.LeftButton:
            ev.ignore()
            return
        if ev.isStart():
            down = ev.buttonDownPos()
            i = self._canvas._node_at(down)
            if i < 0:
                ev.ignore()
                return
            self._drag_index = i
            self._drag_offset = self._canvas._pos[i] - np.array([down.x(), down.y()])
        elif ev.isFinish():
            if self._drag_index >= 0:
                p = ev.pos()
                self._canvas._on_node_dragged(
                    self._drag_index, np.array([p.x(), p.y()]) + self._drag_offset, True
                )
            self._drag_index = -1
            ev.accept()
            return
        elif self._drag_index < 0:
            ev.ignore()
            return
        ev.accept()
        p = ev.pos()
        self._canvas._on_node_dragged(
            self._drag_index, np.array([p.x(), p.y()]) + self._drag_offset, False
        )


class _Decoration(pg.ScatterPlotItem):
    """Rings around nodes (source, target, selection, path). Never takes the mouse."""

    def __init__(self):
        super().__init__(pxMode=True, hoverable=False, tip=None)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)

    def mouseClickEvent(self, ev):
        ev.ignore()

    def mouseDragEvent(self, ev):
        ev.ignore()

    def hoverEvent(self, ev):
        pass

    def shape(self):
        return QtGui.QPainterPath()


class _LabelLayer(pg.GraphicsObject):
    """Paints all token labels in screen space and thins them so none overlap."""

    FONT_PX = 12
    MAX_FREE_LABELS = 150  # labels beyond the forced ones; more is a wall of text
    GAP_PX = 3.0  # free space kept around each label

    def __init__(self, canvas: GraphCanvas):
        super().__init__()
        self._canvas = canvas
        self.setAcceptHoverEvents(False)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
        self.drawn: list[int] = []  # labels drawn by the last paint, for tests

    def shape(self):
        return QtGui.QPainterPath()

    def viewTransformChanged(self):
        self.prepareGeometryChange()

    def boundingRect(self):
        pos = self._canvas._pos
        if pos.shape[0] == 0:
            return QtCore.QRectF()
        lo = pos.min(axis=0)
        hi = pos.max(axis=0)
        px = self._canvas._pixel_size() or 1.0
        pad = 260.0 * px
        return QtCore.QRectF(lo[0] - pad, lo[1] - pad, hi[0] - lo[0] + 2 * pad, hi[1] - lo[1] + 2 * pad)

    def paint(self, p, *args):
        c = self._canvas
        n = c._pos.shape[0]
        self.drawn = []
        if n == 0:
            return
        scale = 1.0
        if self._exportOpts is not False:
            scale = self._exportOpts.get("resolutionScale", 1.0)
        tr = p.transform()
        x = c._pos[:, 0]
        y = c._pos[:, 1]
        dx = tr.m11() * x + tr.m21() * y + tr.dx()
        dy = tr.m12() * x + tr.m22() * y + tr.dy()
        dev = p.device()
        W = dev.width() if dev is not None else 1e9
        H = dev.height() if dev is not None else 1e9
        radius = c._sizes * 0.5 * scale

        font = QtGui.QFont(c.font())
        font.setPixelSize(max(1, round(self.FONT_PX * scale)))
        fm = QtGui.QFontMetricsF(font)
        texts = c._display
        widths = c._label_widths(fm, scale)
        h = fm.height()
        vertical = c._effective_kind == "arc"
        # circular: labels point away from the centre (left half: to the left)
        leftward = np.zeros(n, dtype=bool)
        if c._effective_kind == "circular":
            leftward = x < x.mean() - 1e-9

        forced = c._forced_labels()
        order = [i for i in forced if 0 <= i < n]
        forced_set = set(order)
        order += [int(i) for i in c._label_priority if int(i) not in forced_set]

        placed: list[QtCore.QRectF] = []
        grid: dict[tuple[int, int], list[int]] = {}
        cell = 64.0 * scale
        draw = []
        free = 0
        gap = self.GAP_PX * scale
        for i in order:
            xi, yi, ri = dx[i], dy[i], radius[i]
            if vertical:
                rect = QtCore.QRectF(xi - h / 2, yi + ri + 3 * scale, h, widths[i] + 4 * scale)
            elif leftward[i]:
                rect = QtCore.QRectF(xi - ri - 3 * scale - widths[i] - 6 * scale, yi - h / 2, widths[i] + 6 * scale, h)
            else:
                rect = QtCore.QRectF(xi + ri + 3 * scale, yi - h / 2, widths[i] + 6 * scale, h)
            is_forced = i in forced_set
            if not is_forced and (
                rect.right() < 0 or rect.left() > W or rect.bottom() < 0 or rect.top() > H
            ):
                continue
            gx0 = int(rect.left() // cell)
            gx1 = int(rect.right() // cell)
            gy0 = int(rect.top() // cell)
            gy1 = int(rect.bottom() // cell)
            if not is_forced:
                if free >= self.MAX_FREE_LABELS:
                    continue
                hit = False
                probe = rect.adjusted(-gap, -gap, gap, gap)
                for gx in range(gx0, gx1 + 1):
                    for gy in range(gy0, gy1 + 1):
                        for j in grid.get((gx, gy), ()):
                            if placed[j].intersects(probe):
                                hit = True
                                break
                        if hit:
                            break
                    if hit:
                        break
                if hit:
                    continue
                free += 1
            k = len(placed)
            placed.append(rect)
            for gx in range(gx0, gx1 + 1):
                for gy in range(gy0, gy1 + 1):
                    grid.setdefault((gx, gy), []).append(k)
            draw.append((i, rect, is_forced))

        p.save()
        p.resetTransform()
        p.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing, True)
        p.setRenderHint(QtGui.QPainter.RenderHint.TextAntialiasing, True)
        p.setFont(font)
        halo = QtGui.QColor(255, 255, 255, 215)
        text_pen = QtGui.QPen(QtGui.QColor("#1f2933"))
        strong_pen = QtGui.QPen(QtGui.QColor("#000000"))
        bold = QtGui.QFont(font)
        bold.setBold(True)
        # non-forced first so forced labels sit on top
        draw.sort(key=lambda item: item[2])
        for i, rect, is_forced in draw:
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(halo)
            if self._exportOpts is False:
                p.drawRoundedRect(rect, 3 * scale, 3 * scale)
            else:  # pyqtgraph's SVG exporter only understands straight path segments
                p.drawRect(rect)
            p.setPen(strong_pen if is_forced else text_pen)
            p.setFont(bold if is_forced else font)
            if vertical:
                p.save()
                p.translate(rect.left() + h / 2, rect.top() + 2 * scale)
                p.rotate(90)
                p.drawText(QtCore.QPointF(0, fm.ascent() - h / 2), texts[i])
                p.restore()
            else:
                p.drawText(QtCore.QPointF(rect.left() + 3 * scale, rect.top() + fm.ascent()), texts[i])
            self.drawn.append(i)
        p.restore()


# ----------------------------------------------------------------------------------
# the widget
# ----------------------------------------------------------------------------------


class GraphCanvas(QtWidgets.QWidget):
    """Node-link view of one attention graph.

    Signals
    -------
    node_hovered(int): token under the mouse, -1 when the mouse leaves the nodes.
    source_selected(int): plain click on a node (it becomes the path source).
    target_selected(int): shift-click on a node (it becomes the path target).
    token_selected(int): plain click on a node (to link with the heatmap).
    layout_changed(str): the person picked a layout in the toolbar.
    size_metric_changed(str): the person picked a size metric ("" = uniform).
    """

    LAYOUTS = ("arc", "circular", "force", "layered")

    node_hovered = Signal(int)
    source_selected = Signal(int)
    target_selected = Signal(int)
    token_selected = Signal(int)
    layout_changed = Signal(str)
    size_metric_changed = Signal(str)

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        # graph state
        self._labels: list[str] = []
        self._display: list[str] = []
        self._src = np.zeros(0, dtype=np.int64)
        self._drawn = np.zeros(0, dtype=bool)
        self._dst = np.zeros(0, dtype=np.int64)
        self._w = np.zeros(0, dtype=np.float64)
        self._bins = np.zeros(0, dtype=np.int64)
        self._metrics: dict[str, np.ndarray] = {}
        self._communities: np.ndarray | None = None
        self._node_layer: np.ndarray | None = None
        self._layered_available = False  # the app can build a graph across layers on request
        self._pos = np.zeros((0, 2), dtype=np.float64)
        self._sizes = np.zeros(0, dtype=np.float64)
        self._label_priority = np.zeros(0, dtype=np.int64)
        self._label_width_cache: tuple | None = None
        self._layout_cache: dict[str, np.ndarray] = {}
        self._layout_kind = "arc"  # requested
        self._edges_pending = False  # set_graph(edges_later=True) until draw_pending_edges()
        self._brushes: dict[int, QtGui.QBrush] = {}  # node fill per colour (see _refresh_nodes)
        self._node_pen = pg.mkPen(QtGui.QColor(255, 255, 255), width=1.2)
        self._effective_kind = "arc"
        self._size_metric: str | None = None  # requested
        self._source: int | None = None
        self._target: int | None = None
        self._selected: int | None = None
        self._hovered = -1
        self._path_nodes: list[int] = []
        self._arrow_px = None  # pixel size the arrowheads were built for
        self._pen_px = None  # pixel size the edge opacities were chosen for

        # toolbar
        self._layout_combo = QtWidgets.QComboBox()
        self._layout_combo.addItems(list(self.LAYOUTS))
        self._layout_combo.setToolTip("Node layout")
        self._size_combo = QtWidgets.QComboBox()
        self._size_combo.addItem("uniform")
        self._size_combo.setToolTip("Node size by metric")
        self._fit_button = QtWidgets.QToolButton()
        self._fit_button.setText("Fit")
        self._fit_button.setToolTip("Reset zoom and pan to show the whole graph")
        self._legend = QtWidgets.QLabel()
        self._legend.setTextFormat(Qt.TextFormat.RichText)
        bar = QtWidgets.QHBoxLayout()
        bar.setContentsMargins(4, 2, 4, 2)
        bar.setSpacing(6)
        bar.addWidget(QtWidgets.QLabel("Layout"))
        bar.addWidget(self._layout_combo)
        bar.addSpacing(8)
        bar.addWidget(QtWidgets.QLabel("Size"))
        bar.addWidget(self._size_combo)
        bar.addWidget(self._fit_button)
        bar.addSpacing(12)
        bar.addWidget(self._legend, 1)

        # plot
        self._glw = pg.GraphicsLayoutWidget()
        self._glw.setBackground(BACKGROUND)
        self._glw.setAntialiasing(True)
        self._glw.ci.setContentsMargins(2, 2, 2, 2)
        self._vb = self._glw.addViewBox()
        self._vb.setAspectLocked(True)
        self._vb.setMenuEnabled(False)
        self._vb.setDefaultPadding(0.04)
        self._vb.border = None  # a NoPen border still emits a path the SVG exporter chokes on

        self._edge_items: list[_PathBatch] = []
        self._arrow_items: list[_PathBatch] = []
        self._bin_length = np.zeros(EDGE_BINS)  # total edge length per bin, data units
        self._bin_thin = [False] * EDGE_BINS
        for b in range(EDGE_BINS):
            item = _PathBatch(pen=pg.mkPen(QtGui.QColor(*EDGE_RGB, _BIN_ALPHAS[b])))
            item.setZValue(10 + b)
            self._vb.addItem(item)
            self._edge_items.append(item)
        for b in range(EDGE_BINS):
            item = _PathBatch(brush=QtGui.QColor(*EDGE_RGB, min(255, _BIN_ALPHAS[b] + 20)))
            item.setZValue(10 + b)
            self._vb.addItem(item, ignoreBounds=True)
            self._arrow_items.append(item)
        self._path_casing = _PathBatch(pen=pg.mkPen(QtGui.QColor(255, 255, 255, 230), width=7))
        self._path_casing.setZValue(40)
        self._path_item = _PathBatch(pen=pg.mkPen(HIGHLIGHT_COLOR, width=3.5))
        self._path_item.setZValue(41)
        self._path_arrows = _PathBatch(brush=HIGHLIGHT_COLOR)
        self._path_arrows.setZValue(42)
        for item in (self._path_casing, self._path_item, self._path_arrows):
            self._vb.addItem(item, ignoreBounds=True)
        self._nodes = _NodeItem(self)
        self._nodes.setZValue(50)
        self._vb.addItem(self._nodes)
        self._rings = _Decoration()
        self._rings.setZValue(51)
        self._vb.addItem(self._rings, ignoreBounds=True)
        self._label_layer = _LabelLayer(self)
        self._label_layer.setZValue(60)
        self._vb.addItem(self._label_layer, ignoreBounds=True)

        self._hint = QtWidgets.QLabel(self._glw)
        self._hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._hint.setWordWrap(True)
        self._hint.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self._hint.setStyleSheet("color: #7b8794; font-size: 14px; background: transparent;")
        self._note = QtWidgets.QLabel()
        self._note.setStyleSheet("color: #52606d;")
        self._note.setWordWrap(True)

        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(bar)
        layout.addWidget(self._glw, 1)
        layout.addWidget(self._note)

        self._layout_combo.currentIndexChanged.connect(self._on_layout_combo)
        self._size_combo.currentIndexChanged.connect(self._on_size_combo)
        self._fit_button.clicked.connect(self.reset_view)
        self._vb.sigTransformChanged.connect(self._on_view_transform_changed)
        self._glw.installEventFilter(self)

        self._update_layout_combo()
        self._update_legend()
        self._update_hint()
        self._update_note()

    # ------------------------------------------------------------------ public API

    def set_graph(
        self,
        labels: Sequence[str],
        sources: np.ndarray,
        targets: np.ndarray,
        weights: np.ndarray,
        *,
        metrics: dict[str, np.ndarray] | None = None,
        communities: np.ndarray | None = None,
        node_layer: np.ndarray | None = None,
        positions: dict[str, np.ndarray] | None = None,
        edges_later: bool = False,
    ) -> None:
        """Show a graph: ``labels[i]`` is token i; edge k is ``sources[k] -> targets[k]``
        with ``weights[k]``.  Keeps the current layout kind and size metric; clears the
        highlighted path (it belonged to the previous graph) and keeps source, target
        and selection where they are still valid token indices.  ``positions`` maps a
        layout kind to ``[n, 2]`` coordinates computed elsewhere (the app's worker lays out
        the force graph there, so this thread does not).  With ``edges_later`` the nodes
        are shown now and the edges when :meth:`draw_pending_edges` is called (the window
        does that on the next turn of its event loop, so no single turn takes long)."""
        labels = [str(t) for t in labels]
        n = len(labels)
        s = np.asarray(sources, dtype=np.int64).ravel()
        t = np.asarray(targets, dtype=np.int64).ravel()
        w = np.asarray(weights, dtype=np.float64).ravel()
        if not (s.shape == t.shape == w.shape):
            raise ValueError(
                f"sources, targets and weights must have the same length, got "
                f"{s.shape[0]}, {t.shape[0]}, {w.shape[0]}"
            )
        if s.size and (min(s.min(), t.min()) < 0 or max(s.max(), t.max()) >= n):
            raise ValueError(f"edge endpoints must be token indices in [0, {n})")
        clean_metrics: dict[str, np.ndarray] = {}
        for name, values in (metrics or {}).items():
            arr = np.asarray(values, dtype=np.float64).ravel()
            if arr.shape[0] != n:
                raise ValueError(f"metric {name!r} has {arr.shape[0]} values for {n} tokens")
            clean_metrics[str(name)] = arr
        if communities is not None:
            communities = np.asarray(communities).ravel().astype(np.int64)
            if communities.shape[0] != n:
                raise ValueError(f"communities has {communities.shape[0]} values for {n} tokens")
        if node_layer is not None:
            node_layer = np.asarray(node_layer).ravel()
            if node_layer.shape[0] != n:
                raise ValueError(f"node_layer has {node_layer.shape[0]} values for {n} tokens")

        self._labels = labels
        self._display = [_display_label(x) for x in labels]
        self._label_width_cache = None
        self._src, self._dst, self._w = s, t, w
        self._bins = weight_bins(w)
        self._metrics = clean_metrics
        self._communities = communities
        self._node_layer = node_layer
        self._layout_cache = {}
        for kind, pos in (positions or {}).items():
            pos = np.asarray(pos, dtype=np.float64)
            if kind in self.LAYOUTS and pos.shape == (n, 2):
                self._layout_cache[kind] = pos.copy()
        self._path_nodes = []
        self._hovered = -1
        for attr in ("_source", "_target", "_selected"):
            v = getattr(self, attr)
            if v is not None and v >= n:
                setattr(self, attr, None)

        self._drawn = drawn_edge_mask(s, t, w)
        strength = np.bincount(s, weights=np.abs(w), minlength=n) + np.bincount(
            t, weights=np.abs(w), minlength=n
        )
        self._strength = strength[:n] if n else np.zeros(0)

        self._update_size_combo()
        self._update_layout_combo()
        self._pos = self._compute_layout()
        self._update_sizes()
        self._refresh_all(edges=not edges_later)
        self._update_hint()
        self._update_note()
        self._update_legend()
        self.reset_view()

    def draw_pending_edges(self) -> None:
        """Draw the edges that ``set_graph(..., edges_later=True)`` left out (no-op otherwise)."""
        if self._edges_pending:
            self._edges_pending = False
            self._refresh_edges()
            self._refresh_path()

    def edges_pending(self) -> bool:
        return self._edges_pending

    def clear(self) -> None:
        """Back to the empty state."""
        self.set_graph([], np.zeros(0), np.zeros(0), np.zeros(0))

    def set_layout(self, kind: str, positions: np.ndarray | None = None) -> None:
        """Switch the layout: one of ``LAYOUTS``.  ``positions`` (``[n, 2]``) may carry
        a layout computed elsewhere (e.g. a force layout from the app's worker).
        "layered" needs ``node_layer``; without it the arc layout is shown and a note
        says why."""
        if kind not in self.LAYOUTS:
            raise ValueError(f"unknown layout {kind!r}; expected one of {self.LAYOUTS}")
        self._layout_kind = kind
        if positions is not None:
            pos = np.asarray(positions, dtype=np.float64)
            if pos.shape != (len(self._labels), 2):
                raise ValueError(f"positions must have shape ({len(self._labels)}, 2), got {pos.shape}")
            self._layout_cache[kind] = pos.copy()
        self._update_layout_combo()
        self._pos = self._compute_layout()
        self._refresh_all()
        self._update_note()
        self.reset_view()

    def set_layered_available(self, available: bool) -> None:
        """Let the person pick "layered" in the toolbar even though the graph shown has no
        ``node_layer``: the app answers ``layout_changed("layered")`` with a graph across
        layers (rollout / flow views)."""
        self._layered_available = bool(available)
        self._update_layout_combo()

    def layout_kind(self) -> str:
        """The layout actually drawn (may differ from the requested one, see set_layout)."""
        return self._effective_kind

    def set_size_metric(self, name: str | None) -> None:
        """Size nodes by metric ``name`` (area grows with the value, min-max scaled to
        7..26 px), or uniformly for None.  A name the current graph lacks is remembered
        and used once a graph has it; meanwhile nodes are uniform."""
        self._size_metric = name or None
        self._update_size_combo()
        self._update_sizes()
        self._refresh_nodes()
        self._rebuild_arrows(force=True)
        self._label_layer.update()

    def size_metric(self) -> str | None:
        """The metric that sizes the nodes now (None when uniform)."""
        if self._size_metric is not None and self._size_metric in self._metrics:
            return self._size_metric
        return None

    def set_source(self, index: int | None) -> None:
        self._source = self._check_index(index)
        self._refresh_rings()
        self._update_legend()

    def set_target(self, index: int | None) -> None:
        self._target = self._check_index(index)
        self._refresh_rings()
        self._update_legend()

    def select_token(self, index: int | None) -> None:
        """Mark a token as selected (e.g. from the heatmap or the table); no signal."""
        self._selected = self._check_index(index)
        self._refresh_rings()

    def source(self) -> int | None:
        return self._source

    def target(self) -> int | None:
        return self._target

    def selected_token(self) -> int | None:
        return self._selected

    def highlight_path(self, nodes: Sequence[int]) -> None:
        """Draw the path ``nodes[0] -> nodes[1] -> ...`` thick on top; ``[]`` clears."""
        nodes = [int(i) for i in nodes]
        n = len(self._labels)
        for i in nodes:
            if not 0 <= i < n:
                raise ValueError(f"path node {i} is not a token index in [0, {n})")
        self._path_nodes = nodes
        self._refresh_path()
        self._refresh_rings()
        self._label_layer.update()

    def highlighted_path(self) -> list[int]:
        return list(self._path_nodes)

    def highlighted_edges(self) -> list[tuple[int, int]]:
        """The (source, target) pairs drawn as the highlighted path."""
        p = self._path_nodes
        return [(p[k], p[k + 1]) for k in range(len(p) - 1)]

    def reset_view(self) -> None:
        """Zoom and pan so the whole graph is visible."""
        if self._pos.shape[0]:
            self._vb.autoRange(padding=0.05)
        else:
            self._vb.setRange(xRange=(-1, 1), yRange=(-1, 1), padding=0)

    def export_png(self, path, *, width: int | None = None) -> None:
        """Write the graph as PNG (``width`` pixels wide; default: as on screen)."""
        from pyqtgraph.exporters import ImageExporter

        path = str(path)
        self._check_writable(path)
        exporter = ImageExporter(self._vb)
        if width is not None:
            exporter.parameters()["width"] = int(width)
        exporter.parameters()["background"] = QtGui.QColor(BACKGROUND)
        image = exporter.export(toBytes=True)
        if image is None or image.isNull() or not image.save(path, "PNG"):
            raise OSError(f"Could not write PNG image to {path!r}")

    def export_svg(self, path) -> None:
        """Write the graph as SVG."""
        from pyqtgraph.exporters import SVGExporter

        path = str(path)
        self._check_writable(path)
        exporter = SVGExporter(self._vb)
        try:
            exporter.export(fileName=path)
            return
        except OSError as exc:
            raise OSError(f"Could not write SVG to {path!r}: {exc.strerror or exc}") from exc
        except ValueError:
            # pyqtgraph <= 0.14 cannot parse the closed paths ("... Z") that Qt >= 6.9
            # writes for the ViewBox clip (pyqtgraph issue #3495): render the same scene
            # region with Qt's own SVG generator instead.
            pass
        self._export_svg_qt(path)

    def _export_svg_qt(self, path: str) -> None:
        from PySide6 import QtSvg

        source = self._vb.sceneBoundingRect()
        generator = QtSvg.QSvgGenerator()
        generator.setFileName(path)
        generator.setSize(QtCore.QSize(int(source.width()), int(source.height())))
        generator.setViewBox(QtCore.QRectF(0, 0, source.width(), source.height()))
        generator.setTitle("Attention Atlas graph")
        painter = QtGui.QPainter()
        if not painter.begin(generator):
            raise OSError(f"Could not write SVG to {path!r}")
        try:
            painter.fillRect(QtCore.QRectF(0, 0, source.width(), source.height()), QtGui.QColor(BACKGROUND))
            self._glw.scene().render(
                painter, QtCore.QRectF(0, 0, source.width(), source.height()), source
            )
        finally:
            painter.end()
        import os

        if not os.path.exists(path) or os.path.getsize(path) == 0:
            raise OSError(f"Could not write SVG to {path!r}")

    # accessors (tests, app)
    def node_positions(self) -> np.ndarray:
        return self._pos.copy()

    def node_sizes(self) -> np.ndarray:
        """Node diameters in pixels."""
        return self._sizes.copy()

    def node_colors(self) -> list[str]:
        return [c.name() for c in self._node_qcolors()]

    def drawn_edge_count(self) -> int:
        """Edges drawn on the canvas (self-loops and, past MAX_DRAWN_EDGES, the weakest left out)."""
        return int(np.count_nonzero(self._drawn))

    def edge_count(self) -> int:
        return int(self._src.shape[0])

    def edge_bins(self) -> np.ndarray:
        """Weight bin (0 = weakest) of each edge."""
        return self._bins.copy()

    def edge_bin_counts(self) -> list[int]:
        """Edges per drawn batch (one path item per weight bin)."""
        return [item.n_items for item in self._edge_items]

    def edge_bin_pens(self) -> list[QtGui.QPen]:
        return [item.pen() for item in self._edge_items]

    def labels(self) -> list[str]:
        return list(self._labels)

    def visible_labels(self) -> list[int]:
        """Token indices whose label the last paint drew."""
        return list(self._label_layer.drawn)

    def hint_text(self) -> str:
        return self._hint.text() if not self._hint.isHidden() else ""

    def legend_text(self) -> str:
        return self._legend_plain

    def node_tooltip(self, index: int) -> str:
        i = int(index)
        lines = [f"{self._display[i]} (#{i})"]
        if self._communities is not None:
            lines.append(f"community {int(self._communities[i])}")
        for name, values in self._metrics.items():
            lines.append(f"{name} {_fmt(values[i])}")
        return "\n".join(lines)

    def view_box(self) -> pg.ViewBox:
        return self._vb

    def graphics_view(self) -> pg.GraphicsView:
        return self._glw

    def node_viewport_pos(self, index: int) -> QtCore.QPoint:
        """Where node ``index`` is drawn, in the graphics view's viewport coordinates
        (for tests that click or drag it)."""
        x, y = self._pos[int(index)]
        scene = self._vb.mapViewToScene(QtCore.QPointF(float(x), float(y)))
        return self._glw.mapFromScene(scene)

    # ------------------------------------------------------------------ handlers

    def _on_layout_combo(self, row: int) -> None:
        kind = self.LAYOUTS[row]
        if kind == self._layout_kind:
            return
        self.set_layout(kind)
        self.layout_changed.emit(kind)

    def _on_size_combo(self, row: int) -> None:
        name = None if row <= 0 else self._size_combo.itemText(row)
        if name == self.size_metric():
            return
        self.set_size_metric(name)
        self.size_metric_changed.emit(name or "")

    def _on_node_hover(self, index: int) -> None:
        if index == self._hovered:
            return
        self._hovered = index
        if index >= 0:
            self._nodes.setToolTip(self.node_tooltip(index))
        else:
            self._nodes.setToolTip("")
        self._label_layer.update()
        self.node_hovered.emit(index)

    def _on_node_clicked(self, index: int, modifiers) -> None:
        if modifiers & Qt.KeyboardModifier.ShiftModifier:
            self.set_target(index)
            self.target_selected.emit(index)
        else:
            self.set_source(index)
            self._selected = index
            self._refresh_rings()
            self.source_selected.emit(index)
            self.token_selected.emit(index)

    def _on_node_dragged(self, index: int, pos: np.ndarray, finished: bool) -> None:
        self._pos[index] = pos
        self._layout_cache[self._effective_kind] = self._pos
        self._refresh_all()

    def _on_view_transform_changed(self, *args) -> None:
        px = self._pixel_size()
        if px is not None and (self._pen_px is None or abs(px / self._pen_px - 1.0) > 0.05):
            self._pen_px = px
            self._update_bin_pens()
        self._rebuild_arrows()

    def eventFilter(self, obj, event):
        if obj is self._glw and event.type() == QtCore.QEvent.Type.Resize:
            self._hint.setGeometry(self._glw.rect().adjusted(20, 20, -20, -20))
        return super().eventFilter(obj, event)

    # ------------------------------------------------------------------ internals

    def _check_index(self, index):
        if index is None:
            return None
        i = int(index)
        if not 0 <= i < len(self._labels):
            raise ValueError(f"token index {i} out of range [0, {len(self._labels)})")
        return i

    def _check_writable(self, path: str) -> None:
        import os

        folder = os.path.dirname(os.path.abspath(path)) or "."
        if not os.path.isdir(folder):
            raise OSError(f"Cannot export to {path!r}: folder {folder!r} does not exist")
        if os.path.isdir(path):
            raise OSError(f"Cannot export to {path!r}: it is a folder")
        if not os.access(folder, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
            raise OSError(f"Cannot export to {path!r}: permission denied")

    def _node_at(self, pos: QtCore.QPointF) -> int:
        """Index of the node drawn under ``pos`` (view coordinates), nearest first; -1."""
        n = self._pos.shape[0]
        px = self._pixel_size()
        if n == 0 or px is None:
            return -1
        d = np.hypot(self._pos[:, 0] - pos.x(), self._pos[:, 1] - pos.y()) / px  # pixels
        reach = self._sizes * 0.5 + 2.0
        d = np.where(d <= reach, d, np.inf)
        i = int(np.argmin(d))
        return i if np.isfinite(d[i]) else -1

    def _pixel_size(self) -> float | None:
        """Data units per screen pixel (aspect is locked, so one number)."""
        try:
            px, py = self._vb.viewPixelSize()
        except Exception:
            return None
        if not (px > 0 and math.isfinite(px)):
            return None
        return float(px)

    def _compute_layout(self) -> np.ndarray:
        n = len(self._labels)
        kind = self._layout_kind
        if kind == "layered" and self._node_layer is None:
            kind = "arc"
        self._effective_kind = kind
        if kind in self._layout_cache:
            return self._layout_cache[kind]
        if kind == "arc":
            pos = arc_layout(n)
        elif kind == "circular":
            pos = circular_layout(n)
        elif kind == "force":
            pos = force_layout(n, self._src, self._dst, self._w, seed=0)
        else:
            pos = self._layered_positions()
        pos = np.array(pos, dtype=np.float64)
        self._layout_cache[kind] = pos
        return pos

    def _layered_positions(self) -> np.ndarray:
        # tokens of a layered graph are usually listed layer by layer; the column of a
        # node is its rank within its layer (its token position).
        layer = self._node_layer
        n = layer.shape[0]
        order = np.zeros(n, dtype=np.int64)
        for value in np.unique(layer):
            idx = np.flatnonzero(layer == value)
            order[idx] = np.arange(idx.shape[0])
        return layered_layout(layer, order)

    def _update_sizes(self) -> None:
        n = len(self._labels)
        name = self.size_metric()
        if n == 0:
            self._sizes = np.zeros(0)
        elif name is None:
            self._sizes = np.full(n, _node_px_range(n)[2])
        else:
            v = self._metrics[name].astype(np.float64)
            finite = np.isfinite(v)
            r = np.zeros(n)
            if finite.any():
                lo = v[finite].min()
                hi = v[finite].max()
                r[finite] = (v[finite] - lo) / (hi - lo) if hi > lo else 0.5
            lo_px, hi_px, _ = _node_px_range(n)
            # area grows with the metric; whole pixels keep pyqtgraph's symbol atlas small
            self._sizes = np.round(lo_px + (hi_px - lo_px) * np.sqrt(r))
        # label priority: by the size metric, else by attention strength
        key = self._metrics[name] if name is not None else getattr(self, "_strength", np.zeros(n))
        key = np.where(np.isfinite(key), key, -np.inf) if n else key
        self._label_priority = np.argsort(-key, kind="stable") if n else np.zeros(0, dtype=np.int64)

    def _brush_for(self, color: QtGui.QColor) -> QtGui.QBrush:
        key = color.rgba()
        brush = self._brushes.get(key)
        if brush is None:
            brush = self._brushes[key] = pg.mkBrush(color)
        return brush

    def _node_qcolors(self) -> list[QtGui.QColor]:
        n = len(self._labels)
        if self._communities is None:
            return [QtGui.QColor(NO_COMMUNITY_COLOR)] * n
        out = []
        for c in self._communities:
            c = int(c)
            out.append(QtGui.QColor(COMMUNITY_PALETTE[c % len(COMMUNITY_PALETTE)] if c >= 0 else NO_COMMUNITY_COLOR))
        return out

    def _label_widths(self, fm: QtGui.QFontMetricsF, scale: float) -> np.ndarray:
        key = (fm.height(), scale, len(self._display))
        if self._label_width_cache is None or self._label_width_cache[0] != key:
            widths = np.array([fm.horizontalAdvance(t) for t in self._display], dtype=np.float64)
            self._label_width_cache = (key, widths)
        return self._label_width_cache[1]

    def _forced_labels(self) -> list[int]:
        forced = []
        for i in (self._hovered, self._source, self._target, self._selected):
            if i is not None and i >= 0 and i not in forced:
                forced.append(i)
        for i in self._path_nodes:
            if i not in forced:
                forced.append(i)
        return forced

    def _bin_pen(self, b: int) -> QtGui.QPen:
        """Pen of weight bin b.  Thin one-pixel lines are drawn one by one, so where
        thousands of weak edges overlap their opacity would add up to a solid blot;
        the opacity is therefore chosen so that edges overlapping as often as they do
        on average (total length x pixel size / area, recomputed on zoom) reach the
        bin's target opacity, never more than the bin's nominal opacity."""
        width = 1.0 if self._bin_thin[b] else _BIN_WIDTHS[b]
        alpha = float(_BIN_ALPHAS[b])
        px = self._pixel_size()
        area = self._edge_area()
        if px is not None and area > 0 and self._bin_length[b] > 0:
            overlap = 2.5 * self._bin_length[b] * px * width / area
            if overlap > 1.0:
                target = _BIN_TARGET_OPACITY[b]
                alpha = min(alpha, 255.0 * (1.0 - (1.0 - target) ** (1.0 / overlap)))
        pen = pg.mkPen(QtGui.QColor(*EDGE_RGB, int(max(alpha, 6.0))), width=width)
        pen.setCapStyle(Qt.PenCapStyle.FlatCap)
        return pen

    def _edge_area(self) -> float:
        rect = QtCore.QRectF()
        for item in self._edge_items:
            if item.n_items:
                rect = rect.united(item.boundingRect())
        if self._pos.shape[0]:
            lo = self._pos.min(axis=0)
            hi = self._pos.max(axis=0)
            rect = rect.united(QtCore.QRectF(lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]))
        return max(rect.width(), 1e-9) * max(rect.height(), 1e-9)

    def _update_bin_pens(self) -> None:
        for b, item in enumerate(self._edge_items):
            item.set_pen(self._bin_pen(b))

    def _refresh_all(self, edges: bool = True) -> None:
        """Redraw everything; with ``edges`` False the edges wait for draw_pending_edges()
        (any later full redraw, e.g. a layout change, draws them too)."""
        self._edges_pending = not edges
        self._refresh_edges()
        self._refresh_nodes()
        self._refresh_path()
        self._refresh_rings()
        self._label_layer.prepareGeometryChange()
        self._label_layer.update()

    def _edge_xy(self, s: np.ndarray, t: np.ndarray):
        if self._effective_kind == "arc":
            return _arc_xy(self._pos, s, t)
        return _straight_xy(self._pos, s, t)

    def _refresh_edges(self) -> None:
        keep = self._drawn  # no self-attention (it has no extent), at most MAX_DRAWN_EDGES
        if self._edges_pending:  # set_graph(edges_later=True): drawn by draw_pending_edges
            keep = np.zeros_like(keep)
        budget = THICK_EDGE_BUDGET
        for b in range(EDGE_BINS - 1, -1, -1):
            sel = (self._bins == b) & keep
            s = self._src[sel]
            t = self._dst[sel]
            count = int(np.count_nonzero(self._bins == b))
            thin = _BIN_WIDTHS[b] > 1.0 and s.shape[0] > budget
            if _BIN_WIDTHS[b] > 1.0 and not thin:
                budget -= s.shape[0]
            elif _BIN_WIDTHS[b] > 1.0:
                budget = 0
            self._bin_thin[b] = thin
            length = np.hypot(*(self._pos[t] - self._pos[s]).T).sum() if s.shape[0] else 0.0
            self._bin_length[b] = length * (1.48 if self._effective_kind == "arc" else 1.0)
            item = self._edge_items[b]
            if s.shape[0]:
                x, y, connect = self._edge_xy(s, t)
                item.set_path(_to_path(x, y, connect), count)
            else:
                item.set_path(QtGui.QPainterPath(), count)
        self._update_bin_pens()
        self._rebuild_arrows(force=True)

    def _rebuild_arrows(self, force: bool = False) -> None:
        px = self._pixel_size()
        if self._effective_kind == "arc" or px is None or self._src.shape[0] == 0:
            for item in self._arrow_items:
                item.set_path(QtGui.QPainterPath(), 0)
            self._arrow_px = None
            if self._path_nodes:
                self._refresh_path()
            return
        if not force and self._arrow_px is not None and abs(px / self._arrow_px - 1.0) < 0.02:
            return
        self._arrow_px = px
        keep = self._drawn
        budget = ARROW_BUDGET
        # in big graphs the weakest bin's arrowheads only pile up on the hubs
        lowest = 0 if self._src.shape[0] <= 2000 else 1
        for b in range(EDGE_BINS - 1, -1, -1):
            sel = np.flatnonzero((self._bins == b) & keep) if b >= lowest else np.zeros(0, int)
            if sel.shape[0] > budget:
                # keep the strongest edges of this bin
                sel = sel[np.argsort(-self._w[sel], kind="stable")[:budget]]
            budget -= sel.shape[0]
            item = self._arrow_items[b]
            if sel.shape[0] == 0:
                item.set_path(QtGui.QPainterPath(), 0)
                continue
            s = self._src[sel]
            t = self._dst[sel]
            length = 6.0 + 1.6 * b
            x, y, connect = _arrow_xy(
                self._pos[s], self._pos[t], self._sizes[t] * 0.5 + 1.5, length, px
            )
            item.set_path(_to_path(x, y, connect, fill=True), x.shape[0] // 3)
        if self._path_nodes:
            self._refresh_path()

    def _refresh_path(self) -> None:
        edges = self.highlighted_edges()
        edges = [(a, b) for a, b in edges if a != b]
        if not edges:
            for item in (self._path_casing, self._path_item, self._path_arrows):
                item.set_path(QtGui.QPainterPath(), 0)
            return
        s = np.array([a for a, _ in edges], dtype=np.int64)
        t = np.array([b for _, b in edges], dtype=np.int64)
        if self._effective_kind == "arc":
            x, y, connect = _arc_xy(self._pos, s, t, k=40)
            # arrowheads along the arcs' final tangent
            k = 40
            tail = np.column_stack([x, y]).reshape(-1, k, 2)
            start = tail[:, -4, :]
        else:
            x, y, connect = _straight_xy(self._pos, s, t)
            start = self._pos[s]
        path = _to_path(x, y, connect)
        self._path_casing.set_path(path, len(edges))
        self._path_item.set_path(path, len(edges))
        px = self._pixel_size()
        if px is not None:
            ax, ay, ac = _arrow_xy(start, self._pos[t], self._sizes[t] * 0.5 + 2.0, 11.0, px)
            self._path_arrows.set_path(_to_path(ax, ay, ac, fill=True), len(edges))

    def _refresh_nodes(self) -> None:
        n = len(self._labels)
        if n == 0:
            self._nodes.setData(x=[], y=[])
            return
        # One brush object per colour and one pen, reused: pyqtgraph's symbol atlas keys
        # symbols by object identity, so fresh brushes re-rendered all 512 symbols (~40 ms)
        # on every refresh and grew the atlas without bound.
        brushes = [self._brush_for(c) for c in self._node_qcolors()]
        pen = self._node_pen
        self._nodes.setData(
            x=self._pos[:, 0],
            y=self._pos[:, 1],
            size=self._sizes,
            brush=brushes,
            pen=pen,
            symbol="o",
        )

    def _refresh_rings(self) -> None:
        spots = []

        def ring(i, color, extra, width, style=Qt.PenStyle.SolidLine):
            pen = pg.mkPen(color, width=width, style=style)
            spots.append(
                {
                    "pos": (float(self._pos[i, 0]), float(self._pos[i, 1])),
                    "size": float(self._sizes[i]) + extra,
                    "pen": pen,
                    "brush": QtGui.QBrush(Qt.BrushStyle.NoBrush),
                    "symbol": "o",
                }
            )

        n = self._pos.shape[0]
        for i in self._path_nodes:
            if i < n and i not in (self._source, self._target):
                ring(i, HIGHLIGHT_COLOR, 6, 2.5)
        if self._selected is not None and self._selected < n and self._selected not in (
            self._source,
            self._target,
        ):
            ring(self._selected, SELECTED_COLOR, 7, 2.0, Qt.PenStyle.DashLine)
        if self._source is not None and self._source < n:
            ring(self._source, SOURCE_COLOR, 9, 3.5)
        if self._target is not None and self._target < n:
            ring(self._target, TARGET_COLOR, 9, 3.5)
        self._rings.setData(spots=spots)
        self._label_layer.update()

    def _update_hint(self) -> None:
        if not self._labels:
            text = EMPTY_HINT
        elif self._src.shape[0] == 0:
            text = NO_EDGES_HINT
        else:
            text = ""
        self._hint.setText(text)
        self._hint.setVisible(bool(text))
        if text and self._labels:
            # leave the nodes visible: put the hint near the top
            self._hint.setAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
        else:
            self._hint.setAlignment(Qt.AlignmentFlag.AlignCenter)

    def _update_note(self) -> None:
        notes = []
        if self._layout_kind == "layered" and self._node_layer is None:
            notes.append(
                "Layered layout needs a graph across layers (attention flow / rollout); "
                "showing the arc layout."
            )
        if self._labels and self._src.shape[0]:
            notes.append(ARC_LEGEND if self._effective_kind == "arc" else DIRECTION_LEGEND)
            drawn, total = self.drawn_edge_count(), int(np.count_nonzero(self._src != self._dst))
            if drawn < total:
                notes.append(f"Drawing the strongest {drawn:,} of {total:,} edges.")
        self._note.setText("  ".join(notes))
        self._note.setVisible(bool(notes))

    def _update_legend(self) -> None:
        def name(i):
            return f"{self._display[i]} (#{i})" if i is not None else "—"

        if self._source is None and self._target is None:
            plain = "click a token: path source · shift-click: target" if self._labels else ""
            html = f"<span style='color:#7b8794'>{plain}</span>"
        else:
            plain = f"source: {name(self._source)} → target: {name(self._target)}"
            s_txt = name(self._source).replace("&", "&amp;").replace("<", "&lt;")
            t_txt = name(self._target).replace("&", "&amp;").replace("<", "&lt;")
            html = (
                f"<span style='color:{SOURCE_COLOR}'><b>source:</b> {s_txt}</span>"
                f" → <span style='color:{TARGET_COLOR}'><b>target:</b> {t_txt}</span>"
            )
        self._legend_plain = plain
        self._legend.setText(html)

    def _update_layout_combo(self) -> None:
        model = self._layout_combo.model()
        layered = self.LAYOUTS.index("layered")
        item = model.item(layered) if hasattr(model, "item") else None
        if item is not None:
            item.setEnabled(
                self._node_layer is not None or self._layout_kind == "layered" or self._layered_available
            )
        blocked = self._layout_combo.blockSignals(True)
        self._layout_combo.setCurrentIndex(self.LAYOUTS.index(self._layout_kind))
        self._layout_combo.blockSignals(blocked)

    def _update_size_combo(self) -> None:
        blocked = self._size_combo.blockSignals(True)
        self._size_combo.clear()
        self._size_combo.addItem("uniform")
        for name in self._metrics:
            self._size_combo.addItem(name)
        current = self.size_metric()
        self._size_combo.setCurrentIndex(0 if current is None else 1 + list(self._metrics).index(current))
        self._size_combo.blockSignals(blocked)
