"""Attention heatmap: one matrix ``A[query, key]`` as an image with token labels.

Conventions: ``A[i, j]`` is how much query token ``i`` attends to key token ``j``. Rows
are queries, drawn top to bottom in token order (left axis); columns are keys, left to
right (bottom axis, labels written vertically). Cells that are structurally zero (the
causal upper triangle, given as ``masked``) are drawn as a neutral hatched area, never
as weak attention.

Colour levels are explicit. By default they run from 0 to the maximum of the matrix:
every row of an attention matrix sums to 1, so at 512 tokens typical weights are
~0.002-0.05 and a fixed 0..1 scale would paint almost everything in the lowest colour.
0 is kept as the lower end so that colour stays proportional to weight, and the colour
bar always prints the real numbers. ``set_levels((0, 1))`` fixes a common scale for
comparing heads. The log scale shows ``log10(max(A, 1e-4))``.

The widget shows state and emits what the person did; it computes nothing about the
model. Built like pyqtgraph's ``MatrixDisplayExample``: one row-major float32
``ImageItem``, a ``ColorBarItem``, token tick labels from a custom ``AxisItem``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from pyqtgraph.exporters import ImageExporter, SVGExporter
from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QLineF, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import (
    QBrush,
    QColor,
    QFont,
    QFontMetricsF,
    QPainter,
    QPainterPath,
    QPalette,
    QPen,
    QPicture,
)
from PySide6.QtSvg import QSvgGenerator
from PySide6.QtWidgets import (
    QGraphicsPathItem,
    QGraphicsRectItem,
    QToolTip,
    QWidget,
)

from widgets.colormaps import (
    COLORMAPS,
    DEFAULT_COLORMAP,
    MASKED_BACKGROUND,
    MASKED_HATCH,
    get_colormap,
    highlight_color,
    path_color,
)
from widgets.empty_state import hint_label, hint_stack

__all__ = ["AttentionHeatmap", "TokenAxis", "COLORMAPS", "EMPTY_HINT", "LOG_FLOOR"]

EMPTY_HINT = "Type a text and press Ctrl+Enter to see its attention"
LOG_FLOOR = 1e-4  # log scale: weights below this are drawn as this
MAX_LABEL_CHARS = 18  # longer token labels are elided with "…"
MAX_LABEL_PX = 130  # axis room for labels, in pixels
INDEX_LABELS_FROM = 24  # from this many tokens on, labels carry their index: "12 cat"


def _nice_step(min_step: float) -> int:
    """Smallest of 1, 2, 5, 10, 20, 50, ... that is >= ``min_step``."""
    if min_step <= 1:
        return 1
    exp = 10 ** math.floor(math.log10(min_step))
    for m in (1, 2, 5, 10):
        if m * exp >= min_step:
            return int(m * exp)
    return int(10 * exp)


def format_weight(w: float) -> str:
    """``0.231``; tiny weights in scientific notation so they do not read as 0."""
    if w == 0 or abs(w) >= 1e-3:
        return f"{w:.3f}"
    return f"{w:.1e}"


class TokenAxis(pg.AxisItem):
    """An axis whose ticks are token labels at integer positions.

    Labels are thinned to a "nice" stride (1, 2, 5, 10, ...) chosen from the font height
    and the pixels per cell, so they never overlap; the stride is recomputed whenever the
    axis repaints (zoom, pan, resize). Tick positions are multiples of the stride, so
    they stay put while panning. The bottom axis writes its labels vertically. The
    selected token's label is always drawn, in bold, and its neighbours make room.
    """

    def __init__(self, orientation: str, **kwargs):
        super().__init__(orientation, **kwargs)
        self._texts: list[str] = []
        self._visible: list[int] = []
        self._step = 1
        self._selected: int | None = None
        self._font = QFont()
        self._highlight = QColor(0, 0, 0)
        self._widest = 0.0
        self._max_px = MAX_LABEL_PX
        self.setStyle(tickLength=4, autoExpandTextSpace=False, hideOverlappingLabels=True)

    # -- state ---------------------------------------------------------------------------
    def set_labels(self, texts: Sequence[str]) -> None:
        """Display strings, one per index (already elided and indexed)."""
        self._texts = list(texts)
        bold = QFont(self._font)
        bold.setBold(True)  # the selected label is bold: measure the widest case
        fm = QFontMetricsF(bold)
        self._widest = max((fm.horizontalAdvance(t) for t in self._texts), default=0.0)
        self._update_room()

    def set_max_label_px(self, px: int) -> None:
        """Room for label text across the axis; longer labels are elided."""
        px = int(px)
        if px != self._max_px:
            self._max_px = px
            self._update_room()

    def _label_room(self) -> float:
        return QFontMetricsF(self._font).height() + 6 if self.label.isVisible() else 0.0

    def _update_room(self) -> None:
        room = int(
            min(self._widest, self._max_px) + self.style["tickLength"] + 8 + self._label_room()
        )
        if self.orientation in ("left", "right"):
            self.setWidth(room)
        else:
            self.setHeight(room)
        self._refresh()

    def set_selected(self, index: int | None, color: QColor | None = None) -> None:
        self._selected = index
        if color is not None:
            self._highlight = QColor(color)
        self._refresh()

    def set_font(self, font: QFont) -> None:
        self._font = QFont(font)
        self.setTickFont(self._font)

    def visible_ticks(self) -> list[int]:
        """Indices whose labels were drawn in the last paint."""
        return list(self._visible)

    def tick_step(self) -> int:
        return self._step

    def label_extent(self) -> float:
        """Pixels one label needs along the axis (its line height, for both axes)."""
        return QFontMetricsF(self._font).height() + 2.0

    def _refresh(self) -> None:
        self.picture = None
        self.update()

    # -- geometry ------------------------------------------------------------------------
    def _vertical(self) -> bool:
        return self.orientation in ("left", "right")

    def _to_pixel(self, value: float, bounds: QRectF) -> float:
        r0, r1 = self.range
        dif = (r1 - r0) or 1.0
        if self._vertical():
            return bounds.top() + bounds.height() - (value - r0) / dif * bounds.height()
        return bounds.left() + (value - r0) / dif * bounds.width()

    def index_at(self, pixel: float) -> int | None:
        """Index under an item-coordinate position along the axis (None outside)."""
        bounds = self.mapRectFromParent(self.geometry())
        r0, r1 = self.range
        length = bounds.height() if self._vertical() else bounds.width()
        if length <= 0:
            return None
        if self._vertical():
            frac = (bounds.top() + bounds.height() - pixel) / length
        else:
            frac = (pixel - bounds.left()) / length
        idx = int(math.floor(r0 + frac * (r1 - r0) + 0.5))
        return idx if 0 <= idx < len(self._texts) else None

    def compute_ticks(self, length_px: float) -> tuple[int, list[int]]:
        """The stride and the indices to label for the current range on ``length_px``."""
        n = len(self._texts)
        r0, r1 = self.range
        span = abs(r1 - r0)
        if n == 0 or length_px <= 0 or span <= 0:
            return 1, []
        px_per_cell = length_px / span
        step = _nice_step(self.label_extent() / px_per_cell)
        lo = max(0, math.ceil(min(r0, r1) - 1e-9))
        hi = min(n - 1, math.floor(max(r0, r1) + 1e-9))
        first = int(math.ceil(lo / step) * step)
        ticks = list(range(first, hi + 1, step))
        sel = self._selected
        if sel is not None and lo <= sel <= hi:
            # always show the selected label; drop neighbours closer than one label
            room = self.label_extent() / px_per_cell
            ticks = [t for t in ticks if abs(t - sel) >= room] + [sel]
            ticks.sort()
        return step, ticks

    def generateDrawSpecs(self, p):  # noqa: N802 (pyqtgraph API)
        bounds = self.mapRectFromParent(self.geometry())
        vertical = self._vertical()
        tl = self.style["tickLength"]
        pen = self.pen()
        if vertical:
            x = bounds.right() if self.orientation == "left" else bounds.left()
            axis_spec = (pen, QPointF(x, bounds.top()), QPointF(x, bounds.bottom()))
            length = bounds.height()
        else:
            y = bounds.top() if self.orientation == "bottom" else bounds.bottom()
            axis_spec = (pen, QPointF(bounds.left(), y), QPointF(bounds.right(), y))
            length = bounds.width()
        self._step, self._visible = self.compute_ticks(length)

        fm = QFontMetricsF(self._font)
        bold = QFont(self._font)
        bold.setBold(True)
        fm_bold = QFontMetricsF(bold)
        h = fm.height()
        label_room = self._label_room()
        tick_specs = []
        text_specs = []
        tick_pen = self.tickPen()
        for idx in self._visible:
            pos = self._to_pixel(idx, bounds)
            text = self._texts[idx]
            if self.orientation == "left":
                x0 = bounds.right()
                tick_specs.append((tick_pen, QPointF(x0 - tl, pos), QPointF(x0, pos)))
                avail = bounds.width() - tl - 4 - label_room
                rect = QRectF(bounds.right() - tl - 4 - avail, pos - h / 2, max(avail, 0), h)
                flags = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
            elif self.orientation == "right":
                x0 = bounds.left()
                tick_specs.append((tick_pen, QPointF(x0, pos), QPointF(x0 + tl, pos)))
                avail = bounds.width() - tl - 4 - label_room
                rect = QRectF(x0 + tl + 4, pos - h / 2, max(avail, 0), h)
                flags = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter
            else:  # bottom/top: vertical text; rect is the column the text occupies
                y0 = bounds.top()
                tick_specs.append((tick_pen, QPointF(pos, y0), QPointF(pos, y0 + tl)))
                avail = bounds.height() - tl - 4 - label_room
                rect = QRectF(pos - h / 2, y0 + tl + 3, h, max(avail, 0))
                flags = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
            metrics = fm_bold if idx == self._selected else fm
            text = metrics.elidedText(text, Qt.TextElideMode.ElideRight, max(avail, 0))
            text_specs.append((rect, flags, text, idx == self._selected))
        return axis_spec, tick_specs, text_specs

    def drawPicture(self, p, axisSpec, tickSpecs, textSpecs):  # noqa: N802, N803
        p.setRenderHint(p.RenderHint.Antialiasing, False)
        p.setRenderHint(p.RenderHint.TextAntialiasing, True)
        pen, p1, p2 = axisSpec
        p.setPen(pen)
        p.drawLine(p1, p2)
        for pen, p1, p2 in tickSpecs:
            p.setPen(pen)
            p.drawLine(p1, p2)
        bold = QFont(self._font)
        bold.setBold(True)
        for rect, flags, text, selected in textSpecs:
            p.setFont(bold if selected else self._font)
            p.setPen(QPen(self._highlight) if selected else self.textPen())
            if self._vertical():
                p.drawText(rect, int(flags), text)
            else:  # rotate so the text reads bottom to top and ends at the axis
                p.save()
                p.translate(rect.center().x(), rect.top())
                p.rotate(-90)
                p.drawText(
                    QRectF(-rect.height(), -rect.width() / 2, rect.height(), rect.width()),
                    int(flags),
                    text,
                )
                p.restore()


class HatchedRect(QGraphicsRectItem):
    """The neutral "masked" area: a light fill with diagonal hatching.

    The hatch lines are drawn in device pixels (fixed 7 px spacing at any zoom), not
    with a Qt pattern brush, so that they look the same on screen, in PNG and in SVG.
    """

    SPACING_PX = 7.0

    def paint(self, painter, option, widget=None):
        rect = self.rect()
        if rect.isEmpty():
            return
        painter.fillRect(rect, MASKED_BACKGROUND)
        device = painter.worldTransform().mapRect(rect)
        painter.save()
        try:
            painter.resetTransform()
            pen = QPen(MASKED_HATCH, 1.0)
            pen.setCosmetic(True)
            painter.setPen(pen)
            x0, y0, w, h = device.left(), device.top(), device.width(), device.height()
            lines = []
            k = self.SPACING_PX / 2
            while k < w + h:
                # "/" line through (x0 + k - t, y0 + t), clipped to the rect by hand
                # (clip regions do not survive every export device)
                t0, t1 = max(0.0, k - w), min(h, k)
                lines.append(QLineF(x0 + k - t0, y0 + t0, x0 + k - t1, y0 + t1))
                k += self.SPACING_PX
            painter.drawLines(lines)
        finally:
            painter.restore()


class AttentionHeatmap(QWidget):
    """One attention matrix as a heatmap with token labels, hover, selection and export.

    Signals
    -------
    cell_hovered(int, int)
        The mouse is over cell ``(query, key)`` (emitted when the cell changes).
    cell_clicked(int, int)
        The person clicked cell ``(query, key)``.
    token_selected(int)
        The person selected a token: clicking a cell selects its *query* (row) token,
        clicking a row label selects that query, clicking a column label selects that
        key. Not emitted by :meth:`select_token`.
    """

    cell_hovered = Signal(int, int)
    cell_clicked = Signal(int, int)
    token_selected = Signal(int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._matrix: np.ndarray | None = None
        self._masked: np.ndarray | None = None
        self._row_labels: tuple[str, ...] = ()
        self._col_labels: tuple[str, ...] = ()
        self._title = ""
        self._log = False
        self._fixed_levels: tuple[float, float] | None = None
        self._levels: tuple[float, float] = (0.0, 1.0)
        self._cmap_name = DEFAULT_COLORMAP
        self._selected: int | None = None
        self._path: list[int] = []
        self._hover: tuple[int, int] | None = None

        self._hint = hint_label(EMPTY_HINT, "heatmapEmptyHint")

        self._view = pg.GraphicsLayoutWidget()
        self._view.setObjectName("heatmapView")
        pal = self.palette()
        self._fg = pal.color(QPalette.ColorRole.WindowText)
        self._view.setBackground(pal.color(QPalette.ColorRole.Base))
        layout = self._view.ci
        layout.setContentsMargins(6, 6, 6, 6)

        self._title_item = layout.addLabel("", row=0, col=0, color=self._fg, size="11pt")
        self._left = TokenAxis("left")
        self._bottom = TokenAxis("bottom")
        for axis, text in ((self._left, "query (attends)"), (self._bottom, "key (attended to)")):
            axis.setLabel(text, color=self._fg.name())
            axis.setPen(self._fg)
            axis.setTextPen(self._fg)
            axis.set_font(self.font())
        self._plot = layout.addPlot(
            row=1, col=0, axisItems={"left": self._left, "bottom": self._bottom}
        )
        self._plot.invertY(True)
        self._plot.setDefaultPadding(0.0)
        self._plot.hideButtons()
        self._plot.setMenuEnabled(False)
        self._vb = self._plot.getViewBox()
        self._vb.setBackgroundColor(None)

        # masked cells: a neutral hatched area under the image; NaN pixels are transparent
        self._masked_hatch = HatchedRect()
        self._masked_hatch.setZValue(-1)
        self._plot.addItem(self._masked_hatch)

        self._image = pg.ImageItem(axisOrder="row-major")
        self._image.setZValue(0)
        self._plot.addItem(self._image)

        self._row_rect = QGraphicsRectItem()
        self._col_rect = QGraphicsRectItem()
        for item in (self._row_rect, self._col_rect):
            item.setZValue(5)
            item.setVisible(False)
            self._plot.addItem(item)
        self._path_item = QGraphicsPathItem()
        self._path_item.setZValue(6)
        self._plot.addItem(self._path_item)

        self._colorbar = pg.ColorBarItem(
            values=(0.0, 1.0),
            colorMap=get_colormap(self._cmap_name),
            width=16,
            interactive=False,
            label="attention weight",
            colorMapMenu=False,
        )
        for side in ("left", "right", "top", "bottom"):
            ax = self._colorbar.getAxis(side)
            ax.setPen(self._fg)
            ax.setTextPen(self._fg)
        self._colorbar.getAxis("left").setLabel("attention weight", color=self._fg.name())
        self._colorbar.getAxis("right").setStyle(hideOverlappingLabels=False)
        self._colorbar.getAxis("right").setWidth(60)  # room for "0.0001" (log scale)
        # inside the plot's layout, so the bar spans exactly the matrix (as in the example)
        self._colorbar.setImageItem(self._image, insert_in=self._plot)

        self._stack = hint_stack(self, self._hint, self._view)

        scene = self._view.scene()
        scene.sigMouseMoved.connect(self._on_mouse_moved)
        scene.sigMouseClicked.connect(self._on_mouse_clicked)
        self._apply_highlight_colors()

    def resizeEvent(self, event):  # noqa: N802 (Qt API)
        super().resizeEvent(event)
        # label room shrinks on small widgets so the matrix keeps most of the space
        size = min(event.size().width(), event.size().height())
        px = int(min(MAX_LABEL_PX, max(48, 0.2 * size)))
        self._left.set_max_label_px(px)
        self._bottom.set_max_label_px(px)

    # -- data ------------------------------------------------------------------------------
    def set_matrix(
        self,
        matrix: np.ndarray,
        row_labels: Sequence[str],
        col_labels: Sequence[str],
        *,
        masked: np.ndarray | None = None,
        title: str = "",
    ) -> None:
        """Show ``matrix[R, C]`` (rows = queries, columns = keys).

        ``masked`` (bool ``[R, C]``) marks structurally absent cells (causal upper
        triangle); NaN cells of ``matrix`` are treated as masked too. The zoom is kept
        when the shape and labels are unchanged (switching heads), reset otherwise.
        """
        m = np.asarray(matrix)
        if m.ndim != 2:
            raise ValueError(f"matrix must be 2-D [queries, keys], got shape {m.shape}")
        r, c = m.shape
        if len(row_labels) != r or len(col_labels) != c:
            raise ValueError(
                f"{len(row_labels)} row labels and {len(col_labels)} column labels "
                f"for a matrix of shape {m.shape}"
            )
        if masked is not None:
            masked = np.asarray(masked, dtype=bool)
            if masked.shape != m.shape:
                raise ValueError(f"masked has shape {masked.shape}, matrix {m.shape}")
            if not masked.any():
                masked = None
        m = np.array(m, dtype=np.float32, order="C")  # own copy, row-major float32
        m.setflags(write=False)

        rows, cols = tuple(map(str, row_labels)), tuple(map(str, col_labels))
        same_frame = self._matrix is not None and self._matrix.shape == m.shape
        labels_changed = rows != self._row_labels or cols != self._col_labels
        self._matrix, self._masked, self._title = m, masked, title
        self._row_labels, self._col_labels = rows, cols
        self._hover = None
        if labels_changed:
            self._left.set_labels(self._display_labels(rows))
            self._bottom.set_labels(self._display_labels(cols))
        self._title_item.setText(title or "", color=self._fg.name())
        self._title_item.setVisible(bool(title))

        rect = QRectF(-0.5, -0.5, c, r)
        self._masked_hatch.setRect(rect)
        self._render_image()
        self._image.setRect(rect)
        self._vb.setLimits(
            xMin=-0.5,
            xMax=c - 0.5,
            yMin=-0.5,
            yMax=r - 0.5,
            minXRange=min(2.0, c),
            minYRange=min(2.0, r),
        )
        if self._selected is not None and (self._selected >= max(r, c)):
            self._selected = None
        self._update_selection_items()
        self._path = [n for n in self._path if 0 <= n < max(r, c)]
        self._update_path_item()
        if not (same_frame and not labels_changed):
            self.reset_view()
        self._stack.setCurrentWidget(self._view)

    def clear(self) -> None:
        """Back to the empty state with its hint."""
        self._matrix = None
        self._masked = None
        self._row_labels = self._col_labels = ()
        self._image.clear()
        self._left.set_labels([])
        self._bottom.set_labels([])
        self._selected = None
        self._path = []
        self._update_selection_items()
        self._update_path_item()
        self._stack.setCurrentWidget(self._hint)

    def current_matrix(self) -> np.ndarray | None:
        """The matrix shown (read-only float32 copy), None in the empty state."""
        return self._matrix

    def current_mask(self) -> np.ndarray | None:
        return self._masked

    def row_labels(self) -> tuple[str, ...]:
        return self._row_labels

    def col_labels(self) -> tuple[str, ...]:
        return self._col_labels

    def image_data(self) -> np.ndarray | None:
        """The float values handed to the ImageItem (log10 in log scale; NaN where masked)."""
        return self._image.image

    def levels(self) -> tuple[float, float]:
        """The colour levels in image units (log10 units in log scale)."""
        return self._levels

    def is_empty(self) -> bool:
        return self._matrix is None

    # -- appearance -----------------------------------------------------------------------
    def set_log_scale(self, enabled: bool) -> None:
        """Colour by ``log10(max(A, 1e-4))`` instead of ``A``; the colour bar says so."""
        enabled = bool(enabled)
        if enabled == self._log:
            return
        self._log = enabled
        if self._matrix is not None:
            self._render_image()
        else:
            self._update_colorbar_axis()

    def log_scale(self) -> bool:
        return self._log

    def set_levels(self, levels: tuple[float, float] | None) -> None:
        """Fix the colour range in weight units, e.g. ``(0, 1)`` to compare heads;
        None returns to 0..max of the matrix."""
        if levels is not None:
            lo, hi = float(levels[0]), float(levels[1])
            if not hi > lo:
                raise ValueError(f"levels must increase, got {levels}")
            levels = (lo, hi)
        self._fixed_levels = levels
        if self._matrix is not None:
            self._render_image()

    def set_colormap(self, name: str) -> None:
        """One of ``COLORMAPS``: viridis, magma, inferno, cividis, blues (light, for print)."""
        cmap = get_colormap(name)  # ValueError for unknown names
        self._cmap_name = name
        self._colorbar.setColorMap(cmap)
        self._apply_highlight_colors()

    def colormap(self) -> str:
        return self._cmap_name

    # -- selection and paths -------------------------------------------------------------
    def select_token(self, index: int | None) -> None:
        """Highlight row and column ``index`` (None clears). Emits nothing."""
        if index is not None:
            index = int(index)
            if self._matrix is not None and not 0 <= index < max(self._matrix.shape):
                raise IndexError(f"token {index} out of range")
        self._selected = index
        self._update_selection_items()

    def selected_token(self) -> int | None:
        return self._selected

    def highlight_path(self, nodes: Sequence[int]) -> None:
        """Outline the cells ``(nodes[k], nodes[k+1])`` of a path; ``[]`` clears."""
        self._path = [int(n) for n in nodes]
        self._update_path_item()

    def path_cells(self) -> list[tuple[int, int]]:
        """The ``(query, key)`` cells currently outlined by :meth:`highlight_path`."""
        return list(zip(self._path[:-1], self._path[1:], strict=False))

    # -- view ------------------------------------------------------------------------------
    def reset_view(self) -> None:
        """Show the whole matrix (also on double-click)."""
        if self._matrix is None:
            return
        r, c = self._matrix.shape
        self._vb.setRange(xRange=(-0.5, c - 0.5), yRange=(-0.5, r - 0.5), padding=0)

    def view_range(self) -> tuple[tuple[float, float], tuple[float, float]]:
        (x0, x1), (y0, y1) = self._vb.viewRange()
        return (x0, x1), (y0, y1)

    def cell_at(self, scene_pos: QPointF) -> tuple[int, int] | None:
        """``(query, key)`` under a scene position, None outside the matrix."""
        if self._matrix is None or not self._vb.sceneBoundingRect().contains(scene_pos):
            return None
        pt = self._vb.mapSceneToView(scene_pos)
        row, col = int(math.floor(pt.y() + 0.5)), int(math.floor(pt.x() + 0.5))
        r, c = self._matrix.shape
        if 0 <= row < r and 0 <= col < c:
            return row, col
        return None

    def cell_center_in_view(self, row: int, col: int):
        """Widget (viewport) coordinates of a cell's centre: a QPoint, for tests and tours."""
        scene_pt = self._vb.mapViewToScene(QPointF(col, row))
        return self._view.mapFromScene(scene_pt)

    def graphics_view(self) -> pg.GraphicsLayoutWidget:
        return self._view

    def axes(self) -> tuple[TokenAxis, TokenAxis]:
        """``(left/query axis, bottom/key axis)``."""
        return self._left, self._bottom

    def cell_text(self, row: int, col: int) -> str:
        """Hover text of one cell: ``"cat -> the: 0.231"`` and the indices."""
        q, k = self._row_labels[row], self._col_labels[col]
        if self._is_masked(row, col):
            value = "masked (causal)"
        else:
            value = format_weight(float(self._matrix[row, col]))
        return f"{q} -> {k}: {value}\nquery {row} -> key {col}"

    def hover_text(self) -> str:
        return self._image.toolTip()

    # -- export ----------------------------------------------------------------------------
    def export_png(
        self, path: str | os.PathLike, *, width: int | None = None, dpi: int = 150
    ) -> None:
        """Write the plot (matrix, axes, colour bar, title) as PNG, ``width`` pixels wide
        (height keeps the aspect), with ``dpi`` stored in the file. ``OSError`` when the
        file cannot be written."""
        path = os.fspath(path)
        exporter = self._exporter(ImageExporter)
        if width is not None:
            if width < 1:
                raise ValueError("width must be >= 1")
            exporter.parameters()["width"] = int(width)
        image = exporter.export(toBytes=True)
        dpm = int(round(dpi / 0.0254))
        image.setDotsPerMeterX(dpm)
        image.setDotsPerMeterY(dpm)
        data = QByteArray()
        buf = QBuffer(data)
        buf.open(QIODevice.OpenModeFlag.WriteOnly)
        if not image.save(buf, "PNG"):
            raise OSError(f"Could not encode the heatmap as PNG for {path}")
        buf.close()
        self._write_bytes(path, bytes(data.data()), "PNG")

    def export_svg(self, path: str | os.PathLike) -> None:
        """Write the plot as SVG; ``OSError`` when the file cannot be written.

        Uses pyqtgraph's ``SVGExporter``; where it fails (pyqtgraph 0.14 cannot parse
        the closing ``Z`` that Qt 6.12 writes into clip paths) the same scene region is
        rendered through ``QSvgGenerator`` instead (text stays text, the matrix is an
        embedded image)."""
        path = os.fspath(path)
        exporter = self._exporter(SVGExporter)
        try:
            data = exporter.export(toBytes=True)
        except Exception:  # noqa: BLE001 - pyqtgraph/Qt incompatibility, see docstring
            data = self._render_svg()
        self._write_bytes(path, data, "SVG")

    def _render_svg(self) -> bytes:
        item = self._view.ci
        source = item.sceneBoundingRect()
        data = QByteArray()
        buf = QBuffer(data)
        buf.open(QIODevice.OpenModeFlag.WriteOnly)
        gen = QSvgGenerator()
        gen.setOutputDevice(buf)
        # axes replay QPictures recorded at the screen's DPI: render at the same DPI
        gen.setResolution(QPicture().logicalDpiX())
        gen.setSize(source.size().toSize())
        gen.setViewBox(QRectF(0, 0, source.width(), source.height()))
        gen.setTitle(self._title or "attention heatmap")
        gen.setDescription("Attention Atlas heatmap: rows = queries, columns = keys")
        painter = QPainter(gen)
        try:
            target = QRectF(0, 0, source.width(), source.height())
            painter.fillRect(target, self._view.backgroundBrush())
            self._view.scene().render(painter, target, source)
        finally:
            painter.end()
        buf.close()
        return bytes(data.data())

    def _exporter(self, cls):
        if self._matrix is None:
            raise ValueError("nothing to export: no attention matrix is shown")
        if not self._view.isVisible() and self._view.width() < 50:
            self._view.resize(max(self.width(), 640), max(self.height(), 560))
        self._view.ci.layout.activate()
        return cls(self._view.ci)

    @staticmethod
    def _write_bytes(path: str, data: bytes, kind: str) -> None:
        try:
            with open(path, "wb") as fh:
                fh.write(data)
        except OSError as exc:
            raise OSError(exc.errno, f"Cannot write {kind} to {path}: {exc.strerror}") from exc

    # -- internals -------------------------------------------------------------------------
    @staticmethod
    def _display_labels(labels: Sequence[str]) -> list[str]:
        with_index = len(labels) >= INDEX_LABELS_FROM
        out = []
        for i, lab in enumerate(labels):
            lab = lab.replace("\n", "\\n").replace("\t", "\\t")
            if len(lab) > MAX_LABEL_CHARS:
                lab = lab[: MAX_LABEL_CHARS - 1] + "…"
            out.append(f"{i} {lab}" if with_index else lab)
        return out

    def _is_masked(self, row: int, col: int) -> bool:
        if self._masked is not None and self._masked[row, col]:
            return True
        return bool(np.isnan(self._matrix[row, col]))

    def _render_image(self) -> None:
        m = self._matrix
        finite_max = float(np.nanmax(m)) if m.size and not np.isnan(m).all() else 0.0
        if self._fixed_levels is not None:
            lo, hi = self._fixed_levels
        else:
            lo, hi = 0.0, max(finite_max, 1e-12)
        if self._log:
            data = np.log10(np.maximum(m, LOG_FLOOR))
            lo, hi = math.log10(max(lo, LOG_FLOOR)), math.log10(max(hi, LOG_FLOOR * 10))
        else:
            data = m if self._masked is None else m.copy()
        if self._masked is not None:
            if data is m:
                data = m.copy()
            data[self._masked] = np.nan
        has_mask = self._masked is not None or bool(np.isnan(m).any())
        self._masked_hatch.setVisible(has_mask)
        self._levels = (lo, hi)
        self._image.setImage(data, autoLevels=False, levels=(lo, hi))
        self._colorbar.setLevels((lo, hi))
        self._update_colorbar_axis()

    def _update_colorbar_axis(self) -> None:
        axis = self._colorbar.getAxis("right")
        label = self._colorbar.getAxis("left")
        if self._log:
            lo, hi = self._levels
            eps = 1e-6 * (hi - lo)  # keep end ticks inside the axis despite rounding
            ticks = [
                (min(max(k, lo + eps), hi - eps), f"{10.0**k:g}")
                for k in range(math.ceil(lo), math.floor(hi) + 1)
            ]
            axis.setTicks([ticks, []])
            label.setLabel("attention weight (log scale)", color=self._fg.name())
        else:
            axis.setTicks(None)
            label.setLabel("attention weight", color=self._fg.name())

    def _apply_highlight_colors(self) -> None:
        hc = highlight_color(self._cmap_name)
        pen = QPen(hc, 1.5)
        pen.setCosmetic(True)
        fill = QColor(hc)
        fill.setAlpha(40)
        for item in (self._row_rect, self._col_rect):
            item.setPen(pen)
            item.setBrush(QBrush(fill))
        ppen = QPen(path_color(self._cmap_name), 2.5)
        ppen.setCosmetic(True)
        ppen.setJoinStyle(Qt.PenJoinStyle.MiterJoin)
        self._path_item.setPen(ppen)
        sel_color = QColor(200, 30, 30) if self._cmap_name != "blues" else QColor(20, 60, 160)
        self._left.set_selected(self._selected, sel_color)
        self._bottom.set_selected(self._selected, sel_color)

    def _update_selection_items(self) -> None:
        idx = self._selected
        m = self._matrix
        if idx is None or m is None:
            self._row_rect.setVisible(False)
            self._col_rect.setVisible(False)
        else:
            r, c = m.shape
            self._row_rect.setRect(QRectF(-0.5, idx - 0.5, c, 1))
            self._row_rect.setVisible(idx < r)
            self._col_rect.setRect(QRectF(idx - 0.5, -0.5, 1, r))
            self._col_rect.setVisible(idx < c)
        self._left.set_selected(
            idx if (m is not None and idx is not None and idx < m.shape[0]) else None
        )
        self._bottom.set_selected(
            idx if (m is not None and idx is not None and idx < m.shape[1]) else None
        )

    def _update_path_item(self) -> None:
        path = QPainterPath()
        cells = self.path_cells()
        for q, k in cells:
            path.addRect(QRectF(k - 0.5, q - 0.5, 1.0, 1.0))
        if len(cells) > 1:  # thin route through the cell centres
            path.moveTo(cells[0][1], cells[0][0])
            for q, k in cells[1:]:
                path.lineTo(k, q)
        self._path_item.setPath(path)

    # -- handlers --------------------------------------------------------------------------
    def _on_mouse_moved(self, scene_pos: QPointF) -> None:
        cell = self.cell_at(scene_pos)
        if cell is None:
            if self._hover is not None:
                self._hover = None
                self._image.setToolTip("")
            return
        if cell == self._hover:
            return
        self._hover = cell
        text = self.cell_text(*cell)
        self._image.setToolTip(text)
        if QToolTip.isVisible():
            QToolTip.showText(
                self._view.mapToGlobal(self._view.mapFromScene(scene_pos)), text, self._view
            )
        self.cell_hovered.emit(*cell)

    def _on_mouse_clicked(self, event) -> None:
        if self._matrix is None or event.button() != Qt.MouseButton.LeftButton:
            return
        if event.double():
            self.reset_view()
            return
        pos = event.scenePos()
        cell = self.cell_at(pos)
        if cell is not None:
            self.select_token(cell[0])
            self.cell_clicked.emit(*cell)
            self.token_selected.emit(cell[0])
            return
        for axis in (self._left, self._bottom):
            if axis.sceneBoundingRect().contains(pos):
                local = axis.mapFromScene(pos)
                idx = axis.index_at(local.y() if axis is self._left else local.x())
                if idx is not None:
                    self.select_token(idx)
                    self.token_selected.emit(idx)
                return
