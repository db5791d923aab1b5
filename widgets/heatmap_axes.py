"""The heatmap's axes and backdrop: token tick labels and the hatched "masked" area.

* :class:`TokenAxis`: an axis whose ticks are token labels at integer positions,
  thinned to a "nice" stride so they never overlap, the selected token always shown;
* :func:`axis_labels`: token strings as the axes write them (escaped, elided, indexed);
* :func:`make_colorbar` and :func:`label_colorbar`: the colour bar and what its axes
  say for a linear, log or signed scale; :func:`value_levels`: the colour range;
  :func:`format_weight`: a value as the hover text writes it;
* :class:`HatchedRect`: the neutral area under structurally absent cells (the causal
  upper triangle), hatched in device pixels so it looks the same on screen, in PNG and
  in SVG.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pyqtgraph as pg
from PySide6.QtCore import QLineF, QPointF, QRectF, Qt, QTimer
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QPen
from PySide6.QtWidgets import QGraphicsRectItem

from analysis.io.figure_data import (
    COLORBAR_LABELS,
    INDEX_LABELS_FROM,
    MAX_LABEL_CHARS,
    axis_labels,
    check_levels,
    colorbar_title,
    format_weight,
    nice_step,
    value_levels,
)
from widgets.colormaps import MASKED_BACKGROUND, MASKED_HATCH

GENERATED_LABEL = QColor(191, 91, 0)  # labels of generated tokens (a generation's answer)

__all__ = [
    "COLORBAR_LABELS",
    "HatchedRect",
    "TokenAxis",
    "axis_labels",
    "check_levels",
    "colorbar_title",
    "format_weight",
    "label_colorbar",
    "make_colorbar",
    "stride_note",
    "value_levels",
    "value_name",
    "VALUE_NAMES",
    "INDEX_LABELS_FROM",
    "MAX_LABEL_CHARS",
    "MAX_LABEL_PX",
]

MAX_LABEL_PX = 130  # axis room for labels, in pixels
_nice_step = nice_step


def make_colorbar(cmap: pg.ColorMap, fg: QColor) -> pg.ColorBarItem:
    """A non-interactive 16 px colour bar in the foreground colour ``fg``, titled for
    attention weights, with room for "0.0001" (log scale) on its tick axis."""
    bar = pg.ColorBarItem(
        values=(0.0, 1.0),
        colorMap=cmap,
        width=16,
        interactive=False,
        label=COLORBAR_LABELS["linear"],
        colorMapMenu=False,
    )
    for side in ("left", "right", "top", "bottom"):
        ax = bar.getAxis(side)
        ax.setPen(fg)
        ax.setTextPen(fg)
    bar.getAxis("left").setLabel(COLORBAR_LABELS["linear"], color=fg.name())
    bar.getAxis("right").setStyle(hideOverlappingLabels=False)
    bar.getAxis("right").setWidth(60)
    return bar


#: What a view's numbers are, by view kind (the colour bar's title, see value_name).
VALUE_NAMES = {
    "head": "attention weight",
    "mean": "mean attention weight of the heads",
    "max": "largest attention weight of the heads",
    "rollout": "attention rollout",
    "flow": "attention rollout (flow: in the token view)",
    "value_norm": "value-norm share",
    "alti": "ALTI contribution",
    "value_zeroing": "value-zeroing contribution",
}


#: What a rollout or flow goes through, as the colour bar names it ("ALTI rollout").
THROUGH_NAMES = {"value_norm": "value-norm", "alti": "ALTI", "value_zeroing": "value-zeroing"}


def value_name(kind: str, *, stack: str = "self", signed: bool = False, through: str = "attention") -> str:
    """What the numbers of a view of ``kind`` are, for the colour bar: "attention weight"
    for one head, "ALTI contribution" for ALTI, ...; "cross-attention weight" on the cross
    stack; a rollout or flow ``through`` a contribution names it ("ALTI rollout"); a
    signed view says so ("signed score"). The flow view's matrix is the rollout (the flow
    itself is in the token view), and its title says that.

    Examples
    --------
    >>> value_name("max")
    'largest attention weight of the heads'
    >>> value_name("head", stack="cross")
    'cross-attention weight'
    >>> value_name("rollout", through="alti")
    'ALTI rollout'
    """
    if signed:
        return "signed score"
    name = VALUE_NAMES.get(kind, "value")
    if kind in ("rollout", "flow") and through in THROUGH_NAMES:
        name = name.replace("attention rollout", f"{THROUGH_NAMES[through]} rollout")
    if stack == "cross":
        name = name.replace("attention weight", "cross-attention weight")
    return name


def stride_note(step: int) -> str:
    """What an axis title adds when its labels are thinned: "" for every label,
    " · every 2nd label" for a stride of 2, " · every 5th label", ...

    Examples
    --------
    >>> stride_note(1), stride_note(2), stride_note(20)
    ('', ' · every 2nd label', ' · every 20th label')
    """
    step = int(step)
    if step <= 1:
        return ""
    suffix = "th" if 10 <= step % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(step % 10, "th")
    return f" · every {step}{suffix} label"


def label_colorbar(bar: pg.ColorBarItem, scale: str, levels: tuple[float, float],
                   fg: QColor, name: str | None = None) -> None:
    """Title the bar for ``scale`` ("linear", "log", "signed") and what the numbers are
    (``name``, see :func:`colorbar_title`); on the log scale (levels in log10 units) tick
    every power of ten with its real value ("0.001")."""
    axis = bar.getAxis("right")
    if scale == "log":
        lo, hi = levels
        eps = 1e-6 * (hi - lo)  # keep end ticks inside the axis despite rounding
        ticks = [
            (min(max(k, lo + eps), hi - eps), f"{10.0**k:g}")
            for k in range(math.ceil(lo), math.floor(hi) + 1)
        ]
        axis.setTicks([ticks, []])
    else:
        axis.setTicks(None)
    title = colorbar_title(scale, name)
    axis = bar.getAxis("left")
    if axis.labelText != title:
        axis.setLabel(title, color=fg.name())


class TokenAxis(pg.AxisItem):
    """An axis whose ticks are token labels at integer positions.

    Labels are thinned to a "nice" stride (1, 2, 5, 10, ...) chosen from the font height
    and the pixels per cell, so they never overlap; the stride is recomputed whenever the
    axis repaints (zoom, pan, resize). Tick positions are multiples of the stride, so
    they stay put while panning. The bottom axis writes its labels vertically. The
    selected token's label is always drawn, in bold, and its neighbours make room.
    ``on_step_changed(step)``, when set, is called (on a later turn of the event loop)
    whenever the stride changes, so the axis title can say "every 2nd label".
    """

    def __init__(self, orientation: str, **kwargs):
        super().__init__(orientation, **kwargs)
        self._texts: list[str] = []
        self._visible: list[int] = []
        self._step = 1
        self._selected: int | None = None
        self._marked_from: int | None = None  # labels from this index on are tinted (generated tokens)
        self._font = QFont()
        self._highlight = QColor(0, 0, 0)
        self._widest = 0.0
        self._max_px = MAX_LABEL_PX
        self._announced_step = 1
        self.on_step_changed = None
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

    def set_marked_from(self, index: int | None) -> None:
        """Tint the labels from ``index`` on (a generation's answer); None: no tint."""
        self._marked_from = index
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
        if self._step != self._announced_step and self.on_step_changed is not None:
            self._announced_step = self._step
            step = self._step
            QTimer.singleShot(0, self, lambda: self.on_step_changed(step))  # not while painting

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
            text_specs.append((rect, flags, text, idx == self._selected,
                               self._marked_from is not None and idx >= self._marked_from))
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
        for rect, flags, text, selected, marked in textSpecs:
            p.setFont(bold if selected else self._font)
            p.setPen(QPen(self._highlight) if selected else QPen(GENERATED_LABEL) if marked else self.textPen())
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
