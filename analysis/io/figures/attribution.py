"""Figures of an attribution: the token strip and the bar chart (no Qt).

Both colour a score with one diverging map centred at 0 (:func:`diverging_color`): red
raises the target, blue lowers it, white is 0; an unsigned method (saliency, a total over
a generation's rows) goes from white to red. The scale is the largest ``|score|``, stated
in the legend, so two figures of the same input are comparable only when their legends
say the same scale.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from analysis.io.figures.base import (
    APPROX_METRICS,
    AXIS_SIZE,
    FRAME_COLOR,
    LABEL_SIZE,
    MARGIN,
    TEXT_COLOR,
    TICK_SIZE,
    Figure,
    Line,
    Rect,
    Text,
    TextMetrics,
    _clean_text,
    _elide,
    _notes,
    _title,
    nice_ticks,
)
from analysis.io.numbers import format_number

__all__ = ["diverging_color", "attribution_strip_figure", "attribution_bars_figure", "BAR_COUNT"]

BLUE, WHITE, RED = np.array([33, 102, 172]), np.array([255, 255, 255]), np.array([178, 24, 43])
SELECTED_COLOR = "#1f4fd1"
BAR_COUNT = 25  # the bar chart shows the strongest units


def diverging_color(value: float, scale: float) -> str:
    """``#rrggbb`` for ``value`` on a blue-white-red map centred at 0, ``|value| = scale``
    at the ends (values beyond are clipped; a scale of 0 gives white).

    Examples
    --------
    >>> diverging_color(0.0, 1.0), diverging_color(1.0, 1.0), diverging_color(-2.0, 1.0)
    ('#ffffff', '#b2182b', '#2166ac')
    """
    t = 0.0 if not scale > 0 or not math.isfinite(value) else max(-1.0, min(1.0, value / scale))
    rgb = WHITE + (RED - WHITE) * t if t >= 0 else WHITE + (BLUE - WHITE) * -t
    return "#{:02x}{:02x}{:02x}".format(*(int(round(c)) for c in rgb))


def _scale(scores: np.ndarray) -> float:
    finite = np.abs(scores[np.isfinite(scores)])
    return float(finite.max()) if finite.size else 0.0


def _legend(fig: Figure, x: float, y: float, scale: float, signed: bool, metrics: TextMetrics) -> float:
    """A horizontal colour bar from -scale (or 0) to +scale with three labels; returns the
    bottom of the legend."""
    width, height, slices = 240.0, 10.0, 48
    lo = -scale if signed else 0.0
    for k in range(slices):
        value = lo + (scale - lo) * (k + 0.5) / slices
        fig.items.append(Rect(x + k * width / slices, y, width / slices + (0.6 if k < slices - 1 else 0.0), height,
                              fill=diverging_color(value, scale), crisp=True))
    fig.items.append(Rect(x, y, width, height, stroke=FRAME_COLOR, stroke_width=0.8))
    ty = y + height + TICK_SIZE * 1.25
    left = f"{format_number(-scale, 3)} lowers" if signed else "0"
    fig.items.append(Text(x, ty, left, TICK_SIZE, TEXT_COLOR))
    if signed:
        fig.items.append(Text(x + width / 2, ty, "0", TICK_SIZE, TEXT_COLOR, anchor="middle"))
    fig.items.append(Text(x + width, ty, f"{format_number(scale, 3)} raises", TICK_SIZE, TEXT_COLOR, anchor="end"))
    return ty + 4


def attribution_strip_figure(
    labels: Sequence[str],
    scores,
    *,
    signed: bool = True,
    title: str = "",
    notes: Sequence[str] = (),
    selected: int | None = None,
    metrics: TextMetrics | None = None,
    width: float = 720.0,
) -> Figure:
    """The input's units (tokens or words) as chips coloured by their scores, wrapped to
    ``width``, with a colour legend and ``notes`` (f(x), f(baseline), convergence) below.

    Parameters
    ----------
    labels : sequence of str
        One label per unit, as the units are listed (``##piece`` markers kept).
    scores : array [n]
        One score per unit; NaN (not a candidate: a special token) is drawn grey.
    signed : bool, default True
        Blue-white-red centred at 0; False draws ``|score|`` from white to red.
    selected : int, optional
        A unit drawn with a blue frame and bold label (a highlight, only when given).

    Returns
    -------
    Figure

    Examples
    --------
    >>> fig = attribution_strip_figure(["The", "cat", "sat"], [0.5, -0.2, 0.0], title="IG")
    >>> fig.meta["units"], sorted(c for c in fig.colors() if c == "#b2182b")
    (3, ['#b2182b'])
    """
    metrics = metrics or APPROX_METRICS
    values = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(labels) != values.size:
        raise ValueError(f"{len(labels)} labels for {values.size} scores")
    if values.size == 0:
        raise ValueError("nothing to draw: there are no units")
    scale = _scale(values)
    fig = Figure(0, 0, title=title or "attribution",
                 description="Attention Atlas attribution: each unit coloured by its score (red raises the "
                             "target, blue lowers it)")
    fig.notes = [str(n) for n in notes if n]
    y, title_w = _title(fig, title, metrics)
    size, pad, gap = 13, 4.0, 4.0
    line_h = size * 1.9
    x, right = MARGIN, MARGIN + width
    y += 2
    widest = 0.0
    for unit, (label, value) in enumerate(zip(labels, values, strict=True)):
        text = _elide(_clean_text(label), 40)
        bold = unit == selected
        w = metrics.width(text, size, bold) + 2 * pad
        if x > MARGIN and x + w > right:
            x, y = MARGIN, y + line_h
        shown = value if signed else abs(value)
        fill = "#e4e7eb" if not math.isfinite(value) else diverging_color(shown, scale)
        frame = dict(stroke=SELECTED_COLOR, stroke_width=2.0) if bold else dict(stroke="#cbd2d9", stroke_width=0.6)
        fig.items.append(Rect(x, y, w, size * 1.5, fill=fill, title=f"{text}: {format_number(value, 4)}",
                              **frame))
        dark = math.isfinite(value) and scale > 0 and abs(shown) / scale > 0.6
        fig.items.append(Text(x + pad, y + size * 1.08, text, size, "#ffffff" if dark else TEXT_COLOR, bold=bold))
        x += w + gap
        widest = max(widest, x - gap)
    y += size * 1.5 + 14
    bottom = _legend(fig, MARGIN, y, scale, signed, metrics)
    right = max(widest, title_w + MARGIN, MARGIN + 260.0)
    bottom = _notes(fig, bottom + 4, right - MARGIN, metrics)  # wrapped to the drawing, never cut
    fig.width = right + MARGIN
    fig.height = bottom + MARGIN
    fig.meta.update(units=int(values.size), scale=scale, signed=bool(signed))
    return fig


def attribution_bars_figure(
    labels: Sequence[str],
    scores,
    *,
    title: str = "",
    count: int = BAR_COUNT,
    notes: Sequence[str] = (),
    metrics: TextMetrics | None = None,
) -> Figure:
    """The ``count`` units with the largest ``|score|`` as horizontal bars, strongest on
    top, coloured like the strip, each with its value; a zero line and a score axis.

    Examples
    --------
    >>> fig = attribution_bars_figure(["a", "b", "c"], [0.1, -0.5, 0.2], count=2)
    >>> fig.meta["order"]
    [1, 2]
    """
    metrics = metrics or APPROX_METRICS
    values = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(labels) != values.size:
        raise ValueError(f"{len(labels)} labels for {values.size} scores")
    finite = np.where(np.isfinite(values), values, 0.0)
    candidates = np.flatnonzero(np.isfinite(values))  # NaN: not a candidate (special tokens)
    ranked = candidates[np.argsort(-np.abs(finite[candidates]), kind="stable")]
    order = [int(i) for i in ranked[: max(1, int(count))]]
    if not order:
        raise ValueError("nothing to draw: no unit has a score")
    fig = Figure(0, 0, title=title or "attribution", description="Attention Atlas attribution: strongest units")
    fig.notes = [str(n) for n in notes if n]
    y0, title_w = _title(fig, title, metrics)
    shown = [_elide(_clean_text(labels[i]), 32) for i in order]
    label_w = max(metrics.width(t, LABEL_SIZE) for t in shown)
    lo, hi = min(0.0, float(finite[order].min())), max(0.0, float(finite[order].max()))
    if hi - lo <= 0:
        hi = 1.0
    plot_x, plot_w = MARGIN + label_w + 8, 420.0
    bar_h, pitch = 14.0, 19.0
    value_room = metrics.width(format_number(-max(abs(lo), hi), 3), TICK_SIZE) + 6

    def at(v: float) -> float:
        return plot_x + value_room + (v - lo) / (hi - lo) * plot_w

    scale = max(abs(lo), abs(hi))
    for row, (unit, text) in enumerate(zip(order, shown, strict=True)):
        top = y0 + 4 + row * pitch
        v = float(finite[unit])
        fig.items.append(Text(plot_x - 6, top + bar_h * 0.78, text, LABEL_SIZE, TEXT_COLOR, anchor="end"))
        x1, x2 = sorted((at(0.0), at(v)))
        fig.items.append(Rect(x1, top, max(x2 - x1, 0.5), bar_h, fill=diverging_color(v, scale), stroke="#555555",
                              stroke_width=0.6, title=f"{text}: {format_number(values[unit], 4)}"))
        label = format_number(values[unit], 3)
        if v >= 0:
            fig.items.append(Text(x2 + 3, top + bar_h * 0.78, label, TICK_SIZE, TEXT_COLOR))
        else:
            fig.items.append(Text(x1 - 3, top + bar_h * 0.78, label, TICK_SIZE, TEXT_COLOR, anchor="end"))
    bottom = y0 + 4 + len(order) * pitch
    fig.items.append(Line(at(0.0), y0, at(0.0), bottom, stroke=FRAME_COLOR, width=0.8))
    fig.items.append(Line(at(lo), bottom + 2, at(hi), bottom + 2, stroke=FRAME_COLOR, width=0.8))
    for v, text in nice_ticks(lo, hi, 5):
        fig.items.append(Line(at(v), bottom + 2, at(v), bottom + 6, stroke=FRAME_COLOR, width=0.8))
        fig.items.append(Text(at(v), bottom + 8 + TICK_SIZE, text, TICK_SIZE, TEXT_COLOR, anchor="middle"))
    axis_y = bottom + 10 + TICK_SIZE + AXIS_SIZE * 1.2
    fig.items.append(Text(at((lo + hi) / 2), axis_y, "score", AXIS_SIZE, TEXT_COLOR, anchor="middle"))
    right = at(hi) + value_room + MARGIN
    bottom = _notes(fig, axis_y + 4, right - 2 * MARGIN, metrics)
    fig.width = max(right, title_w + 2 * MARGIN)
    fig.height = bottom + MARGIN
    fig.meta.update(order=order)
    return fig
