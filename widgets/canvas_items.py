"""The pyqtgraph items the graph canvas draws with.

* :class:`PathBatch`: one QPainterPath with one pen/brush (a weight bin of edges, its
  arrowheads, the highlighted path);
* :class:`EdgeLayer`: all of a canvas's batches, rebuilt from the canvas's arrays with
  the decisions of :mod:`widgets.canvas_geometry`;
* :class:`NodeItem`: the nodes; routes hover, click and drag to the canvas;
* :class:`Decoration`: rings around source, target, selected and path nodes;
* :class:`LabelLayer`: every token label, painted in screen space and thinned so none
  overlap.

``NodeItem`` and ``LabelLayer`` read the state of the canvas they belong to (positions,
sizes, labels); they run no layout and no graph algorithm.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui
from PySide6.QtCore import Qt

from analysis.io.figures.graph import GENERATED_COLOR, layered_label_plan
from widgets.canvas_geometry import (
    BIN_ALPHAS,
    BIN_WIDTHS,
    EDGE_BINS,
    arc_xy,
    arrow_edges,
    arrow_xy,
    bin_alpha,
    edge_length,
    label_rects,
    place_labels,
    straight_xy,
    thin_bins,
)

if TYPE_CHECKING:
    from widgets.graph_canvas import GraphCanvas

__all__ = ["Decoration", "EdgeLayer", "LabelLayer", "NodeItem", "PathBatch", "to_path"]

EDGE_RGB = (44, 58, 74)
HIGHLIGHT_COLOR = "#d81b60"
SOURCE_COLOR = "#1a9850"
TARGET_COLOR = "#7b3294"
SELECTED_COLOR = "#222222"
BACKGROUND = "#ffffff"
PATH_SAMPLES = 40  # points per arc of the highlighted path


def to_path(x, y, connect, fill: bool = False) -> QtGui.QPainterPath:
    """A QPainterPath of the points ``x, y`` (``connect`` as pyqtgraph's arrayToQPath)."""
    if len(x) == 0:
        return QtGui.QPainterPath()
    path = pg.arrayToQPath(np.ascontiguousarray(x), np.ascontiguousarray(y), connect)
    if fill:
        path.setFillRule(Qt.FillRule.WindingFill)
    return path


class PathBatch(pg.GraphicsObject):
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

    def clear(self) -> None:
        self.set_path(QtGui.QPainterPath(), 0)

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


class EdgeLayer:
    """A canvas's edges in its ViewBox: one :class:`PathBatch` per weight bin (z 10..14),
    the arrowheads of straight layouts (one filled batch per bin) and the highlighted
    path on top (white casing, line, arrowheads; z 40..42)."""

    def __init__(self, view_box: pg.ViewBox):
        self.edge_items: list[PathBatch] = []
        self.arrow_items: list[PathBatch] = []
        self._length = np.zeros(EDGE_BINS)  # total drawn edge length per bin, data units
        self._thin = [False] * EDGE_BINS
        self._arrow_px: float | None = None  # pixel size the arrowheads were built for
        for b in range(EDGE_BINS):
            item = PathBatch(pen=pg.mkPen(QtGui.QColor(*EDGE_RGB, BIN_ALPHAS[b])))
            item.setZValue(10 + b)
            view_box.addItem(item)
            self.edge_items.append(item)
        for b in range(EDGE_BINS):
            item = PathBatch(brush=QtGui.QColor(*EDGE_RGB, min(255, BIN_ALPHAS[b] + 20)))
            item.setZValue(10 + b)
            view_box.addItem(item, ignoreBounds=True)
            self.arrow_items.append(item)
        self.path_casing = PathBatch(pen=pg.mkPen(QtGui.QColor(255, 255, 255, 230), width=7))
        self.path_casing.setZValue(40)
        self.path_item = PathBatch(pen=pg.mkPen(HIGHLIGHT_COLOR, width=3.5))
        self.path_item.setZValue(41)
        self.path_arrows = PathBatch(brush=HIGHLIGHT_COLOR)
        self.path_arrows.setZValue(42)
        for item in (self.path_casing, self.path_item, self.path_arrows):
            view_box.addItem(item, ignoreBounds=True)

    def draw_edges(self, pos, src, dst, bins, keep, arc: bool) -> None:
        """Rebuild the bin batches: the edges marked in ``keep``, as arcs or segments.
        Each batch counts all edges of its bin (``n_items``), drawn or not."""
        selected = [(bins == b) & keep for b in range(EDGE_BINS)]
        self._thin = thin_bins([int(np.count_nonzero(sel)) for sel in selected])
        for b, item in enumerate(self.edge_items):
            s, t = src[selected[b]], dst[selected[b]]
            count = int(np.count_nonzero(bins == b))
            self._length[b] = edge_length(pos, s, t, arc)
            if s.shape[0]:
                x, y, connect = arc_xy(pos, s, t) if arc else straight_xy(pos, s, t)
                item.set_path(to_path(x, y, connect), count)
            else:
                item.set_path(QtGui.QPainterPath(), count)

    def update_pens(self, pos: np.ndarray, px: float | None) -> None:
        """Give each bin its pen: width by bin (1 px where :func:`thin_bins` said so) and
        the opacity of :func:`bin_alpha` for the current zoom."""
        area = self._area(pos)
        for b, item in enumerate(self.edge_items):
            width = 1.0 if self._thin[b] else BIN_WIDTHS[b]
            alpha = bin_alpha(b, self._length[b], px, width, area)
            pen = pg.mkPen(QtGui.QColor(*EDGE_RGB, int(alpha)), width=width)
            pen.setCapStyle(Qt.PenCapStyle.FlatCap)
            item.set_pen(pen)

    def _area(self, pos: np.ndarray) -> float:
        rect = QtCore.QRectF()
        for item in self.edge_items:
            if item.n_items:
                rect = rect.united(item.boundingRect())
        if pos.shape[0]:
            lo = pos.min(axis=0)
            hi = pos.max(axis=0)
            rect = rect.united(QtCore.QRectF(lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]))
        return max(rect.width(), 1e-9) * max(rect.height(), 1e-9)

    def draw_arrows(self, pos, src, dst, weights, bins, keep, sizes, arc: bool,
                    px: float | None, force: bool = False) -> bool:
        """Arrowheads of a straight layout, sized for the pixel size ``px`` (none on arcs,
        where the side of the line tells the direction). Skipped, returning False, when
        not ``force`` and the zoom changed by less than 2%."""
        if arc or px is None or src.shape[0] == 0:
            for item in self.arrow_items:
                item.clear()
            self._arrow_px = None
            return True
        if not force and self._arrow_px is not None and abs(px / self._arrow_px - 1.0) < 0.02:
            return False
        self._arrow_px = px
        for b, sel in enumerate(arrow_edges(bins, keep, weights)):
            item = self.arrow_items[b]
            if sel.shape[0] == 0:
                item.clear()
                continue
            s, t = src[sel], dst[sel]
            x, y, connect = arrow_xy(pos[s], pos[t], sizes[t] * 0.5 + 1.5, 6.0 + 1.6 * b, px)
            item.set_path(to_path(x, y, connect, fill=True), x.shape[0] // 3)
        return True

    def draw_path(self, pos, sizes, edges: list[tuple[int, int]], arc: bool,
                  px: float | None) -> None:
        """The highlighted path's edges (self-loops left out), thick, with arrowheads."""
        edges = [(a, b) for a, b in edges if a != b]
        if not edges:
            for item in (self.path_casing, self.path_item, self.path_arrows):
                item.clear()
            return
        s = np.array([a for a, _ in edges], dtype=np.int64)
        t = np.array([b for _, b in edges], dtype=np.int64)
        if arc:
            x, y, connect = arc_xy(pos, s, t, k=PATH_SAMPLES)
            # arrowheads along the arcs' final tangent
            start = np.column_stack([x, y]).reshape(-1, PATH_SAMPLES, 2)[:, -4, :]
        else:
            x, y, connect = straight_xy(pos, s, t)
            start = pos[s]
        path = to_path(x, y, connect)
        self.path_casing.set_path(path, len(edges))
        self.path_item.set_path(path, len(edges))
        if px is not None:
            ax, ay, ac = arrow_xy(start, pos[t], sizes[t] * 0.5 + 2.0, 11.0, px)
            self.path_arrows.set_path(to_path(ax, ay, ac, fill=True), len(edges))


class NodeItem(pg.ScatterPlotItem):
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


class Decoration(pg.ScatterPlotItem):
    """Rings around nodes (source, target, selection, path). Never takes the mouse."""

    def __init__(self):
        super().__init__(pxMode=True, hoverable=False, tip=None)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)

    def set_rings(self, pos: np.ndarray, sizes: np.ndarray, path_nodes, selected, source,
                  target) -> None:
        """Path nodes: solid highlight ring; selection: dashed dark ring; source and
        target: thick green and purple rings (a node that is several gets the last)."""
        spots = []

        def ring(i, color, extra, width, style=Qt.PenStyle.SolidLine):
            spots.append({
                "pos": (float(pos[i, 0]), float(pos[i, 1])),
                "size": float(sizes[i]) + extra,
                "pen": pg.mkPen(color, width=width, style=style),
                "brush": QtGui.QBrush(Qt.BrushStyle.NoBrush),
                "symbol": "o",
            })

        n = pos.shape[0]
        for i in path_nodes:
            if i < n and i not in (source, target):
                ring(i, HIGHLIGHT_COLOR, 6, 2.5)
        if selected is not None and selected < n and selected not in (source, target):
            ring(selected, SELECTED_COLOR, 7, 2.0, Qt.PenStyle.DashLine)
        if source is not None and source < n:
            ring(source, SOURCE_COLOR, 9, 3.5)
        if target is not None and target < n:
            ring(target, TARGET_COLOR, 9, 3.5)
        self.setData(spots=spots)

    def set_generated(self, pos: np.ndarray, sizes: np.ndarray, generated: np.ndarray | None) -> None:
        """An orange ring around each node marked in ``generated`` (a generation's tokens)."""
        if generated is None or pos.shape[0] != generated.shape[0]:
            self.setData(spots=[])
            return
        index = np.flatnonzero(generated)
        self.setData(x=pos[index, 0], y=pos[index, 1], size=sizes[index] + 5.0, symbol="o",
                     pen=pg.mkPen(GENERATED_COLOR, width=2.0), brush=QtGui.QBrush(Qt.BrushStyle.NoBrush))

    def mouseClickEvent(self, ev):
        ev.ignore()

    def mouseDragEvent(self, ev):
        ev.ignore()

    def hoverEvent(self, ev):
        pass

    def shape(self):
        return QtGui.QPainterPath()


