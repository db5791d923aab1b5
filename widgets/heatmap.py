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

Signed values (``set_matrix(..., signed=True)``: attribution scores, differences) get a
diverging map centred at 0, symmetric levels and no log scale. A matrix without rows or
columns (every token of the view hidden) shows the empty state with its reason.

The widget shows state and emits what the person did; it computes nothing about the
model. Built like pyqtgraph's ``MatrixDisplayExample``: one row-major float32
``ImageItem``, a ``ColorBarItem``, token tick labels from a custom ``AxisItem``
(:mod:`widgets.heatmap_axes`). Exports (PNG, SVG, PDF) are drawn from the matrix, not
from the scene: :meth:`AttentionHeatmap.figure` lays out a clean figure
(:mod:`analysis.io.figure_data`) that :mod:`widgets.figure_export` writes.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QFontMetricsF, QPainterPath, QPalette, QPen
from PySide6.QtWidgets import QGraphicsPathItem, QGraphicsRectItem, QToolTip, QWidget

from analysis.io import figure_data as fd
from widgets import figure_export
from widgets.colormaps import (
    COLORMAPS,
    DEFAULT_COLORMAP,
    SIGNED_COLORMAP,
    get_colormap,
    highlight_color,
    highlight_colors,
    lookup_table,
    path_color,
    selected_label_color,
    signed_colormap,
)
from widgets.empty_state import hint_label, hint_stack
from widgets.heatmap_axes import (
    COLORBAR_LABELS,
    GENERATED_LABEL,
    MAX_LABEL_PX,
    HatchedRect,
    TokenAxis,
    axis_labels,
    check_levels,
    format_weight,
    label_colorbar,
    make_colorbar,
    stride_note,
    value_levels,
)

__all__ = [
    "AttentionHeatmap",
    "TokenAxis",
    "COLORMAPS",
    "EMPTY_HINT",
    "LOG_FLOOR",
    "NO_TOKENS_HINT",
    "SIGNED_LOG_NOTE",
]

