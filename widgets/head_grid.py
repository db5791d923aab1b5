"""The model view: every layer x head as a small heatmap, drawn as one mosaic image.

Rows are layers (0 at the top), columns are heads (0 at the left); indices are 0-based
everywhere, as in the rest of the app. Each tile is a thumbnail of one head's
``A[query, key]`` (see ``analysis.attention.head_stats.head_thumbnails``), coloured from 0 to *that
tile's own maximum*: the overview is for the *shape* of each head's pattern (diagonal,
previous token, [CLS] column, broad); exact values are in the tooltip statistics and
the main heatmap. Causal models: cells of the upper triangle are neutral grey.

Under the mosaic a sortable table lists every head's statistics (entropy, share of
attention to special tokens, mean attention distance; click a row to open the head),
exportable as CSV (:meth:`HeadOverview.export_head_table_csv`). The mosaic keeps its
chrome small (tick numbers, one axis title) so the tiles take the dock's width, and the
table gets the height the mosaic does not need. Exports (PNG, SVG, PDF) are drawn from
the thumbnails in the chosen colour map (:meth:`HeadOverview.figure`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, QSortFilterProxyModel, Qt, Signal
from PySide6.QtGui import QColor, QFontMetricsF, QPalette, QPen, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QAbstractItemView,
    QGraphicsRectItem,
    QHeaderView,
    QSplitter,
    QTableView,
    QWidget,
)

from analysis.io import figure_data as fd
from widgets import figure_export
from widgets.colormaps import (
    DEFAULT_COLORMAP,
    MASKED_BACKGROUND,
    colorize,
    get_colormap,
    lookup_table,
)
from widgets.empty_state import hint_label, hint_stack

__all__ = ["HeadOverview", "EMPTY_HINT", "HEAD_TABLE_COLUMNS", "format_head_tooltip"]

#: column titles of the head table per statistic (others: the name, underscores as spaces)
HEAD_TABLE_COLUMNS = {
    "entropy": ("entropy", "mean entropy of a query's attention, in nats", lambda v: f"{v:.2f}"),
    "special_share": ("special %", "share of attention paid to special tokens, in %", lambda v: f"{100 * v:.1f}"),
    "mean_distance": ("distance", "mean attention distance, in tokens", lambda v: f"{v:.1f}"),
}
SORT_ROLE = Qt.ItemDataRole.UserRole + 1

EMPTY_HINT = "Type a text and press Ctrl+Enter to see every layer and head"

def format_head_tooltip(layer: int, head: int, stats: Mapping[str, np.ndarray] | None) -> str:
    """``"Layer 3 · head 7"`` and one line per statistic (entropy in nats, attention to
    special tokens in %, mean attention distance in tokens)."""
    return fd.head_tooltip(layer, head, stats)


class HeadOverview(QWidget):
    """Grid of head thumbnails; click a tile to pick a head.

    Signals
    -------
    head_selected(int, int)
        ``(layer, head)`` of the tile the person clicked.
    head_hovered(int, int)
        ``(layer, head)`` under the mouse (emitted when it changes).
    """

    head_selected = Signal(int, int)
    head_hovered = Signal(int, int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._thumbs: np.ndarray | None = None
        self._stats: dict[str, np.ndarray] | None = None
        self._masked = False
        # one query's rows instead of the thumbnails (a generation step): [L, H, t]
        self._rows: np.ndarray | None = None
        self._rows_caption = ""
        self._rows_masked_from: int | None = None
        self._rows_tips = None
        self._current: tuple[int, int] | None = None
        self._hover: tuple[int, int] | None = None
        self._cmap_name = DEFAULT_COLORMAP
        self._tile = 1  # pixels per tile side in the mosaic
        self._gap = 0

        self._hint = hint_label(EMPTY_HINT, "headOverviewEmptyHint")

        pal = self.palette()
        self._fg = pal.color(QPalette.ColorRole.WindowText)
        self._view = pg.GraphicsLayoutWidget()
        self._view.setBackground(pal.color(QPalette.ColorRole.Base))
        self._view.ci.setContentsMargins(1, 1, 1, 1)
        self._plot = self._view.addPlot()
        self._plot.layout.setContentsMargins(0, 0, 0, 0)
        self._plot.invertY(True)
        self._plot.setDefaultPadding(0.0)
        self._plot.hideButtons()
        self._plot.setMenuEnabled(False)
        self._plot.setMouseEnabled(x=False, y=False)
        self._plot.setAspectLocked(True)
        self._plot.showAxis("top")
        self._plot.hideAxis("bottom")
        # small chrome so the tiles get the width: tick numbers only on the left, one
        # title on top saying what rows and columns are
        for side in ("left", "top"):
            ax = self._plot.getAxis(side)
            ax.setPen(self._fg)
            ax.setTextPen(self._fg)
            ax.setStyle(tickLength=0, tickTextOffset=2)
        self._plot.getAxis("top").setLabel("head  (rows: layer)", color=self._fg.name())
        self._plot.getAxis("left").setToolTip("layer")
        self._vb = self._plot.getViewBox()

        self._image = pg.ImageItem(axisOrder="row-major")
        self._plot.addItem(self._image)
        self._frame = QGraphicsRectItem()
        pen = QPen(QColor(230, 40, 40), 2.5)
        pen.setCosmetic(True)
        self._frame.setPen(pen)
        self._frame.setZValue(10)
        self._frame.setVisible(False)
        self._plot.addItem(self._frame)

        self._model = QStandardItemModel(0, 2, self)
        self._proxy = QSortFilterProxyModel(self)
        self._proxy.setSourceModel(self._model)
        self._proxy.setSortRole(SORT_ROLE)
        self._table = QTableView()
        self._table.setObjectName("headTable")
        self._table.setModel(self._proxy)
        self._table.horizontalHeader().setSortIndicator(0, Qt.SortOrder.AscendingOrder)
        self._table.setSortingEnabled(True)  # layer then head order until a column is clicked
        self._table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self._table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self._table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self._table.verticalHeader().setVisible(False)
        self._table.verticalHeader().setDefaultSectionSize(QFontMetricsF(self.font()).height() + 6)
        self._table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self._table.horizontalHeader().setStretchLastSection(True)
        self._table.setToolTip("Every head's statistics; click a column title to sort, a row to open the head")
        self._table.clicked.connect(self._on_table_clicked)

        self._splitter = QSplitter(Qt.Orientation.Vertical)
        self._splitter.setChildrenCollapsible(True)
        self._splitter.addWidget(self._view)
        self._splitter.addWidget(self._table)
        self._splitter.setStretchFactor(0, 1)
        self._splitter.setStretchFactor(1, 0)
        self._user_split = False
        self._splitter.splitterMoved.connect(self._on_splitter_moved)
        self._table.setVisible(False)

        self._stack = hint_stack(self, self._hint, self._splitter)

        scene = self._view.scene()
        scene.sigMouseMoved.connect(self._on_mouse_moved)
        scene.sigMouseClicked.connect(self._on_mouse_clicked)

    # -- data ------------------------------------------------------------------------------
    def set_heads(
        self,
        thumbnails: np.ndarray,
        stats: Mapping[str, np.ndarray] | None = None,
        *,
        masked: bool = False,
    ) -> None:
        """Show ``thumbnails [L, H, t, t]``; ``stats`` maps a name to ``[L, H]`` values
        ("entropy", "special_share", "mean_distance" are formatted with units);
        ``masked`` greys the upper triangle of every tile (causal models)."""
        th = np.asarray(thumbnails, dtype=np.float32)
        if th.ndim != 4 or th.shape[2] != th.shape[3]:
            raise ValueError(f"thumbnails must be [layers, heads, t, t], got {th.shape}")
        n_layers, n_heads = th.shape[:2]
        if stats is not None:
            stats = {k: np.asarray(v) for k, v in stats.items()}
            for k, v in stats.items():
                if v.shape != (n_layers, n_heads):
                    raise ValueError(
                        f"stat {k!r} has shape {v.shape}, expected {(n_layers, n_heads)}"
                    )
        self._thumbs, self._stats, self._masked = th, stats, bool(masked)
        self._rows, self._rows_caption, self._rows_masked_from, self._rows_tips = None, "", None, None
        self._update_title()
        self._hover = None
        if self._current is not None and not (
            self._current[0] < n_layers and self._current[1] < n_heads
        ):
            self._current = None
        self._render()
        self._update_axes()
        self._update_frame()
        self._fill_table()
        self._stack.setCurrentWidget(self._splitter)
        self._fit_split()
        self._vb.autoRange(padding=0.0)

    def set_query_rows(self, rows: np.ndarray | None, caption: str = "", *, masked_from: int | None = None,
                       tips=None) -> None:
        """Show one query's attention row in every tile instead of the thumbnails.

        ``rows [L, H, t]`` (``analysis.attention.head_stats.query_rows`` with the
        thumbnails' size ``t``): tile column ``b`` is the query's attention to key block
        ``b``, drawn over the tile's whole height and coloured to the tile's own maximum;
        blocks from ``masked_from`` on (keys after a causal query) are grey. ``caption``
        names the query ("token 12 'is', which predicted ' Paris'"); ``tips[l][h]`` adds a
        line to a tile's tooltip. ``None`` goes back to the thumbnails."""
        if rows is None:
            if self._rows is None:
                return
            self._rows, self._rows_caption, self._rows_masked_from, self._rows_tips = None, "", None, None
        else:
            if self._thumbs is None:
                raise ValueError("set_heads first: the rows are shown in the thumbnails' tiles")
            rows = np.asarray(rows, dtype=np.float32)
            if rows.shape != self._thumbs.shape[:3]:
                raise ValueError(f"rows must be [layers, heads, {self._thumbs.shape[2]}], got {rows.shape}")
            self._rows, self._rows_caption, self._rows_masked_from, self._rows_tips = rows, caption, masked_from, tips
        self._render()
        self._update_title()

    def query_caption(self) -> str:
        """What the tiles show: "" for the thumbnails, else the query's caption."""
        return self._rows_caption if self._rows is not None else ""

    def clear(self) -> None:
        self._rows, self._rows_caption, self._rows_masked_from, self._rows_tips = None, "", None, None
        self._thumbs = None
        self._stats = None
        self._current = None
        self._image.clear()
        self._frame.setVisible(False)
        self._model.setRowCount(0)
        self._table.setVisible(False)
        self._stack.setCurrentWidget(self._hint)

    def set_current(self, layer: int | None, head: int | None = None) -> None:
        """Frame the current head (``None`` removes the frame). Emits nothing."""
        if layer is None or head is None:
            self._current = None
        else:
            self._current = (int(layer), int(head))
        self._update_frame()
        self._select_table_row()

    def current(self) -> tuple[int, int] | None:
        return self._current

    def set_colormap(self, name: str) -> None:
        """Colour the tiles (and exports) with one of ``COLORMAPS``."""
        get_colormap(name)  # validate
        self._cmap_name = name
        if self._thumbs is not None:
            self._render()

    def colormap(self) -> str:
        return self._cmap_name

    def head_stats(self) -> dict[str, np.ndarray] | None:
        return None if self._stats is None else dict(self._stats)

    def head_table(self) -> QTableView:
        """The sortable table of every head's statistics (for tests and the window)."""
        return self._table

    def head_table_rows(self) -> list[tuple]:
        """The table's rows in the order shown: ``(layer, head, value, ...)``."""
        rows = []
        for r in range(self._proxy.rowCount()):
            rows.append(tuple(self._proxy.index(r, c).data(SORT_ROLE) for c in range(self._proxy.columnCount())))
        return rows

    def export_head_table_csv(self, path: str | os.PathLike) -> None:
        """Write every head's statistics as CSV: ``layer,head,entropy,special_share,
        mean_distance`` (the names of the statistics shown), one row per head in layer
        then head order, full precision (entropy in nats, special_share 0..1,
        mean_distance in tokens). ``ValueError`` when there are no statistics,
        ``OSError`` (naming the file and the reason) when it cannot be written."""
        if not self._stats:
            raise ValueError("nothing to export: no head statistics are shown")
        path = figure_export.check_writable(path, "CSV")
        try:
            fd.write_head_table_csv(path, self._stats)
        except OSError as exc:
            raise figure_export._error(exc.errno, f"Cannot write CSV to {path!r}: {exc.strerror or exc}") from exc

    def figure(self, *, include_highlight: bool = False, title: str | None = None):
        """The mosaic as a figure (:class:`analysis.io.figure_data.Figure`) in the chosen
        colour map, with layer and head numbers and a colour bar; clean by default (no
        frame around the current head; ``include_highlight`` keeps it). ``title``
        defaults to "Heads: layer x head". ``ValueError`` when empty."""
        if self._thumbs is None:
            raise ValueError("nothing to export: no heads are shown")
        if title is None:
            title = f"Heads: attention of {self._rows_caption}" if self._rows is not None else "Heads: layer x head"
        return fd.heads_figure(
            np.nan_to_num(self._tiles()), colormap=self._cmap_name, lut=lookup_table(self._cmap_name),
            masked=self._masked and self._rows is None,
            stats=self._stats, current=self._current if include_highlight else None,
            title=title, metrics=figure_export.figure_metrics(),
        )

    def export_figure(self, path, *, width: int | None = None, dpi: float | None = None,
                      include_highlight: bool = False, title: str | None = None, fmt: str | None = None):
        """Write :meth:`figure` as PNG, SVG or PDF by the extension (or ``fmt``); see
        :func:`widgets.figure_export.write_figure`. Returns the path."""
        fig = self.figure(include_highlight=include_highlight, title=title)
        return figure_export.write_figure(fig, path, width=width, dpi=dpi, fmt=fmt)

    def tile_pitch_px(self) -> float:
        """On-screen pixels from one tile's left edge to the next (tile + gap)."""
        if self._thumbs is None:
            return 0.0
        a = self._vb.mapViewToScene(QPointF(0, 0))
        b = self._vb.mapViewToScene(QPointF(1, 0))
        return abs(b.x() - a.x())

    def grid_shape(self) -> tuple[int, int] | None:
        """``(layers, heads)`` shown, None when empty."""
        return None if self._thumbs is None else self._thumbs.shape[:2]

    def mosaic(self) -> np.ndarray | None:
        """The RGBA mosaic image (``uint8 [rows, cols, 4]``) handed to the ImageItem."""
        return self._image.image

    def tile_pixels(self, layer: int, head: int) -> tuple[slice, slice]:
        """Row and column slices of one tile inside :meth:`mosaic`."""
        pitch = self._tile + self._gap
        return (
            slice(layer * pitch, layer * pitch + self._tile),
            slice(head * pitch, head * pitch + self._tile),
        )

    def tile_text(self, layer: int, head: int) -> str:
        text = format_head_tooltip(layer, head, self._stats)
        if self._rows is not None and self._rows_tips is not None:
            text += "\n" + str(self._rows_tips[layer][head])
        return text

    def hover_text(self) -> str:
        return self._image.toolTip()

    def tile_center_in_view(self, layer: int, head: int):
        """Viewport coordinates (QPoint) of a tile's centre, for tests and tours."""
        frac = self._tile / (self._tile + self._gap) / 2
        scene_pt = self._vb.mapViewToScene(QPointF(head + frac, layer + frac))
        return self._view.mapFromScene(scene_pt)

    def graphics_view(self) -> pg.GraphicsLayoutWidget:
        return self._view

    def is_empty(self) -> bool:
        return self._thumbs is None

    # -- internals -------------------------------------------------------------------------
    def resizeEvent(self, event):  # noqa: N802 (Qt API)
        super().resizeEvent(event)
        self._fit_split()

    def _fit_split(self) -> None:
        """Give the mosaic the height its width needs (square tiles), the table the rest,
        until the person moves the splitter."""
        if self._thumbs is None or not self._table.isVisibleTo(self) or self._user_split:
            return
        total = self._splitter.height() - self._splitter.handleWidth()
        if total <= 0:
            return
        n_layers, n_heads = self._thumbs.shape[:2]
        left = self._plot.getAxis("left").width()
        top = self._plot.getAxis("top").height()
        pitch = max(1.0, (self._splitter.width() - left - 4) / n_heads)
        needed = int(math.ceil(top + 4 + n_layers * pitch))
        header = self._table.horizontalHeader().sizeHint().height()
        min_table = min(total // 3, 3 * self._table.verticalHeader().defaultSectionSize() + header + 4)
        mosaic = min(needed, max(total - min_table, total // 2))
        blocked = self._splitter.blockSignals(True)
        self._splitter.setSizes([mosaic, total - mosaic])
        self._splitter.blockSignals(blocked)

    def _on_splitter_moved(self, *args) -> None:
        self._user_split = True

    def _fill_table(self) -> None:
        stats = self._stats or {}
        names = list(stats)
        self._model.clear()
        columns = [HEAD_TABLE_COLUMNS.get(k, (k.replace("_", " "), k.replace("_", " "), lambda v: f"{v:.3g}"))
                   for k in names]
        self._model.setHorizontalHeaderLabels(["layer", "head"] + [c[0] for c in columns])
        for c, column in enumerate(columns, start=2):
            self._model.setHeaderData(c, Qt.Orientation.Horizontal, column[1], Qt.ItemDataRole.ToolTipRole)
        if not names:
            self._table.setVisible(False)
            return
        formats = [c[2] for c in columns]
        arrays = [np.asarray(stats[k], dtype=np.float64) for k in names]
        n_layers, n_heads = self._thumbs.shape[:2]
        # Filled while detached from the sorting proxy: attached, every setItem re-sorts the
        # table (360 cells took ~25 ms, the window's whole budget for one turn).
        self._proxy.setSourceModel(None)
        self._model.setRowCount(n_layers * n_heads)
        for layer in range(n_layers):
            for head in range(n_heads):
                r = layer * n_heads + head
                cells = [(str(layer), layer), (str(head), head)]
                cells += [(fmt(float(a[layer, head])), float(a[layer, head])) for fmt, a in zip(formats, arrays, strict=True)]
                for c, (text, value) in enumerate(cells):
                    item = QStandardItem(text)
                    item.setData(value, SORT_ROLE)
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                    self._model.setItem(r, c, item)
        self._proxy.setSourceModel(self._model)
        self._table.setVisible(True)
        self._select_table_row()

    def _select_table_row(self) -> None:
        selection = self._table.selectionModel()
        if selection is None:
            return
        if self._current is None or self._thumbs is None or not self._stats:
            selection.clearSelection()
            return
        n_heads = self._thumbs.shape[1]
        source = self._model.index(self._current[0] * n_heads + self._current[1], 0)
        index = self._proxy.mapFromSource(source)
        if index.isValid():
            self._table.selectRow(index.row())
            self._table.scrollTo(index)

    def _on_table_clicked(self, index) -> None:
        layer = int(self._proxy.index(index.row(), 0).data(SORT_ROLE))
        head = int(self._proxy.index(index.row(), 1).data(SORT_ROLE))
        self.set_current(layer, head)
        self.head_selected.emit(layer, head)

    def _tiles(self) -> np.ndarray:
        """``[L, H, t, t]`` what the tiles show: the thumbnails, or the query's rows
        repeated over each tile's height (masked key blocks as NaN)."""
        if self._rows is None:
            return self._thumbs
        t = self._thumbs.shape[-1]
        tiles = np.repeat(self._rows[:, :, None, :], t, axis=2)
        if self._rows_masked_from is not None:
            tiles[..., self._rows_masked_from:] = np.nan
        return tiles

    def _update_title(self) -> None:
        title = "head  (rows: layer)"
        axis = self._plot.getAxis("top")
        if self._rows is not None:  # short on the axis (the dock is narrow), whole in the tooltip
            title = f"row of {self._rows_caption.split(',')[0]}"
        axis.setLabel(title, color=self._fg.name())
        axis.setToolTip(f"Each tile: the attention row of {self._rows_caption}" if self._rows is not None else "")

    def _render(self) -> None:
        th = self._tiles()
        n_layers, n_heads, t, _ = th.shape
        gap = max(1, t // 16)
        pitch = t + gap
        self._tile, self._gap = t, gap
        # per-tile scaling to its own maximum: the overview shows the shape of a pattern
        gone = np.isnan(th)
        peak = np.where(gone, 0.0, th).reshape(n_layers, n_heads, -1).max(axis=-1)
        norm = np.where(gone, 0.0, th) / np.where(peak > 0, peak, 1.0)[..., None, None]
        rgba_tiles = colorize(norm, self._cmap_name, levels=(0.0, 1.0))  # [L, H, t, t, 4]
        if gone.any():
            rgba_tiles[gone] = (MASKED_BACKGROUND.red(), MASKED_BACKGROUND.green(), MASKED_BACKGROUND.blue(), 255)
        if self._masked and self._rows is None:
            upper = np.triu(np.ones((t, t), bool), k=1)
            rgba_tiles[:, :, upper] = (
                MASKED_BACKGROUND.red(),
                MASKED_BACKGROUND.green(),
                MASKED_BACKGROUND.blue(),
                255,
            )
        # place tiles with one strided assignment: [L, t, H, t, 4] view of the padded grid
        padded = np.zeros((n_layers * pitch, n_heads * pitch, 4), np.uint8)
        grid = padded.reshape(n_layers, pitch, n_heads, pitch, 4)
        grid[:, :t, :, :t] = rgba_tiles.transpose(0, 2, 1, 3, 4)
        mosaic = np.ascontiguousarray(padded[: n_layers * pitch - gap, : n_heads * pitch - gap])
        self._image.setImage(mosaic, autoLevels=False)
        self._image.setRect(QRectF(0, 0, mosaic.shape[1] / pitch, mosaic.shape[0] / pitch))

    def _update_axes(self) -> None:
        n_layers, n_heads = self._thumbs.shape[:2]
        fm = QFontMetricsF(self._plot.getAxis("left").style.get("tickFont") or self.font())
        self._plot.getAxis("left").setWidth(int(math.ceil(fm.horizontalAdvance(str(n_layers - 1)) + 6)))
        half = self._tile / (self._tile + self._gap) / 2
        head_step = max(1, math.ceil(n_heads / 24))
        layer_step = max(1, math.ceil(n_layers / 24))
        self._plot.getAxis("top").setTicks(
            [[(h + half, str(h)) for h in range(0, n_heads, head_step)], []]
        )
        self._plot.getAxis("left").setTicks(
            [[(lay + half, str(lay)) for lay in range(0, n_layers, layer_step)], []]
        )

    def _update_frame(self) -> None:
        if self._current is None or self._thumbs is None:
            self._frame.setVisible(False)
            return
        layer, head = self._current
        n_layers, n_heads = self._thumbs.shape[:2]
        if not (0 <= layer < n_layers and 0 <= head < n_heads):
            self._frame.setVisible(False)
            return
        size = self._tile / (self._tile + self._gap)
        self._frame.setRect(QRectF(head, layer, size, size))
        self._frame.setVisible(True)

    def _tile_at(self, scene_pos: QPointF) -> tuple[int, int] | None:
        if self._thumbs is None or not self._vb.sceneBoundingRect().contains(scene_pos):
            return None
        pt = self._vb.mapSceneToView(scene_pos)
        layer, head = int(math.floor(pt.y())), int(math.floor(pt.x()))
        n_layers, n_heads = self._thumbs.shape[:2]
        if 0 <= layer < n_layers and 0 <= head < n_heads:
            return layer, head
        return None

    # -- handlers --------------------------------------------------------------------------
    def _on_mouse_moved(self, scene_pos: QPointF) -> None:
        tile = self._tile_at(scene_pos)
        if tile == self._hover:
            return
        self._hover = tile
        if tile is None:
            self._image.setToolTip("")
            return
        self._image.setToolTip(self.tile_text(*tile))
        self.head_hovered.emit(*tile)

    def _on_mouse_clicked(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            return
        tile = self._tile_at(event.scenePos())
        if tile is not None:
            self.set_current(*tile)
            self.head_selected.emit(*tile)