class LabelLayer(pg.GraphicsObject):
    """Paints all token labels in screen space and thins them so none overlap
    (:func:`widgets.canvas_geometry.place_labels`)."""

    FONT_PX = 12
    MAX_FREE_LABELS = 150  # labels beyond the forced ones; more is a wall of text
    GAP_PX = 3.0  # free space kept around each label

    def __init__(self, canvas: GraphCanvas):
        super().__init__()
        self._canvas = canvas
        self._width_cache: tuple | None = None
        self.setAcceptHoverEvents(False)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
        self.drawn: list[int] = []  # labels drawn by the last paint, for tests
        self.drawn_rects: list[tuple[float, float, float, float]] = []  # their rectangles (device pixels)
        self.drawn_roles: list[str] = []  # "node" (its own label), "column" or "row" (layered layout)

    def forget_widths(self) -> None:
        """The labels changed: measure them again on the next paint."""
        self._width_cache = None

    def _widths(self, fm: QtGui.QFontMetricsF, scale: float, texts: list[str]) -> np.ndarray:
        key = (fm.height(), scale, len(texts))
        if self._width_cache is None or self._width_cache[0] != key:
            widths = np.array([fm.horizontalAdvance(t) for t in texts], dtype=np.float64)
            self._width_cache = (key, widths)
        return self._width_cache[1]

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
        self.drawn_rects = []
        self.drawn_roles = []
        if n == 0:
            return
        scale = 1.0 if self._exportOpts is False else self._exportOpts.get("resolutionScale", 1.0)
        tr = p.transform()
        x = c._pos[:, 0]
        y = c._pos[:, 1]
        dx = tr.m11() * x + tr.m21() * y + tr.dx()
        dy = tr.m12() * x + tr.m22() * y + tr.dy()
        dev = p.device()
        W = dev.width() if dev is not None else 1e9
        H = dev.height() if dev is not None else 1e9

        font = QtGui.QFont(c.font())
        font.setPixelSize(max(1, round(self.FONT_PX * scale)))
        fm = QtGui.QFontMetricsF(font)
        texts = c._display
        h = fm.height()
        kind = c.layout_kind()
        forced = [i for i in c._forced_labels() if 0 <= i < n]
        forced_set = set(forced)
        bold = QtGui.QFont(font)
        bold.setBold(True)
        generated = c._generated
        if kind == "layered" and c._node_layer is not None:
            # one label per column (the token, under its lowest node) and per row (its level)
            fm_bold = QtGui.QFontMetricsF(bold)
            room = (c.layered_margins()[1] - 6.0 - float(c._sizes.max(initial=0.0)) / 2) * scale

            def elide(text, pixels, is_bold):
                return (fm_bold if is_bold else fm).elidedText(text, Qt.TextElideMode.ElideRight, pixels - 6 * scale)

            plan = layered_label_plan(
                dx, dy, c._sizes * 0.5 * scale, c._node_layer, texts,
                lambda text, is_bold: (fm_bold if is_bold else fm).horizontalAdvance(text) + 2 * scale, h,
                forced=forced_set, gap=self.GAP_PX * scale, max_length=room, elide=elide)
            labels = [(node, rect, text, vertical, is_bold, "row" if not vertical else "column")
                      for node, rect, text, vertical, is_bold in plan]
        else:
            vertical = kind == "arc"
            # circular: labels point away from the centre (left half: to the left)
            leftward = x < x.mean() - 1e-9 if kind == "circular" else None
            rects = label_rects(dx, dy, c._sizes * 0.5 * scale, self._widths(fm, scale, texts), h,
                                scale, "vertical" if vertical else "side", leftward)
            order = forced + [int(i) for i in c._label_priority if int(i) not in forced_set]
            draw = place_labels(order, rects, forced_set, W, H, max_free=self.MAX_FREE_LABELS,
                                gap=self.GAP_PX * scale, cell=64.0 * scale)
            draw.sort(key=lambda item: item[1])  # non-forced first so forced labels sit on top
            labels = [(i, tuple(rects[i]), texts[i], vertical, is_forced, "node") for i, is_forced in draw]

        p.save()
        p.resetTransform()
        p.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing, True)
        p.setRenderHint(QtGui.QPainter.RenderHint.TextAntialiasing, True)
        p.setFont(font)
        halo = QtGui.QColor(255, 255, 255, 215)
        text_pen = QtGui.QPen(QtGui.QColor("#1f2933"))
        strong_pen = QtGui.QPen(QtGui.QColor("#000000"))
        generated_pen = QtGui.QPen(QtGui.QColor(GENERATED_COLOR))
        muted_pen = QtGui.QPen(QtGui.QColor("#52606d"))
        for i, (left, top, right, bottom), text, vertical, is_forced, role in labels:
            rect = QtCore.QRectF(left, top, right - left, bottom - top)
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(halo)
            if self._exportOpts is False:
                p.drawRoundedRect(rect, 3 * scale, 3 * scale)
            else:  # pyqtgraph's SVG exporter only understands straight path segments
                p.drawRect(rect)
            if role == "row":
                p.setPen(muted_pen)
            elif generated is not None and generated[i]:
                p.setPen(generated_pen)
            else:
                p.setPen(strong_pen if is_forced else text_pen)
            p.setFont(bold if is_forced else font)
            if vertical:
                p.save()
                p.translate(rect.left() + h / 2, rect.top() + 2 * scale)
                p.rotate(90)
                p.drawText(QtCore.QPointF(0, fm.ascent() - h / 2), text)
                p.restore()
            else:
                p.drawText(QtCore.QPointF(rect.left() + 3 * scale, rect.top() + fm.ascent()), text)
            self.drawn.append(i)
            self.drawn_rects.append((left, top, right, bottom))
            self.drawn_roles.append(role)
        p.restore()
