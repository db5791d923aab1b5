"""The model view: every layer x head as a small heatmap, drawn as one mosaic image.

Rows are layers (0 at the top), columns are heads (0 at the left); indices are 0-based
everywhere, as in the rest of the app. Each tile is a thumbnail of one head's
``A[query, key]`` (see ``analysis.attention.head_stats.head_thumbnails``), coloured from 0 to *that
tile's own maximum*: the overview is for the *shape* of each head's pattern (diagonal,
previous token, [CLS] column, broad); exact values are in the tooltip statistics and
the main heatmap. Causal models: cells of the upper triangle are neutral grey.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPalette, QPen
from PySide6.QtWidgets import QGraphicsRectItem, QWidget

from widgets.colormaps import DEFAULT_COLORMAP, MASKED_BACKGROUND, colorize, get_colormap
from widgets.empty_state import hint_label, hint_stack

__all__ = ["HeadOverview", "EMPTY_HINT", "format_head_tooltip"]

EMPTY_HINT = "Type a text and press Ctrl+Enter to see every layer and head"

_STAT_FORMATS = {
    "entropy": lambda v: f"entropy: {v:.2f} nats",
    "special_share": lambda v: f"attention to special tokens: {100 * v:.1f} %",
    "mean_distance": lambda v: f"mean attention distance: {v:.1f} tokens",
}


def format_head_tooltip(layer: int, head: int, stats: Mapping[str, np.ndarray] | None) -> str:
    """``"Layer 3 · head 7"`` and one line per statistic."""
    lines = [f"Layer {layer} · head {head}"]
    for key, values in (stats or {}).items():
        v = float(np.asarray(values)[layer, head])
        fmt = _STAT_FORMATS.get(key)
        lines.append(fmt(v) if fmt else f"{key.replace('_', ' ')}: {v:.3g}")
    return "\n".join(lines)


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
        self._plot = self._view.addPlot()
        self._plot.invertY(True)
        self._plot.setDefaultPadding(0.01)
        self._plot.hideButtons()
        self._plot.setMenuEnabled(False)
        self._plot.setMouseEnabled(x=False, y=False)
        self._plot.setAspectLocked(True)
        self._plot.showAxis("top")
        self._plot.hideAxis("bottom")
        for side, text in (("left", "layer"), ("top", "head")):
            ax = self._plot.getAxis(side)
            ax.setPen(self._fg)
            ax.setTextPen(self._fg)
            ax.setLabel(text, color=self._fg.name())
            ax.setStyle(tickLength=0)
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

        self._stack = hint_stack(self, self._hint, self._view)

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
        self._hover = None
        if self._current is not None and not (
            self._current[0] < n_layers and self._current[1] < n_heads
        ):
            self._current = None
        self._render()
        self._update_axes()
        self._update_frame()
        self._vb.autoRange(padding=0.01)
        self._stack.setCurrentWidget(self._view)

    def clear(self) -> None:
        self._thumbs = None
        self._stats = None
        self._current = None
        self._image.clear()
        self._frame.setVisible(False)
        self._stack.setCurrentWidget(self._hint)

    def set_current(self, layer: int | None, head: int | None = None) -> None:
        """Frame the current head (``None`` removes the frame). Emits nothing."""
        if layer is None or head is None:
            self._current = None
        else:
            self._current = (int(layer), int(head))
        self._update_frame()

    def current(self) -> tuple[int, int] | None:
        return self._current

    def set_colormap(self, name: str) -> None:
        get_colormap(name)  # validate
        self._cmap_name = name
        if self._thumbs is not None:
            self._render()

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
        return format_head_tooltip(layer, head, self._stats)

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
    def _render(self) -> None:
        th = self._thumbs
        n_layers, n_heads, t, _ = th.shape
        gap = max(1, t // 8)
        pitch = t + gap
        self._tile, self._gap = t, gap
        # per-tile scaling to its own maximum: the overview shows the shape of a pattern
        peak = th.reshape(n_layers, n_heads, -1).max(axis=-1)
        norm = th / np.where(peak > 0, peak, 1.0)[..., None, None]
        rgba_tiles = colorize(norm, self._cmap_name, levels=(0.0, 1.0))  # [L, H, t, t, 4]
        if self._masked:
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