EMPTY_HINT = "Type a text and press Ctrl+Enter to see its attention"
NO_TOKENS_HINT = (
    "Nothing to show: every token of this view is a special token.\n"
    "Turn off Hide specials to see them."
)
AXIS_TITLES = {"left": "query (attends)", "bottom": "key (attended to)"}
TITLE_POINTS = 11  # the title's font size
SIGNED_LOG_NOTE = "Log scale is off: these values are signed, and a logarithm needs positive values."
LOG_FLOOR = 1e-4  # log scale: weights below this are drawn as this


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
        self._title_shown: str | None = None
        self._log = False  # requested; off while the values are signed
        self._signed = False
        self._fixed_levels: tuple[float, float] | None = None  # set_levels: across matrices
        self._matrix_levels: tuple[float, float] | None = None  # set_matrix(levels=): this one
        self._levels: tuple[float, float] = (0.0, 1.0)
        self._cmap_name = DEFAULT_COLORMAP  # chosen
        self._shown_cmap = DEFAULT_COLORMAP  # on the colour bar now
        self._selected: int | None = None
        self._path: list[int] = []
        self._hover: tuple[int, int] | None = None
        self._mouse: QPointF | None = None  # scene position of the mouse while it is over the view
        self._value_name = COLORBAR_LABELS["linear"]  # what the numbers are, for the colour bar

        self._hint = hint_label(EMPTY_HINT, "heatmapEmptyHint")

        self._view = pg.GraphicsLayoutWidget()
        self._view.setObjectName("heatmapView")
        pal = self.palette()
        self._fg = pal.color(QPalette.ColorRole.WindowText)
        self._view.setBackground(pal.color(QPalette.ColorRole.Base))
        layout = self._view.ci
        layout.setContentsMargins(6, 6, 6, 6)

        self._title_item = layout.addLabel("", row=0, col=0, color=self._fg, size=f"{TITLE_POINTS}pt")
        self._title_font = QFont(self.font())
        self._title_font.setPointSizeF(TITLE_POINTS)
        self._left = TokenAxis("left")
        self._bottom = TokenAxis("bottom")
        for axis in (self._left, self._bottom):
            axis.setLabel(AXIS_TITLES[axis.orientation], color=self._fg.name())
            axis.setPen(self._fg)
            axis.setTextPen(self._fg)
            axis.set_font(self.font())
            axis.on_step_changed = lambda step, a=axis: self._on_step_changed(a, step)
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
        # where a generation's answer starts: a line on both axes between prompt and answer
        self._dividers = [pg.InfiniteLine(angle=angle, pen=pg.mkPen(GENERATED_LABEL, width=2)) for angle in (0, 90)]
        for line in self._dividers:
            line.setZValue(7)
            line.setVisible(False)
            self._plot.addItem(line, ignoreBounds=True)

        self._colorbar = make_colorbar(get_colormap(self._cmap_name), self._fg)
        # inside the plot's layout, so the bar spans exactly the matrix (as in the example)
        self._colorbar.setImageItem(self._image, insert_in=self._plot)

        self._stack = hint_stack(self, self._hint, self._view)

        scene = self._view.scene()
        self._view.viewport().installEventFilter(self)  # the mouse leaving: no cell is hovered
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
        self._show_title(event.size().width())

    def eventFilter(self, watched, event):  # noqa: N802 (Qt API)
        if watched is self._view.viewport() and event.type() == QEvent.Type.Leave:
            self._mouse = None
            self._hover = None
            self._image.setToolTip("")
        return super().eventFilter(watched, event)

    # -- data ------------------------------------------------------------------------------
    def set_matrix(
        self,
        matrix: np.ndarray,
        row_labels: Sequence[str],
        col_labels: Sequence[str],
        *,
        masked: np.ndarray | None = None,
        title: str = "",
        signed: bool = False,
        levels: tuple[float, float] | None = None,
    ) -> None:
        """Show ``matrix[R, C]`` (rows = queries, columns = keys).

        ``masked`` (bool ``[R, C]``) marks structurally absent cells (causal upper
        triangle); NaN cells of ``matrix`` are treated as masked too. The zoom is kept
        when the shape and labels are unchanged (switching heads), reset otherwise.

        ``signed`` values (any real numbers, e.g. attribution scores) are coloured by a
        diverging map centred at 0 with levels ``[-m, m]``, ``m = max |value|``; the log
        scale is off for them. ``levels`` fixes the colour range of this matrix (in value
        units; it wins over :meth:`set_levels`); by default unsigned values run from 0 to
        their maximum. A matrix with no rows or no columns shows the empty state.
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
        levels = check_levels(levels)
        if r == 0 or c == 0:  # e.g. every token hidden: say so instead of drawing nothing
            self.clear()
            self._hint.setText(NO_TOKENS_HINT)
            return
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
        self._signed, self._matrix_levels = bool(signed), levels
        self._hint.setText(EMPTY_HINT)
        self._row_labels, self._col_labels = rows, cols
        self._hover = None
        if labels_changed:
            self._left.set_labels(axis_labels(rows))
            self._bottom.set_labels(axis_labels(cols))
        self._show_title(self.width())

        rect = QRectF(-0.5, -0.5, c, r)
        self._masked_hatch.setRect(rect)
        self._apply_colormap()
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
        self._refresh_hover()

    def set_generated_from(self, row: int | None, col: int | None = None) -> None:
        """Mark the rows from ``row`` on and the columns from ``col`` on (default: ``row``) as
        generated tokens: tinted labels and a divider line before them; None clears."""
        col = row if col is None else col
        self._left.set_marked_from(row)
        self._bottom.set_marked_from(col)
        horizontal, vertical = self._dividers
        horizontal.setVisible(row is not None)
        vertical.setVisible(col is not None)
        if row is not None:
            horizontal.setValue(row - 0.5)
        if col is not None:
            vertical.setValue(col - 0.5)

    def generated_from(self) -> tuple[int | None, int | None]:
        """The first generated row and column marked (None, None without a generation)."""
        horizontal, vertical = self._dividers
        row = horizontal.value() + 0.5 if horizontal.isVisible() else None
        col = vertical.value() + 0.5 if vertical.isVisible() else None
        return (None if row is None else int(round(row)), None if col is None else int(round(col)))

    def clear(self) -> None:
        """Back to the empty state with its hint."""
        self._hover = None
        self._image.setToolTip("")
        self.set_generated_from(None)
        self._hint.setText(EMPTY_HINT)
        self._signed, self._matrix_levels = False, None
        self._apply_colormap()
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
        """Colour by ``log10(max(A, 1e-4))`` instead of ``A``; the colour bar says so.
        Remembered but not applied while the values are signed (see log_scale_note)."""
        enabled = bool(enabled)
        if enabled == self._log:
            return
        self._log = enabled
        if self._matrix is not None:
            self._render_image()
        else:
            self._update_colorbar_axis()

    def log_scale(self) -> bool:
        """Whether the colours are on the log scale now."""
        return self._log and not self._signed

    def log_scale_available(self) -> bool:
        """False while signed values are shown: the log scale cannot apply to them."""
        return not self._signed

    def log_scale_note(self) -> str:
        """Why the log scale is off although it can be chosen ("" when it is available):
        for the log-scale checkbox's tooltip. The colour bar's tooltip says it too."""
        return SIGNED_LOG_NOTE if self._signed else ""

    def is_signed(self) -> bool:
        return self._signed

    def set_levels(self, levels: tuple[float, float] | None) -> None:
        """Fix the colour range in weight units, e.g. ``(0, 1)`` to compare heads;
        None returns to 0..max of the matrix. Applies to unsigned matrices shown without
        their own ``levels``."""
        self._fixed_levels = check_levels(levels)
        if self._matrix is not None:
            self._render_image()

    def set_colormap(self, name: str) -> None:
        """One of ``COLORMAPS``: viridis, magma, inferno, cividis, blues (light, for print)."""
        get_colormap(name)  # ValueError for unknown names
        self._cmap_name = name
        self._apply_colormap()

    def colormap(self) -> str:
        """The chosen colour map (signed values are drawn with SIGNED_COLORMAP meanwhile)."""
        return self._cmap_name

    def set_value_name(self, name: str) -> None:
        """Say on the colour bar what the numbers are (e.g. "ALTI contribution"; default
        "attention weight"); the log scale and signed values add their note to it."""
        name = str(name) or COLORBAR_LABELS["linear"]
        if name != self._value_name:
            self._value_name = name
            self._update_colorbar_axis()

    def value_name(self) -> str:
        return self._value_name

    def colorbar_label(self) -> str:
        """The colour bar's title as shown now."""
        return self._colorbar.getAxis("left").labelText

    def title_text(self) -> tuple[str, str]:
        """``(shown, full)``: the title as drawn (elided with "…" when it does not fit) and
        in full (also the title's tooltip)."""
        return self._title_shown, self._title

    def shown_colormap(self) -> str:
        """The colour map drawn now: the chosen one, or SIGNED_COLORMAP for signed values."""
        return SIGNED_COLORMAP if self._signed else self._cmap_name

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
    def figure(self, *, include_highlight: bool = False, title: str | None = None):
        """The heatmap as a figure (:class:`analysis.io.figure_data.Figure`): cells,
        every label that fits (never cut), axis titles, a colour bar with its ticks, the
        title (``title``; default: the one shown, "" for none). Clean by default: no
        selection, path or hover; ``include_highlight`` keeps the selected token's row,
        column and labels and the path cells. ``ValueError`` in the empty state."""
        if self._matrix is None:
            raise ValueError("nothing to export: no attention matrix is shown")
        shown = self.shown_colormap()
        levels = value_levels(self._matrix, self._signed, self._matrix_levels, self._fixed_levels)
        return fd.heatmap_figure(
            self._matrix, self._row_labels, self._col_labels, masked=self._masked,
            title=self._title if title is None else title, signed=self._signed, levels=levels,
            log=self.log_scale(), colormap=shown, lut=lookup_table(shown),
            metrics=figure_export.figure_metrics(),
            selected=self._selected if include_highlight else None,
            path=self._path if include_highlight else (),
            colors=highlight_colors(shown), value_name=self._value_name,
        )

    def export_figure(self, path: str | os.PathLike, *, width: int | None = None, dpi: float | None = None,
                      include_highlight: bool = False, title: str | None = None, fmt: str | None = None):
        """Write :meth:`figure` as PNG, SVG or PDF, chosen by the extension (or ``fmt``):
        see :func:`widgets.figure_export.write_figure` for ``width`` and ``dpi``. Returns
        the path; ``ValueError`` in the empty state or for another extension, ``OSError``
        when the file cannot be written."""
        fig = self.figure(include_highlight=include_highlight, title=title)
        return figure_export.write_figure(fig, path, width=width, dpi=dpi, fmt=fmt)

    def export_png(
        self, path: str | os.PathLike, *, width: int | None = None, dpi: int = 150
    ) -> None:
        """Write the clean figure as PNG, ``width`` pixels wide (default: its natural size
        at ``dpi``), with ``dpi`` stored in the file. ``OSError`` when the file cannot be
        written."""
        self.export_figure(path, width=width, dpi=dpi, fmt="png")

    def export_svg(self, path: str | os.PathLike) -> None:
        """Write the clean figure as SVG (cells as ``<rect>`` up to 256 x 256, text as
        text); ``OSError`` when the file cannot be written."""
        self.export_figure(path, fmt="svg")

    # -- internals -------------------------------------------------------------------------
    def _is_masked(self, row: int, col: int) -> bool:
        if self._masked is not None and self._masked[row, col]:
            return True
        return bool(np.isnan(self._matrix[row, col]))

    def _render_image(self) -> None:
        m = self._matrix
        lo, hi = value_levels(m, self._signed, self._matrix_levels, self._fixed_levels)
        if self.log_scale():
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

    def _apply_colormap(self) -> None:
        """Colour bar (and image) on the map shown now; highlights that stand out on it."""
        self._colorbar.setToolTip(self.log_scale_note())
        shown = self.shown_colormap()
        if shown != self._shown_cmap:
            self._shown_cmap = shown
            self._colorbar.setColorMap(signed_colormap() if self._signed else get_colormap(shown))
            self._apply_highlight_colors()

    def _update_colorbar_axis(self) -> None:
        scale = "log" if self.log_scale() else ("signed" if self._signed else "linear")
        label_colorbar(self._colorbar, scale, self._levels, self._fg, self._value_name)

    def _show_title(self, width: float) -> None:
        """The title on one line, elided with "…" to ``width`` less the margins (a cut
        title reads as another one); the whole title in its tooltip."""
        room = max(float(width) - 24.0, 40.0)
        metrics = QFontMetricsF(self._title_font)
        shown = metrics.elidedText(self._title or "", Qt.TextElideMode.ElideRight, room)
        if shown != self._title_shown:
            self._title_shown = shown
            self._title_item.setText(shown, color=self._fg.name())
        self._title_item.setToolTip(self._title if shown != self._title else "")
        self._title_item.setVisible(bool(self._title))

    def _on_step_changed(self, axis: TokenAxis, step: int) -> None:
        """An axis thinned its labels to every ``step``-th token: its title says so."""
        axis.setLabel(AXIS_TITLES[axis.orientation] + stride_note(step), color=self._fg.name())

    def axis_title(self, orientation: str) -> str:
        """The title of the "left" (query) or "bottom" (key) axis as shown."""
        return (self._left if orientation == "left" else self._bottom).labelText

    def _refresh_hover(self) -> None:
        """A new matrix under a still mouse: the tooltip shows the value of the cell under it now."""
        self._hover = None
        if self._mouse is not None:
            self._on_mouse_moved(self._mouse)

    def _apply_highlight_colors(self) -> None:
        shown = self.shown_colormap()
        hc = highlight_color(shown)
        pen = QPen(hc, 1.5)
        pen.setCosmetic(True)
        fill = QColor(hc)
        fill.setAlpha(40)
        for item in (self._row_rect, self._col_rect):
            item.setPen(pen)
            item.setBrush(QBrush(fill))
        ppen = QPen(path_color(shown), 2.5)
        ppen.setCosmetic(True)
        ppen.setJoinStyle(Qt.PenJoinStyle.MiterJoin)
        self._path_item.setPen(ppen)
        sel_color = selected_label_color(shown)
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
        self._mouse = QPointF(scene_pos)
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
