"""Figures as data: the heatmap, head overview, token view and graph as shapes and texts.

A :class:`Figure` is a list of drawing primitives (:class:`Rect`, :class:`Line`,
:class:`Path`, :class:`Circle`, :class:`Text`, :class:`Image`) in one coordinate system
(figure units: CSS pixels, 1/96 inch, y down), laid out from a view's data: matrix
cells, token labels, node positions, edges, colours. No Qt here: the same figure is
written as SVG by :func:`to_svg` (this module), embedded in the HTML report
(:mod:`analysis.io.report`), and painted by Qt onto PNG and PDF
(:mod:`widgets.figure_export`), so the three formats show the same drawing.

What makes the SVG portable (it renders alike in browsers, Inkscape, librsvg/rsvg-convert,
pandoc and LaTeX pipelines): every shape is a plain element in figure units; the only
transform is ``rotate`` on vertical labels; no clip paths, no non-scaling strokes, no
symbol atlases; heatmap cells are ``<rect>`` elements (slightly overlapping, so no
renderer shows seams between them) up to :data:`MAX_VECTOR_CELLS` cells, beyond which
the cells are one embedded bitmap and the figure says so in a note.

Layouts measure their labels with a :class:`TextMetrics` (Qt's font metrics when drawn
by the widgets; :class:`ApproxMetrics`, a slightly generous estimate, for the report)
and size every margin from the widest label, so no label is ever cut.

Conventions as elsewhere: ``A[i, j]`` is how much query ``i`` attends to key ``j``;
heatmap rows are queries, columns keys; graph edge ``i -> j`` means "i attends to j".
"""

from __future__ import annotations

import base64
import csv
import math
import os
import struct
import unicodedata
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from analysis.options import COMMUNITY_PALETTE, NO_COMMUNITY_COLOR  # noqa: F401  (re-exported)

__all__ = [
    "APPROX_METRICS",
    "COLORBAR_LABELS",
    "COLORMAP_NAMES",
    "COMMUNITY_PALETTE",
    "FONT_FAMILY",
    "LOG_FLOOR",
    "MAX_VECTOR_CELLS",
    "ApproxMetrics",
    "Circle",
    "Figure",
    "Image",
    "Line",
    "Path",
    "Rect",
    "Text",
    "TextMetrics",
    "axis_labels",
    "check_levels",
    "colorize",
    "colormap_lut",
    "community_colors",
    "encode_png",
    "format_head_stat",
    "format_weight",
    "graph_figure",
    "head_table",
    "heads_figure",
    "heatmap_figure",
    "highlight_colors",
    "nice_ticks",
    "to_svg",
    "token_colors",
    "token_pieces",
    "tokens_figure",
    "value_levels",
    "write_head_table_csv",
]

# ----------------------------------------------------------------------------- primitives


@dataclass(frozen=True, slots=True)
class Rect:
    """An axis-aligned rectangle; ``title`` becomes a tooltip in SVG/HTML. ``crisp``
    rectangles (heatmap cells) are painted without antialiasing so they tile exactly."""

    x: float
    y: float
    w: float
    h: float
    fill: str | None = None
    fill_opacity: float = 1.0
    stroke: str | None = None
    stroke_width: float = 0.0
    stroke_opacity: float = 1.0
    title: str | None = None
    crisp: bool = False
    cls: str | None = None


@dataclass(frozen=True, slots=True)
class Line:
    x1: float
    y1: float
    x2: float
    y2: float
    stroke: str = "#000000"
    width: float = 1.0
    opacity: float = 1.0


@dataclass(frozen=True, slots=True)
class Path:
    """Commands ``("M", x, y)``, ``("L", x, y)``, ``("Q", cx, cy, x, y)``, ``("Z",)``.

    One path is stroked (and filled) as one shape: overlapping parts of a translucent
    path do not add up, in Qt as in SVG."""

    commands: tuple
    stroke: str | None = "#000000"
    width: float = 1.0
    opacity: float = 1.0
    fill: str | None = None
    fill_opacity: float = 1.0
    dash: tuple[float, ...] | None = None
    cap: str = "round"  # round | butt | square


@dataclass(frozen=True, slots=True)
class Circle:
    cx: float
    cy: float
    r: float
    fill: str | None = "#000000"
    stroke: str | None = None
    stroke_width: float = 0.0
    dash: tuple[float, ...] | None = None
    title: str | None = None


@dataclass(frozen=True, slots=True)
class Text:
    """A line of text; ``(x, y)`` is on the baseline, at its start, middle or end
    (``anchor``); ``rotate`` (degrees, clockwise) turns it about that point."""

    x: float
    y: float
    text: str
    size: int = 11
    color: str = "#1f2933"
    anchor: str = "start"  # start | middle | end
    bold: bool = False
    rotate: float = 0.0
    underline: bool = False


@dataclass(frozen=True, slots=True)
class Image:
    """An RGBA bitmap ``uint8 [rows, cols, 4]`` stretched over a rectangle, without
    smoothing (used only for matrices above :data:`MAX_VECTOR_CELLS` cells)."""

    x: float
    y: float
    w: float
    h: float
    rgba: np.ndarray


@dataclass
class Figure:
    """A drawing of ``width x height`` figure units (CSS px) on ``background``."""

    width: float
    height: float
    items: list = field(default_factory=list)
    title: str = ""
    description: str = ""
    notes: list[str] = field(default_factory=list)  # also drawn; repeated in the SVG's <desc>
    background: str = "#ffffff"
    #: where things are, for scripts and the HTML report (heatmap: x0, y0, cell, rows,
    #: cols, vector; heads: x0, y0, pitch, tile; graph: nodes [[x, y], ...], labels)
    meta: dict = field(default_factory=dict)

    def count(self, kind: type) -> int:
        """How many primitives of one kind (``fig.count(Rect)``)."""
        return sum(isinstance(i, kind) for i in self.items)

    def colors(self) -> set[str]:
        """Every colour used by a primitive (lower-case ``#rrggbb``)."""
        out: set[str] = set()
        for item in self.items:
            for name in ("fill", "stroke", "color"):
                value = getattr(item, name, None)
                if isinstance(value, str):
                    out.add(value.lower())
        return out


# ----------------------------------------------------------------------------- text


FONT_FAMILY = "DejaVu Sans"
#: what an SVG asks for: the family the figures are measured with, then common fallbacks
SVG_FONT_STACK = "'DejaVu Sans', Verdana, 'Liberation Sans', Arial, Helvetica, sans-serif"
TEXT_COLOR = "#1f2933"
MUTED_COLOR = "#52606d"
FRAME_COLOR = "#3e4c59"

TITLE_SIZE = 15
AXIS_SIZE = 12
LABEL_SIZE = 11
TICK_SIZE = 10
NOTE_SIZE = 10
MARGIN = 16.0
BASELINE = 0.36  # a line's baseline sits this many em below its visual centre


class TextMetrics(Protocol):
    """What a layout needs to know about text: its advance width in figure units."""

    def width(self, text: str, size: float, bold: bool = False) -> float: ...


class ApproxMetrics:
    """Advance widths estimated from character classes (a little wider than DejaVu Sans,
    which is wide): for layouts made without Qt, e.g. the HTML report, so that labels
    fit in whichever font the browser picks."""

    _NARROW = set("ijlI.,:;'|!()[]{}`\"/\\ tfr-")
    _WIDE = set("mwMW@%&")

    def width(self, text: str, size: float, bold: bool = False) -> float:
        em = 0.0
        for ch in text:
            if ch in self._NARROW:
                em += 0.36
            elif ch in self._WIDE:
                em += 0.98
            elif ch.isupper():
                em += 0.74
            elif ch.isdigit() or ch.isascii():
                em += 0.64
            elif unicodedata.east_asian_width(ch) in ("W", "F"):
                em += 1.0
            else:
                em += 0.7
        return em * size * (1.08 if bold else 1.0)


APPROX_METRICS = ApproxMetrics()


def _clean_text(text: str) -> str:
    """Text that XML can hold: control characters shown as escapes, no lone surrogates."""
    out = []
    for ch in str(text):
        code = ord(ch)
        if ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif code < 0x20 or code == 0x7F or 0xD800 <= code <= 0xDFFF or code in (0xFFFE, 0xFFFF):
            out.append(f"\\x{code:02x}" if code < 0x100 else "\ufffd")
        else:
            out.append(ch)
    return "".join(out)


def _elide(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _wrap(text: str, size: float, width: float, metrics: TextMetrics) -> list[str]:
    """Greedy word wrap of one paragraph to ``width`` figure units."""
    words = text.split()
    lines: list[str] = []
    line = ""
    for word in words:
        trial = f"{line} {word}" if line else word
        if line and metrics.width(trial, size) > width:
            lines.append(line)
            line = word
        else:
            line = trial
    if line:
        lines.append(line)
    return lines or [""]


# ----------------------------------------------------------------------------- colours

#: colour maps as 65 evenly spaced stops (``rrggbb`` each), sampled from pyqtgraph's maps
#: that the widgets use (viridis, magma, inferno, cividis, CET-L12 "blues", CET-D1 "signed");
#: linear interpolation between stops is within 4/255 of pyqtgraph's 256-entry tables
#: (regenerated from widgets.colormaps.lookup_table; a test checks they agree).
_STOPS: dict[str, str] = {
    "viridis": (
        "44015446075a470d6047136548186a481d6f482374482878472d7b46327e453781443b84424086404588"
        "3e49893d4e8a3b528b39568c375b8d355f8d33638d31678e2f6b8e2e6f8e2c728e2a768e297a8e277e8e"
        "26828e25858e23898e228d8d21918c20938c1f978b1e9b8a1f9f881fa28721a68524aa8327ad812cb17e"
        "31b57b37b8783dbc7444bf704cc26c54c5685cc86365cb5e6ece5877d15381d34d8bd64695d840a0da39"
        "aadc32b5de2bc0df25cae11fd5e21adfe318eae51af4e61efde725"
    ),
    "magma": (
        "00000402010903031206051a0a08220e0b2b130d34180f3d1d114722115029115a2f116336106b3d0f71"
        "440f764a107951127c57157e5d177f641a806a1c81701f817621817c2382832681892881902a81962c80"
        "9c2e7fa3307eaa337db0357bb73779bc3978c23b75c83e73cf4070d5446ddb476ae04c67e55064ea5661"
        "ee5b5ef2625df4695cf7705cf9785dfa7f5efb8761fc8e64fd9668fe9d6cfea571feac76feb47bfebb81"
        "fec287feca8dfed194fed89afde0a1fde7a9fceeb0fcf6b8fcfdbf"
    ),
    "inferno": (
        "00000402010a04031207051b0b072410092d150b371b0c41210c4a280b532f0a5b3609613d0965440a68"
        "4a0c6b510e6c57106e5d126e64156e6a176e71196e771c6d7d1e6d84206b8a226a9025689727669d2964"
        "a32c61a92e5eb0315bb63458bc3754c03a51c63d4dcb4149d04545d54a41da4e3cdf5337e35933e75e2e"
        "eb6429ee6a24f1711ff37819f67e14f8850ff98c0afa9407fb9b06fca309fcaa0ffcb216fbba1ffac228"
        "f9c932f7d13df5d949f4e156f2e865f1ef75f3f586f6fa96fcffa4"
    ),
    "cividis": (
        "00204d00235300265a002961002c69002e6f00306f00336f06366e15396d1f3c6d263f6c2d426c32456b"
        "38486b3d4a6b414d6b46506b4a536b4e566c52596c565c6d595f6d5d616e61646f646770686a716c6d72"
        "6f70737273747676767979777d7c78807e798481798784798b87798f8a79938e789791789b94779f9777"
        "a39a76a89e75aca174b0a473b4a872b8ab70bcaf6fc1b26dc5b56cc9b96acebc68d2c066d7c463dbc761"
        "e0cb5ee4cf5be9d358edd654f2da50f7de4cfbe248ffe642ffea46"
    ),
    "blues": (
        "f0f1f0edeff0eaedf0e8ebf0e4e9efe1e7efdee5efdbe3efd8e1eed5e0eed2deeecfdcedccdaedc9d8ec"
        "c6d6ecc3d4ecc0d2ebbdd1ebbacfeab7cde9b4cbe9b0c9e8aec7e8abc5e7a8c4e6a5c2e5a2c0e49fbee3"
        "9dbce29abae098b8df95b7de93b5dc91b3db8fb1da8dafd88aaed688acd486aad384a8d182a6cf80a4cd"
        "7ea2cb7ca0c97a9fc7789dc6769bc47399c37197c16e95c06b94bf6992be6690bc638ebb608dba5d8bb9"
        "5a89b85687b85386b74f84b64b82b54881b4447fb33f7db33b7bb2"
    ),
    "signed": (
        "2151db3155dc3e5add485ede5262de5a67df626ce06970e17075e2777ae27d7fe38484e48a88e5908ee6"
        "9592e69b97e7a09ce8a6a1e8aba7e9b0aceab6b1eabbb6ebc0bbebc5c0eccac5edcfcbedd3d0eed8d5ee"
        "dddbefe2dfefe6e4eeeae7edeee7e9efe6e6f1e2dff1ddd8f2d7d0f2d1c9f1cac1f1c4b9f0beb2f0b8aa"
        "efb2a3eeac9beda594ec9f8dea9985e9937ee78c77e68670e48069e27962e0735bde6c54db654dd95f46"
        "d7583fd45139d14932cf422bcc3924c9301dc62616c3180ec00206"
    ),
}
COLORMAP_NAMES = tuple(_STOPS)

MASKED_BACKGROUND = "#e2e2e2"
MASKED_HATCH = "#a0a0a0"


def _hex(rgb) -> str:
    return f"#{int(rgb[0]):02x}{int(rgb[1]):02x}{int(rgb[2]):02x}"


def colormap_lut(name: str, n: int = 256) -> np.ndarray:
    """``uint8 [n, 4]`` RGBA table of one of :data:`COLORMAP_NAMES` ("signed": the
    diverging map of signed values). ``ValueError`` for other names."""
    try:
        stops = _STOPS[name]
    except KeyError:
        raise ValueError(f"unknown colour map {name!r}; choose one of {', '.join(_STOPS)}") from None
    raw = np.frombuffer(bytes.fromhex(stops), dtype=np.uint8).reshape(-1, 3).astype(np.float64)
    xs = np.linspace(0.0, 1.0, raw.shape[0])
    grid = np.linspace(0.0, 1.0, n)
    lut = np.empty((n, 4), dtype=np.uint8)
    for c in range(3):
        lut[:, c] = np.round(np.interp(grid, xs, raw[:, c]))
    lut[:, 3] = 255
    return lut


def colorize(values: np.ndarray, lut: np.ndarray, levels: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """``uint8 [..., 4]`` RGBA of ``values`` through ``lut`` between ``levels``; NaN
    becomes transparent (as :func:`widgets.colormaps.colorize`)."""
    lut = np.asarray(lut, dtype=np.uint8)
    lo, hi = levels
    span = (hi - lo) or 1.0
    with np.errstate(invalid="ignore"):
        scaled = (np.asarray(values, dtype=np.float64) - lo) / span
    nan = np.isnan(scaled)
    idx = np.clip(np.nan_to_num(scaled, nan=0.0) * (len(lut) - 1) + 0.5, 0, len(lut) - 1)
    rgba = lut[idx.astype(np.intp)]
    rgba[nan] = 0
    return rgba


def _hex_table(lut: np.ndarray) -> list[str]:
    return [_hex(c) for c in np.asarray(lut)]


LIGHT_COLORMAPS = frozenset({"blues"})


def highlight_colors(name: str) -> dict[str, str]:
    """The colours of the heatmap's selection marks on colour map ``name`` (as the
    widget draws them, see :mod:`widgets.colormaps`): ``outline`` of the selected row
    and column, ``path`` squares, ``label`` of the selected token."""
    light = name in LIGHT_COLORMAPS or name == "signed"
    if name == "signed":
        path = "#008c46"
    else:
        path = "#dc143c" if name in LIGHT_COLORMAPS else "#00ffff"
    label = {"blues": "#143ca0", "signed": "#141414"}.get(name, "#c81e1e")
    return {"outline": "#141414" if light else "#ffffff", "path": path, "label": label}


# ----------------------------------------------------------------------------- numbers and labels

MAX_LABEL_CHARS = 18  # longer token labels are elided with "…"
INDEX_LABELS_FROM = 24  # from this many tokens on, labels carry their index: "12 cat"
LOG_FLOOR = 1e-4  # log scale: weights below this are drawn as this
COLORBAR_LABELS = {
    "linear": "attention weight",
    "log": "attention weight (log scale)",
    "signed": "signed value (0 = white)",
}


def axis_labels(labels: Sequence[str]) -> list[str]:
    """Labels as the axes write them: newlines and tabs escaped, longer than
    ``MAX_LABEL_CHARS`` elided with "…", prefixed by their index from
    ``INDEX_LABELS_FROM`` tokens on ("12 cat")."""
    with_index = len(labels) >= INDEX_LABELS_FROM
    out = []
    for i, lab in enumerate(labels):
        lab = str(lab).replace("\n", "\\n").replace("\t", "\\t")
        if len(lab) > MAX_LABEL_CHARS:
            lab = lab[: MAX_LABEL_CHARS - 1] + "…"
        out.append(f"{i} {lab}" if with_index else lab)
    return out


def format_weight(w: float) -> str:
    """``0.231``; tiny weights in scientific notation so they do not read as 0."""
    if w == 0 or abs(w) >= 1e-3:
        return f"{w:.3f}"
    return f"{w:.1e}"


def check_levels(levels) -> tuple[float, float] | None:
    """``(lo, hi)`` as floats (None stays None); ``ValueError`` unless finite and ``hi > lo``."""
    if levels is None:
        return None
    lo, hi = float(levels[0]), float(levels[1])
    if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
        raise ValueError(f"levels must be finite and increase, got {levels}")
    return lo, hi


def value_levels(matrix: np.ndarray, signed: bool, explicit: tuple[float, float] | None,
                 fixed: tuple[float, float] | None) -> tuple[float, float]:
    """Colour levels in value units: ``explicit`` ones (this matrix's), else ``[-m, m]``
    for signed values (``m = max |finite value|``), else ``fixed`` ones (a common scale
    for unsigned matrices), else ``0 .. max``. Without a non-zero value the top is 1."""
    if explicit is not None:
        return explicit
    finite = matrix[np.isfinite(matrix)]
    if signed:
        top = float(np.abs(finite).max()) if finite.size else 0.0
        return (-top, top) if top > 0 else (-1.0, 1.0)
    if fixed is not None:
        return fixed
    top = float(finite.max()) if finite.size else 0.0
    return 0.0, (top if top > 0 else 1.0)


def nice_step(min_step: float) -> int:
    """Smallest of 1, 2, 5, 10, 20, 50, ... that is >= ``min_step`` (label strides)."""
    if min_step <= 1:
        return 1
    exp = 10 ** math.floor(math.log10(min_step))
    for m in (1, 2, 5, 10):
        if m * exp >= min_step:
            return int(m * exp)
    return int(10 * exp)


def nice_ticks(lo: float, hi: float, target: int = 5) -> list[tuple[float, str]]:
    """About ``target`` round tick values in ``[lo, hi]`` with their labels ("0.05")."""
    span = hi - lo
    if not span > 0:
        return [(lo, f"{lo:g}")]
    raw = span / target
    mag = 10.0 ** math.floor(math.log10(raw))
    for m in (1.0, 2.0, 2.5, 5.0, 10.0):
        step = m * mag
        if step >= raw * 0.999:
            break
    decimals = max(0, -math.floor(math.log10(step) + 1e-9) + (1 if m == 2.5 else 0))
    first = math.ceil(lo / step - 1e-9)
    ticks = []
    k = first
    while k * step <= hi + step * 1e-9:
        v = k * step
        if abs(v) < step * 1e-9:
            v = 0.0
        text = f"{v:.{decimals}f}" if decimals <= 6 else f"{v:.2g}"
        ticks.append((v, text))
        k += 1
    return ticks


def _log_ticks(lo: float, hi: float) -> list[tuple[float, str]]:
    eps = 1e-6 * (hi - lo)
    return [(min(max(k, lo + eps), hi - eps), f"{10.0 ** k:g}") for k in range(math.ceil(lo), math.floor(hi) + 1)]


def _stride_ticks(n: int, cell: float, pitch: float, forced: int | None = None) -> list[int]:
    """Indices to label along an axis of ``n`` cells of ``cell`` units, never closer
    than ``pitch``; a ``forced`` index is always labelled and its neighbours make room."""
    if n == 0:
        return []
    step = nice_step(pitch / cell)
    ticks = list(range(0, n, step))
    if forced is not None and 0 <= forced < n:
        room = pitch / cell
        ticks = sorted([t for t in ticks if abs(t - forced) >= room] + [forced])
    return ticks


# ----------------------------------------------------------------------------- shared pieces


def _colorbar(x: float, y: float, h: float, lut: np.ndarray, ticks: list[tuple[float, str]],
              levels: tuple[float, float], title: str, metrics: TextMetrics,
              slices: int = 128) -> tuple[list, float]:
    """A vertical colour bar (``slices`` stacked rectangles, high values on top) with its
    tick labels and a rotated title; returns the items and the right edge."""
    items: list = []
    bar_w = 14.0
    table = _hex_table(colorize(np.linspace(0.0, 1.0, slices), lut))
    sh = h / slices
    for k in range(slices):
        top = y + h - (k + 1) * sh
        items.append(Rect(x, top, bar_w, sh + (0.6 if k < slices - 1 else 0.0), fill=table[k], crisp=True))
    items.append(Rect(x, y, bar_w, h, stroke=FRAME_COLOR, stroke_width=0.8))
    lo, hi = levels
    span = (hi - lo) or 1.0
    tick_cmds: list = []
    widest = 0.0
    for v, text in ticks:
        ty = y + h - (v - lo) / span * h
        tick_cmds += [("M", x + bar_w, ty), ("L", x + bar_w + 4, ty)]
        items.append(Text(x + bar_w + 7, ty + BASELINE * TICK_SIZE, text, TICK_SIZE, TEXT_COLOR))
        widest = max(widest, metrics.width(text, TICK_SIZE))
    if tick_cmds:
        items.append(Path(tuple(tick_cmds), stroke=FRAME_COLOR, width=0.8, cap="butt"))
    title_x = x + bar_w + 7 + widest + 8 + AXIS_SIZE * 0.8
    items.append(Text(title_x, y + h / 2, title, AXIS_SIZE, TEXT_COLOR, anchor="middle", rotate=90))
    return items, title_x + AXIS_SIZE * 0.4


def _notes(fig: Figure, y: float, width: float, metrics: TextMetrics) -> float:
    """Draw ``fig.notes`` from ``y`` (wrapped to ``width``); returns the new bottom."""
    for note in fig.notes:
        for line in _wrap(note, NOTE_SIZE, width, metrics):
            y += NOTE_SIZE * 1.35
            fig.items.append(Text(MARGIN, y, line, NOTE_SIZE, MUTED_COLOR))
    return y


def _title(fig: Figure, title: str, metrics: TextMetrics) -> tuple[float, float]:
    """The figure title at the top-left; returns (y below it, its width)."""
    if not title:
        return MARGIN, 0.0
    fig.items.append(Text(MARGIN, MARGIN + TITLE_SIZE * 0.95, title, TITLE_SIZE, TEXT_COLOR, bold=True))
    return MARGIN + TITLE_SIZE * 1.7, metrics.width(title, TITLE_SIZE, True)


# ----------------------------------------------------------------------------- heatmap

#: Heatmap cells written as vector rectangles at most (256 x 256); larger matrices are
#: drawn as one embedded bitmap (without smoothing) and the figure carries a note.
MAX_VECTOR_CELLS = 256 * 256
#: cells up to this count get a tooltip (SVG <title>: query, key, value)
MAX_CELL_TITLES = 128 * 128
HEAT_TARGET = 520.0  # figure units for the longer side of the matrix ...
HEAT_MAX_CELL = 40.0  # ... with cells no larger than this


def heatmap_figure(
    matrix: np.ndarray,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    *,
    masked: np.ndarray | None = None,
    title: str = "",
    signed: bool = False,
    levels: tuple[float, float] | None = None,
    log: bool = False,
    colormap: str = "viridis",
    lut: np.ndarray | None = None,
    metrics: TextMetrics | None = None,
    selected: int | None = None,
    path: Sequence[int] = (),
    colors: Mapping[str, str] | None = None,
    cell_titles: bool | None = None,
    max_vector_cells: int = MAX_VECTOR_CELLS,
) -> Figure:
    """The heatmap of ``matrix[R, C]`` (rows = queries, columns = keys) as a figure.

    Parameters
    ----------
    matrix, row_labels, col_labels : the values and the token labels of both axes.
    masked : bool ``[R, C]``: structurally absent cells (causal upper triangle), drawn
        light grey and hatched, never as weak attention; NaN cells count as masked.
    title : drawn at the top ("" for none).
    signed : values of any sign, coloured by the diverging "signed" map centred at 0
        with symmetric levels; the log scale does not apply to them.
    levels : colour range in value units (default: 0..max, or -m..m when signed).
    log : colour by ``log10(max(A, 1e-4))`` with a tick per power of ten.
    colormap, lut : the colour map's name and, optionally, its exact ``uint8 [n, 4]``
        table (the widgets pass pyqtgraph's); by default :func:`colormap_lut`.
    selected, path : selection marks, drawn only when given: the selected token's row
        and column outlined and its labels bold; the cells ``(path[k], path[k+1])``
        outlined with a line through their centres. A clean figure passes neither.
    cell_titles : give every cell a tooltip "q -> k: value" (default: up to
        ``MAX_CELL_TITLES`` cells).
    max_vector_cells : above this many cells (default 256 x 256 = 65,536) the cells are
        one embedded bitmap instead of ``<rect>`` elements, nearest-neighbour scaled,
        and a note in the figure (and in the SVG's description) says so.

    Returns
    -------
    Figure : matrix, axis titles, every shown label (thinned to a stride so none
    overlap, never cut), a colour bar with ticks, a "masked" swatch when cells are
    masked, notes.
    """
    metrics = metrics or APPROX_METRICS
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2:
        raise ValueError(f"matrix must be 2-D [queries, keys], got shape {m.shape}")
    n_rows, n_cols = m.shape
    if len(row_labels) != n_rows or len(col_labels) != n_cols:
        raise ValueError(f"{len(row_labels)} row labels and {len(col_labels)} column labels for a matrix of shape {m.shape}")
    if n_rows == 0 or n_cols == 0:
        raise ValueError("nothing to draw: the matrix has no rows or no columns")
    mask = np.isnan(m)
    if masked is not None:
        masked = np.asarray(masked, dtype=bool)
        if masked.shape != m.shape:
            raise ValueError(f"masked has shape {masked.shape}, matrix {m.shape}")
        mask = mask | masked
    cmap_name = "signed" if signed else colormap
    lut = colormap_lut(cmap_name) if lut is None else np.asarray(lut, dtype=np.uint8)
    colors = dict(colors or highlight_colors(cmap_name))
    lo, hi = value_levels(np.where(mask, np.nan, m), signed, check_levels(levels), None)
    use_log = log and not signed
    if use_log:
        data = np.log10(np.maximum(m, LOG_FLOOR))
        lo, hi = math.log10(max(lo, LOG_FLOOR)), math.log10(max(hi, LOG_FLOOR * 10))
        ticks = _log_ticks(lo, hi)
        scale = "log"
    else:
        data = m
        ticks = nice_ticks(lo, hi)
        scale = "signed" if signed else "linear"
    rows, cols = axis_labels(list(row_labels)), axis_labels(list(col_labels))
    raw_rows, raw_cols = [str(x) for x in row_labels], [str(x) for x in col_labels]
    path = [int(p) for p in path]
    sel = None if selected is None else int(selected)

    fig = Figure(0, 0, title=title or "attention heatmap",
                 description="Attention Atlas heatmap: rows = queries (attending), columns = keys (attended to)")
    s = min(HEAT_MAX_CELL, max(1.0, HEAT_TARGET / max(n_rows, n_cols)))
    mw, mh = n_cols * s, n_rows * s
    pitch = LABEL_SIZE * 1.3
    row_ticks = _stride_ticks(n_rows, s, pitch, sel)
    col_ticks = _stride_ticks(n_cols, s, pitch, sel)
    wr = max((metrics.width(rows[i], LABEL_SIZE, i == sel) for i in row_ticks), default=0.0)
    wc = max((metrics.width(cols[j], LABEL_SIZE, j == sel) for j in col_ticks), default=0.0)
    y_title, title_w = _title(fig, title, metrics)
    y_axis_title = "query (attends)"
    x_axis_title = "key (attended to)"
    x0 = MARGIN + AXIS_SIZE * 1.2 + 8 + wr + 4 + 4
    y0 = y_title + 4

    # cells
    if n_rows * n_cols <= max_vector_cells:
        hexes = np.array(_hex_table(lut))
        span = (hi - lo) or 1.0
        idx = np.clip(np.nan_to_num((data - lo) / span, nan=0.0) * (len(lut) - 1) + 0.5, 0, len(lut) - 1).astype(np.intp)
        titles = cell_titles if cell_titles is not None else n_rows * n_cols <= MAX_CELL_TITLES
        ov = min(0.6, 0.3 * s)
        for i in range(n_rows):
            y = y0 + i * s
            h = s + (ov if i < n_rows - 1 else 0.0)
            for j in range(n_cols):
                w = s + (ov if j < n_cols - 1 else 0.0)
                tip = None
                if titles:
                    value = "masked (causal)" if mask[i, j] else format_weight(float(m[i, j]))
                    tip = f"{raw_rows[i]} -> {raw_cols[j]}: {value}\nquery {i} -> key {j}"
                fill = MASKED_BACKGROUND if mask[i, j] else hexes[idx[i, j]]
                fig.items.append(Rect(x0 + j * s, y, w, h, fill=str(fill), title=tip, crisp=True, cls="cell"))
    else:
        rgba = colorize(np.where(mask, np.nan, data), lut, (lo, hi))
        rgba[mask] = (0xE2, 0xE2, 0xE2, 255)
        fig.items.append(Image(x0, y0, mw, mh, rgba))
        fig.notes.append(
            f"The {n_rows:,} x {n_cols:,} cells are one embedded bitmap: more than "
            f"{max_vector_cells:,} cells are not written as vector rectangles."
        )
    if mask.any() and s >= 5:  # hatching: "/" lines that run on across neighbouring cells
        cmds: list = []
        parts = 2 if s >= 14 else 1
        for i, j in zip(*np.nonzero(mask), strict=True):
            x, y = x0 + j * s, y0 + i * s
            for k in range(1, parts + 1):
                f = k / parts
                cmds += [("M", x, y + f * s), ("L", x + f * s, y)]
                if k < parts:
                    cmds += [("M", x + f * s, y + s), ("L", x + s, y + f * s)]
        fig.items.append(Path(tuple(cmds), stroke=MASKED_HATCH, width=0.8, cap="butt"))
    fig.items.append(Rect(x0, y0, mw, mh, stroke=FRAME_COLOR, stroke_width=0.8))

    # selection marks (only when asked for)
    if sel is not None:
        for rect in ([(x0, y0 + sel * s, mw, s)] if sel < n_rows else []) + (
            [(x0 + sel * s, y0, s, mh)] if sel < n_cols else []
        ):
            fig.items.append(Rect(*rect, fill=colors["outline"], fill_opacity=40 / 255,
                                  stroke=colors["outline"], stroke_width=1.5))
    cells = [(q, k) for q, k in zip(path[:-1], path[1:], strict=False) if 0 <= q < n_rows and 0 <= k < n_cols]
    for q, k in cells:
        fig.items.append(Rect(x0 + k * s, y0 + q * s, s, s, stroke=colors["path"], stroke_width=2.5))
    if len(cells) > 1:
        cmds = [("M", x0 + (cells[0][1] + 0.5) * s, y0 + (cells[0][0] + 0.5) * s)]
        cmds += [("L", x0 + (k + 0.5) * s, y0 + (q + 0.5) * s) for q, k in cells[1:]]
        fig.items.append(Path(tuple(cmds), stroke=colors["path"], width=1.5))

    # labels and ticks
    tick_cmds: list = []
    for i in row_ticks:
        yc = y0 + (i + 0.5) * s
        tick_cmds += [("M", x0 - 4, yc), ("L", x0, yc)]
        bold = i == sel
        fig.items.append(Text(x0 - 7, yc + BASELINE * LABEL_SIZE, rows[i], LABEL_SIZE,
                              colors["label"] if bold else TEXT_COLOR, anchor="end", bold=bold))
    for j in col_ticks:
        xc = x0 + (j + 0.5) * s
        tick_cmds += [("M", xc, y0 + mh), ("L", xc, y0 + mh + 4)]
        bold = j == sel
        fig.items.append(Text(xc + BASELINE * LABEL_SIZE, y0 + mh + 7, cols[j], LABEL_SIZE,
                              colors["label"] if bold else TEXT_COLOR, anchor="end", bold=bold, rotate=-90))
    if tick_cmds:
        fig.items.append(Path(tuple(tick_cmds), stroke=FRAME_COLOR, width=0.8, cap="butt"))

    # axis titles: centred on the matrix, moved inwards where the matrix is smaller
    ytw = metrics.width(y_axis_title, AXIS_SIZE)
    yc = max(y0 + mh / 2, y0 + ytw / 2)
    fig.items.append(Text(MARGIN + AXIS_SIZE * 0.85, yc, y_axis_title, AXIS_SIZE, TEXT_COLOR,
                          anchor="middle", rotate=-90))
    xtw = metrics.width(x_axis_title, AXIS_SIZE)
    x_axis_y = y0 + mh + 7 + wc + 8 + AXIS_SIZE
    xc = max(x0 + mw / 2, MARGIN + xtw / 2)
    fig.items.append(Text(xc, x_axis_y, x_axis_title, AXIS_SIZE, TEXT_COLOR, anchor="middle"))
    bottom = x_axis_y + AXIS_SIZE * 0.35

    # colour bar (at least 150 units tall so its ticks have room)
    bar_h = max(mh, 150.0)
    bar_items, right = _colorbar(x0 + mw + 22, y0, bar_h, lut, ticks, (lo, hi), COLORBAR_LABELS[scale], metrics)
    fig.items.extend(bar_items)
    right = max(right, xc + xtw / 2)
    bar_bottom = y0 + bar_h
    if mask.any():
        sx, sy = x0 + mw + 22, bar_bottom + 12
        fig.items.append(Rect(sx, sy, 14, 14, fill=MASKED_BACKGROUND, stroke=FRAME_COLOR, stroke_width=0.8))
        fig.items.append(Path((("M", sx, sy + 14), ("L", sx + 14, sy), ("M", sx, sy + 7), ("L", sx + 7, sy),
                               ("M", sx + 7, sy + 14), ("L", sx + 14, sy + 7)), stroke=MASKED_HATCH, width=0.8))
        label = "masked (causal)"
        fig.items.append(Text(sx + 20, sy + 7 + BASELINE * TICK_SIZE, label, TICK_SIZE, TEXT_COLOR))
        right = max(right, sx + 20 + metrics.width(label, TICK_SIZE))
        bar_bottom = sy + 14
    bottom = max(bottom, bar_bottom, yc + ytw / 2)
    width = max(right, MARGIN + title_w) + MARGIN
    bottom = _notes(fig, bottom + 4, width - 2 * MARGIN, metrics)
    fig.width, fig.height = math.ceil(width), math.ceil(bottom + MARGIN)
    fig.meta = {"kind": "heatmap", "x0": x0, "y0": y0, "cell": s, "rows": n_rows, "cols": n_cols,
                "vector": n_rows * n_cols <= max_vector_cells, "levels": (lo, hi), "scale": scale}
    return fig


# ----------------------------------------------------------------------------- head overview

HEAD_STAT_FORMATS = {
    "entropy": ("entropy", "nats", lambda v: f"{v:.2f}"),
    "special_share": ("attention to special tokens", "%", lambda v: f"{100 * v:.1f}"),
    "mean_distance": ("mean attention distance", "tokens", lambda v: f"{v:.1f}"),
}


def format_head_stat(name: str, value: float) -> str:
    """One statistic as the overview's tooltip writes it ("entropy: 2.31 nats")."""
    fmt = HEAD_STAT_FORMATS.get(name)
    if fmt is None:
        return f"{name.replace('_', ' ')}: {value:.3g}"
    label, unit, number = fmt
    return f"{label}: {number(value)} {unit}"


def head_tooltip(layer: int, head: int, stats: Mapping[str, np.ndarray] | None) -> str:
    """``"Layer 3 · head 7"`` and one line per statistic."""
    lines = [f"Layer {layer} · head {head}"]
    for key, values in (stats or {}).items():
        lines.append(format_head_stat(key, float(np.asarray(values)[layer, head])))
    return "\n".join(lines)


def _block_average(th: np.ndarray, size: int) -> np.ndarray:
    t = th.shape[-1]
    if size >= t:
        return th
    edges = np.floor(np.arange(size) * (t / size)).astype(np.intp)
    counts = np.diff(np.append(edges, t)).astype(np.float64)
    summed = np.add.reduceat(np.add.reduceat(th.astype(np.float64), edges, axis=-1), edges, axis=-2)
    return summed / (counts[:, None] * counts[None, :])


def heads_figure(
    thumbnails: np.ndarray,
    *,
    colormap: str = "viridis",
    lut: np.ndarray | None = None,
    masked: bool = False,
    stats: Mapping[str, np.ndarray] | None = None,
    current: tuple[int, int] | None = None,
    title: str = "Heads: layer x head",
    metrics: TextMetrics | None = None,
    tile_titles: bool = True,
    max_vector_cells: int = MAX_VECTOR_CELLS,
    bitmap: bool = False,
) -> Figure:
    """The head overview: every layer (rows, 0 at the top) x head (columns) as a tile.

    Each tile is a thumbnail of that head's ``A[query, key]``, coloured from 0 to the
    tile's own maximum (the overview shows the *shape* of each head's pattern), drawn as
    vector cells: thumbnails are block-averaged to at most 16 x 16 cells per tile and to
    ``max_vector_cells`` cells in all. ``masked`` greys the upper triangle (causal
    models). ``current`` (a highlight, only when given) frames one tile in red. Tiles
    carry a tooltip (layer, head and ``stats``) unless ``tile_titles`` is False.
    ``bitmap`` draws each tile as a small embedded image of up to 32 x 32 cells instead
    (compact, for the HTML report; not for print).
    """
    metrics = metrics or APPROX_METRICS
    th = np.asarray(thumbnails, dtype=np.float64)
    if th.ndim != 4 or th.shape[2] != th.shape[3]:
        raise ValueError(f"thumbnails must be [layers, heads, t, t], got {th.shape}")
    n_layers, n_heads, t, _ = th.shape
    if n_layers == 0 or n_heads == 0 or t == 0:
        raise ValueError("nothing to draw: there are no heads")
    lut = colormap_lut(colormap) if lut is None else np.asarray(lut, dtype=np.uint8)
    per_tile = max(1, math.isqrt(max(1, max_vector_cells // (n_layers * n_heads))))
    tf = min(t, 32) if bitmap else min(t, 16, per_tile)
    small = _block_average(th, tf)
    peak = small.reshape(n_layers, n_heads, -1).max(axis=-1)
    norm = small / np.where(peak > 0, peak, 1.0)[..., None, None]
    hexes = np.array(_hex_table(lut))
    idx = np.clip(norm * (len(lut) - 1) + 0.5, 0, len(lut) - 1).astype(np.intp)
    upper = np.triu(np.ones((tf, tf), bool), k=1) if masked else np.zeros((tf, tf), bool)

    fig = Figure(0, 0, title=title or "head overview",
                 description="Attention Atlas head overview: rows = layers, columns = heads; "
                             "each tile coloured from 0 to its own maximum")
    y_title, title_w = _title(fig, title, metrics)
    tile = min(48.0, max(10.0, min(560.0 / n_heads, 720.0 / n_layers)))
    gap = max(2.0, round(tile * 0.08))
    pitch = tile + gap
    layer_w = metrics.width(str(n_layers - 1), LABEL_SIZE)
    x0 = MARGIN + AXIS_SIZE * 1.2 + 8 + layer_w + 6
    y0 = y_title + AXIS_SIZE * 1.3 + 4 + LABEL_SIZE * 1.3
    head_step = nice_step((metrics.width(str(n_heads - 1), LABEL_SIZE) + 6) / pitch)
    layer_step = nice_step(LABEL_SIZE * 1.3 / pitch)
    cell = tile / tf
    ov = min(0.6, 0.3 * cell)
    for layer in range(n_layers):
        for head in range(n_heads):
            tx, ty = x0 + head * pitch, y0 + layer * pitch
            if bitmap:
                rgba = lut[idx[layer, head]].copy()
                rgba[upper] = (0xE2, 0xE2, 0xE2, 255)
                fig.items.append(Image(tx, ty, tile, tile, rgba))
            for i in range(tf if not bitmap else 0):
                h = cell + (ov if i < tf - 1 else 0.0)
                for j in range(tf):
                    w = cell + (ov if j < tf - 1 else 0.0)
                    fill = MASKED_BACKGROUND if upper[i, j] else str(hexes[idx[layer, head, i, j]])
                    fig.items.append(Rect(tx + j * cell, ty + i * cell, w, h, fill=fill, crisp=True))
            if tile_titles:
                fig.items.append(Rect(tx, ty, tile, tile, fill="#ffffff", fill_opacity=0.0,
                                      title=head_tooltip(layer, head, stats), cls="tile"))
    grid_w = n_heads * pitch - gap
    grid_h = n_layers * pitch - gap
    for head in range(0, n_heads, head_step):
        fig.items.append(Text(x0 + head * pitch + tile / 2, y0 - 5, str(head), LABEL_SIZE, TEXT_COLOR, anchor="middle"))
    for layer in range(0, n_layers, layer_step):
        fig.items.append(Text(x0 - 6, y0 + layer * pitch + tile / 2 + BASELINE * LABEL_SIZE, str(layer),
                              LABEL_SIZE, TEXT_COLOR, anchor="end"))
    head_title_w = metrics.width("head", AXIS_SIZE)
    fig.items.append(Text(x0 + max(grid_w, head_title_w) / 2, y_title + AXIS_SIZE, "head", AXIS_SIZE,
                          TEXT_COLOR, anchor="middle"))
    layer_title_w = metrics.width("layer", AXIS_SIZE)
    yc = y0 + max(grid_h, layer_title_w) / 2
    fig.items.append(Text(MARGIN + AXIS_SIZE * 0.85, yc, "layer", AXIS_SIZE, TEXT_COLOR, anchor="middle", rotate=-90))
    if current is not None:
        layer, head = int(current[0]), int(current[1])
        if 0 <= layer < n_layers and 0 <= head < n_heads:
            fig.items.append(Rect(x0 + head * pitch - 1.5, y0 + layer * pitch - 1.5, tile + 3, tile + 3,
                                  stroke="#e62828", stroke_width=2.5))
    bar_h = max(min(grid_h, 220.0), 120.0)
    bar_items, right = _colorbar(x0 + grid_w + 22, y0, bar_h, lut, [(0.0, "0"), (1.0, "max")], (0.0, 1.0),
                                 "each head: 0 to its maximum", metrics)
    fig.items.extend(bar_items)
    bottom = max(y0 + grid_h, y0 + bar_h, yc + layer_title_w / 2)
    if masked:
        sx, sy = x0 + grid_w + 22, y0 + bar_h + 12
        fig.items.append(Rect(sx, sy, 14, 14, fill=MASKED_BACKGROUND, stroke=FRAME_COLOR, stroke_width=0.8))
        fig.items.append(Text(sx + 20, sy + 7 + BASELINE * TICK_SIZE, "masked (causal)", TICK_SIZE, TEXT_COLOR))
        right = max(right, sx + 20 + metrics.width("masked (causal)", TICK_SIZE))
        bottom = max(bottom, sy + 14)
    width = max(right, MARGIN + title_w) + MARGIN
    bottom = _notes(fig, bottom + 4, width - 2 * MARGIN, metrics)
    fig.width, fig.height = math.ceil(width), math.ceil(bottom + MARGIN)
    fig.meta = {"kind": "heads", "x0": x0, "y0": y0, "pitch": pitch, "tile": tile, "layers": n_layers,
                "heads": n_heads, "cells_per_tile": tf}
    return fig


def head_table(stats: Mapping[str, np.ndarray]) -> tuple[list[str], list[list]]:
    """Every head's statistics as a table: header ``["layer", "head", *names]`` and one
    row ``[layer, head, value, ...]`` per head, in layer then head order."""
    names = list(stats)
    if not names:
        return ["layer", "head"], []
    arrays = [np.asarray(stats[k], dtype=np.float64) for k in names]
    shape = arrays[0].shape
    for k, a in zip(names, arrays, strict=True):
        if a.shape != shape or a.ndim != 2:
            raise ValueError(f"stat {k!r} has shape {a.shape}, expected {shape} [layers, heads]")
    rows = [[layer, head, *(float(a[layer, head]) for a in arrays)]
            for layer in range(shape[0]) for head in range(shape[1])]
    return ["layer", "head", *names], rows


def write_head_table_csv(path: str | os.PathLike, stats: Mapping[str, np.ndarray]) -> None:
    """Write :func:`head_table` as CSV (``layer,head,entropy,special_share,...``; values
    with full precision; entropy in nats, special_share 0..1, mean_distance in tokens)."""
    header, rows = head_table(stats)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for row in rows:
            writer.writerow([row[0], row[1], *(repr(v) for v in row[2:])])


# ----------------------------------------------------------------------------- token view

WEIGHT_RGB = (255, 140, 0)  # orange: readable under dark text at any intensity
SELECTED_TOKEN_COLOR = "#1e5ac8"
CHIP_COLOR = "#e4e4e4"


def token_pieces(text: str, pair: str | None, labels: Sequence[str], offsets: np.ndarray,
                 segment_ids: np.ndarray, special_mask: np.ndarray) -> list[tuple]:
    """The input text cut into what the token view draws, in reading order:
    ``("text", s)`` (text between tokens), ``("token", index, s, chip)`` (a token's span
    of the text, or its label as a chip for special tokens and tokens without a span),
    ``("pair",)`` (where the second text starts)."""
    texts = {0: text, 1: pair or ""}
    cursor = {0: 0, 1: 0}
    out: list[tuple] = []
    pair_started = False
    current = 0
    offsets = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)

    def flush(segment: int, upto: int | None = None) -> None:
        src = texts[segment]
        end = len(src) if upto is None else max(cursor[segment], min(upto, len(src)))
        if end > cursor[segment]:
            out.append(("text", src[cursor[segment]:end]))
            cursor[segment] = end

    def start_pair() -> None:
        nonlocal pair_started, current
        flush(0)
        out.append(("pair",))
        pair_started = True
        current = 1

    for i, label in enumerate(labels):
        seg = int(segment_ids[i])
        start, end = (int(x) for x in offsets[i])
        if special_mask[i] or seg < 0 or seg not in texts or end <= start:
            out.append(("token", i, str(label), True))
            continue
        if seg == 1 and not pair_started and pair is not None:
            start_pair()
        if seg != current:
            current = seg
        flush(seg, start)
        s = max(start, cursor[seg])
        e = min(end, len(texts[seg]))
        if e <= s:  # span already consumed (overlapping offsets): show the label
            out.append(("token", i, str(label), True))
            continue
        out.append(("token", i, texts[seg][s:e], False))
        cursor[seg] = e
    flush(0)
    if pair is not None:
        if not pair_started:
            start_pair()
        flush(1)
    return out


def token_colors(weights: np.ndarray | None, selected: int | None, n: int,
                 base: tuple[int, int, int] = (255, 255, 255)) -> list[str | None]:
    """Background of each token: ``base`` blended towards orange by
    ``(w / peak) ** 0.8``, ``peak`` = the largest weight of the *other* tokens (the
    strongest key is fully coloured even if the selected token attends mostly to itself)."""
    if weights is None:
        return [None] * n
    w = np.asarray(weights, dtype=np.float64)
    others = np.delete(w, selected) if selected is not None else w
    peak = float(others.max()) if others.size and others.max() > 0 else 1.0
    out = []
    for v in w:
        a = float(np.clip((v / peak) ** 0.8 if v > 0 else 0.0, 0.0, 1.0))
        out.append(_hex(tuple(round(b * (1 - a) + t * a) for b, t in zip(base, WEIGHT_RGB, strict=True))))
    return out


def tokens_figure(
    text: str,
    pair: str | None,
    labels: Sequence[str],
    offsets: np.ndarray,
    segment_ids: np.ndarray,
    special_mask: np.ndarray,
    weights: np.ndarray | None = None,
    selected: int | None = None,
    *,
    title: str = "",
    mark_selected: bool = False,
    metrics: TextMetrics | None = None,
    width: float = 720.0,
) -> Figure:
    """The token view: the text as typed, each token's span coloured by ``weights``
    (one row of attention; see :func:`token_colors`), special tokens as small chips, the
    pair after a rule, wrapped to ``width``; a legend bar from 0 to the strongest weight.
    ``mark_selected`` (a highlight) writes the selected token bold, underlined, in blue."""
    metrics = metrics or APPROX_METRICS
    n = len(labels)
    pieces = token_pieces(text, pair, labels, offsets, segment_ids, special_mask)
    colors = token_colors(weights, selected, n)
    fig = Figure(0, 0, title=title or "tokens", description="Attention Atlas token view")
    y_title, title_w = _title(fig, title, metrics)
    size, chip_size = 14, 11
    line_h = size * 1.75
    left = MARGIN
    right_limit = MARGIN + width
    # units: (kind, text, token, chip); kinds: word, space, newline, rule
    units: list[tuple] = []
    for piece in pieces:
        if piece[0] == "pair":
            units.append(("rule", "", -1, False))
        elif piece[0] == "text":
            for k, line in enumerate(piece[1].split("\n")):
                if k:
                    units.append(("newline", "", -1, False))
                for chunk in _split_spaces(line):
                    units.append(("space" if chunk.isspace() else "word", chunk, -1, False))
        else:
            _, i, s, chip = piece
            s = _clean_text(s)
            units.append(("word", s.strip() or s, i, chip))
    # greedy wrap over groups of units not separated by spaces
    x, y = left, y_title + 4
    max_x = left

    def unit_width(u) -> float:
        kind, s, i, chip = u
        if kind == "space":
            return metrics.width(" ", size) * len(s)
        if chip:
            return metrics.width(s, chip_size) + 8 + 2
        return metrics.width(s, size, mark_selected and i == selected)

    k = 0
    while k < len(units):
        kind = units[k][0]
        if kind == "newline":
            x, y = left, y + line_h
            k += 1
            continue
        if kind == "rule":
            if x > left:
                y += line_h
            fig.items.append(Line(left, y + line_h * 0.45, right_limit, y + line_h * 0.45, stroke="#bcccdc", width=1))
            x, y = left, y + line_h
            k += 1
            continue
        if kind == "space":
            if x > left:
                x += unit_width(units[k])
            k += 1
            continue
        group_end = k
        while group_end < len(units) and units[group_end][0] == "word":
            group_end += 1
        group_w = sum(unit_width(u) for u in units[k:group_end])
        if x > left and x + group_w > right_limit:
            x, y = left, y + line_h
        for u in units[k:group_end]:
            _, s, i, chip = u
            w = unit_width(u)
            color = colors[i] if i >= 0 else None
            if chip:
                fig.items.append(Rect(x + 1, y + line_h * 0.22, w - 2, line_h * 0.62, fill=color or CHIP_COLOR,
                                      title=_token_title(labels, weights, i)))
                fig.items.append(Text(x + w / 2, y + line_h * 0.53 + BASELINE * chip_size, s, chip_size,
                                      TEXT_COLOR, anchor="middle"))
            else:
                if color is not None or i >= 0:
                    fig.items.append(Rect(x, y + line_h * 0.12, w, line_h * 0.8, fill=color or "#ffffff",
                                          fill_opacity=1.0 if color else 0.0, title=_token_title(labels, weights, i)))
                marked = mark_selected and i == selected and i >= 0
                fig.items.append(Text(x, y + line_h * 0.52 + BASELINE * size, s, size,
                                      SELECTED_TOKEN_COLOR if marked else TEXT_COLOR, bold=marked, underline=marked))
            x += w
            max_x = max(max_x, x)
        k = group_end
    y += line_h
    bottom = y
    if weights is not None:
        w = np.asarray(weights, dtype=np.float64)
        others = np.delete(w, selected) if selected is not None else w
        peak = float(others.max()) if others.size and others.max() > 0 else 1.0
        bar_y = bottom + 10
        slices = 48
        ramp = token_colors(np.linspace(0, peak, slices), None, slices)
        for q in range(slices):
            fig.items.append(Rect(left + q * (160 / slices), bar_y, 160 / slices + (0.5 if q < slices - 1 else 0),
                                  10, fill=ramp[q], crisp=True))
        fig.items.append(Rect(left, bar_y, 160, 10, stroke=FRAME_COLOR, stroke_width=0.8))
        fig.items.append(Text(left, bar_y + 10 + TICK_SIZE * 1.3, "0", TICK_SIZE, TEXT_COLOR))
        fig.items.append(Text(left + 160, bar_y + 10 + TICK_SIZE * 1.3, format_weight(peak), TICK_SIZE,
                              TEXT_COLOR, anchor="middle"))
        legend = "colour: weight, relative to the strongest other token"
        fig.items.append(Text(left + 160 + 24, bar_y + 5 + BASELINE * TICK_SIZE, legend, TICK_SIZE, MUTED_COLOR))
        max_x = max(max_x, left + 184 + metrics.width(legend, TICK_SIZE),
                    left + 160 + metrics.width(format_weight(peak), TICK_SIZE) / 2)
        bottom = bar_y + 10 + TICK_SIZE * 1.6
    width_total = max(max_x, MARGIN + title_w) + MARGIN
    bottom = _notes(fig, bottom, width_total - 2 * MARGIN, metrics)
    fig.width, fig.height = math.ceil(width_total), math.ceil(bottom + MARGIN)
    return fig


def _split_spaces(s: str) -> list[str]:
    out: list[str] = []
    for ch in s:
        if out and out[-1][-1].isspace() == ch.isspace():
            out[-1] += ch
        else:
            out.append(ch)
    return out


def _token_title(labels: Sequence[str], weights: np.ndarray | None, i: int) -> str | None:
    if i < 0:
        return None
    if weights is None:
        return f"{i} {labels[i]}"
    return f"{labels[i]} · {format_weight(float(np.asarray(weights)[i]))}"


# ----------------------------------------------------------------------------- graph

# Same values as widgets.canvas_geometry (a test checks they agree): the figure's
# node sizes and edge bins match the canvas.

EDGE_BINS = 5
MAX_DRAWN_EDGES = 4000
ARROW_BUDGET = 1500
BIN_WIDTHS = (1.0, 1.0, 1.6, 2.4, 3.4)
BIN_ALPHAS = (60, 95, 140, 190, 235)
BIN_TARGET_OPACITY = (0.22, 0.38, 0.6, 0.82, 0.95)
EDGE_COLOR = "#2c3a4a"
GRAPH_COLORS = {"path": "#d81b60", "source": "#1a9850", "target": "#7b3294", "selected": "#222222"}
ARC_NOTE = "Arcs above the line: a token attends to a later token; below: to an earlier one."
DIRECTION_NOTE = "Arrowheads point to the attended token."


def community_colors(communities: np.ndarray | None, n: int) -> list[str]:
    """Node fill colours: the palette entry of each community id (cycling), one neutral
    colour without communities or for ids below 0."""
    if communities is None:
        return [NO_COMMUNITY_COLOR] * n
    k = len(COMMUNITY_PALETTE)
    return [COMMUNITY_PALETTE[int(c) % k] if c >= 0 else NO_COMMUNITY_COLOR for c in communities]


def _finite(weights) -> np.ndarray:
    w = np.abs(np.asarray(weights, dtype=np.float64).ravel())
    return np.where(np.isfinite(w), w, 0.0)


def _drawn_edges(s: np.ndarray, t: np.ndarray, w: np.ndarray, limit: int) -> np.ndarray:
    keep = s != t
    candidates = np.flatnonzero(keep)
    if candidates.shape[0] > limit:
        strength = w[candidates]
        cut = np.partition(strength, candidates.shape[0] - limit)[candidates.shape[0] - limit]
        above = candidates[strength > cut]
        tied = candidates[strength == cut][: limit - above.shape[0]]
        keep = np.zeros_like(keep)
        keep[above] = True
        keep[tied] = True
    return keep


def _bins(w: np.ndarray) -> np.ndarray:
    if w.size == 0 or w.max() <= 0:
        return np.zeros(w.shape, dtype=np.int64)
    return np.clip(np.floor(np.sqrt(w / w.max()) * EDGE_BINS).astype(np.int64), 0, EDGE_BINS - 1)


def _node_px_range(n: int) -> tuple[float, float, float]:
    if n <= 64:
        return 7.0, 26.0, 12.0
    if n <= 200:
        return 5.0, 18.0, 9.0
    return 4.0, 14.0, 6.0


def _node_sizes(values: np.ndarray | None, n: int) -> np.ndarray:
    if n == 0:
        return np.zeros(0)
    lo_px, hi_px, uniform = _node_px_range(n)
    if values is None:
        return np.full(n, uniform)
    v = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(v)
    r = np.zeros(n)
    if finite.any():
        lo, hi = v[finite].min(), v[finite].max()
        r[finite] = (v[finite] - lo) / (hi - lo) if hi > lo else 0.5
    return np.round(lo_px + (hi_px - lo_px) * np.sqrt(r))


def _display_label(text: str) -> str:
    text = str(text)
    return repr(text) if text.strip() == "" else _clean_text(text)


def _format_number(value: float) -> str:
    v = float(value)
    if not math.isfinite(v):
        return "nan"
    if v != 0 and (abs(v) >= 1e4 or abs(v) < 1e-3):
        return f"{v:.3g}"
    return f"{v:.3f}"


def _overlaps(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _place(order: Sequence[int], rects: np.ndarray, forced: set[int], *, max_free: int, gap: float,
           cell: float = 64.0) -> list[int]:
    """Greedy, overlap-free choice of labels (as the canvas's ``place_labels``, without
    culling): forced ones always, others while they keep ``gap`` from those placed."""
    placed: list = []
    grid: dict[tuple[int, int], list[int]] = {}
    chosen: list[int] = []
    free = 0
    for i in order:
        r = rects[i]
        gx0, gx1 = int(r[0] // cell), int(r[2] // cell)
        gy0, gy1 = int(r[1] // cell), int(r[3] // cell)
        if i not in forced:
            if free >= max_free:
                continue
            probe = (r[0] - gap, r[1] - gap, r[2] + gap, r[3] + gap)
            if any(_overlaps(placed[j], probe) for gx in range(gx0, gx1 + 1) for gy in range(gy0, gy1 + 1)
                   for j in grid.get((gx, gy), ())):
                continue
            free += 1
        for gx in range(gx0, gx1 + 1):
            for gy in range(gy0, gy1 + 1):
                grid.setdefault((gx, gy), []).append(len(placed))
        placed.append(r)
        chosen.append(int(i))
    return chosen


def graph_figure(
    labels: Sequence[str],
    sources: np.ndarray,
    targets: np.ndarray,
    weights: np.ndarray,
    positions: np.ndarray,
    *,
    layout: str = "arc",
    communities: np.ndarray | None = None,
    size_values: np.ndarray | None = None,
    size_metric: str | None = None,
    metric_values: Mapping[str, np.ndarray] | None = None,
    title: str = "",
    path: Sequence[int] = (),
    source: int | None = None,
    target: int | None = None,
    selected: int | None = None,
    weight_name: str = "attention weight",
    metrics: TextMetrics | None = None,
    max_edges: int = MAX_DRAWN_EDGES,
) -> Figure:
    """The token graph as a figure: nodes at ``positions`` (``[n, 2]``, y up, as the
    canvas), the strongest ``max_edges`` edges ``sources[k] -> targets[k]`` (arcs in the
    "arc" layout, segments with arrowheads otherwise), width and opacity by weight bin,
    nodes coloured by community and sized by ``size_values`` (named ``size_metric``),
    labels placed without overlaps (priority: the size metric, else strength) and a
    legend: communities (colour and their strongest members), the node-size metric (three
    reference sizes with their values) and edge widths. ``path``, ``source``, ``target``
    and ``selected`` are highlights, drawn only when given."""
    metrics = metrics or APPROX_METRICS
    labels = [str(x) for x in labels]
    n = len(labels)
    fig = Figure(0, 0, title=title or "attention graph",
                 description="Attention Atlas graph: edge i -> j means token i attends to token j")
    y_title, title_w = _title(fig, title, metrics)
    if n == 0:
        fig.items.append(Text(MARGIN, y_title + 20, "(empty graph: no tokens)", AXIS_SIZE, MUTED_COLOR))
        fig.width, fig.height = math.ceil(max(240.0, MARGIN * 2 + title_w)), math.ceil(y_title + 40)
        return fig
    s = np.asarray(sources, dtype=np.int64).ravel()
    t = np.asarray(targets, dtype=np.int64).ravel()
    w = _finite(weights)
    if not (s.shape == t.shape == w.shape):
        raise ValueError("sources, targets and weights must have the same length")
    pos = np.asarray(positions, dtype=np.float64)
    if pos.shape != (n, 2) or not np.isfinite(pos).all():
        raise ValueError(f"positions must be finite and of shape ({n}, 2), got {pos.shape}")
    arc = layout == "arc"
    keep = _drawn_edges(s, t, w, max_edges)
    bins = _bins(w)
    sizes = _node_sizes(size_values, n)
    strength = np.bincount(s, weights=w, minlength=n)[:n] + np.bincount(t, weights=w, minlength=n)[:n]
    node_fill = community_colors(communities, n)

    # data -> figure units (y down), one scale for both axes
    ds, dt = s[keep], t[keep]
    if arc:
        d = pos[dt] - pos[ds]
        ctrl = 0.5 * (pos[ds] + pos[dt]) + np.column_stack([-d[:, 1], d[:, 0]])
    else:
        ctrl = np.zeros((0, 2))
    pts = [pos]
    if arc and ds.shape[0]:
        u = np.linspace(0, 1, 9)[None, :, None]
        curve = (1 - u) ** 2 * pos[ds][:, None] + 2 * u * (1 - u) * ctrl[:, None] + u**2 * pos[dt][:, None]
        pts.append(curve.reshape(-1, 2))
    allp = np.concatenate(pts)
    lo_d, hi_d = allp.min(axis=0), allp.max(axis=0)
    ext = np.maximum(hi_d - lo_d, 1e-9)
    if arc:
        k = min(60.0, 720.0 / max(ext[0], 1.0))
    else:
        k = min(560.0 / max(ext[0], ext[1]), 120.0)

    def to_px(p: np.ndarray) -> np.ndarray:
        out = np.empty_like(p, dtype=np.float64)
        out[..., 0] = (p[..., 0] - lo_d[0]) * k
        out[..., 1] = (hi_d[1] - p[..., 1]) * k
        return out

    P = to_px(pos)
    C = to_px(ctrl) if arc else ctrl
    radius = sizes / 2.0

    # labels: rectangles in the local frame
    texts = [_elide(_display_label(x), 24) for x in labels]
    lh = LABEL_SIZE * 1.3
    widths = np.array([metrics.width(x, LABEL_SIZE) for x in texts])
    forced = [i for i in (source, target, selected, *path) if i is not None and 0 <= int(i) < n]
    forced_set = {int(i) for i in forced}
    bold_w = np.array([metrics.width(texts[i], LABEL_SIZE, True) if i in forced_set else widths[i] for i in range(n)])
    rects = np.empty((n, 4))
    if arc:
        rects[:, 0] = P[:, 0] - lh / 2
        rects[:, 1] = P[:, 1] + radius + 3
        rects[:, 2] = rects[:, 0] + lh
        rects[:, 3] = rects[:, 1] + bold_w + 5
        leftward = np.zeros(n, bool)
    else:
        leftward = pos[:, 0] < pos[:, 0].mean() - 1e-9 if layout == "circular" else np.zeros(n, bool)
        wpad = bold_w + 6
        rects[:, 0] = np.where(leftward, P[:, 0] - radius - 3 - wpad, P[:, 0] + radius + 3)
        rects[:, 2] = rects[:, 0] + wpad
        rects[:, 1] = P[:, 1] - lh / 2
        rects[:, 3] = rects[:, 1] + lh
    key = np.asarray(size_values, dtype=np.float64) if size_values is not None else strength
    key = np.where(np.isfinite(key), key, -np.inf)
    order = list(dict.fromkeys(int(i) for i in forced)) + [int(i) for i in np.argsort(-key, kind="stable")
                                                          if int(i) not in forced_set]
    shown = _place(order, rects, forced_set, max_free=400, gap=2.0)

    # bounding box of everything drawn in the local frame -> offset
    boxes = [np.column_stack([P[:, 0] - radius - 6, P[:, 1] - radius - 6, P[:, 0] + radius + 6, P[:, 1] + radius + 6])]
    if shown:
        boxes.append(rects[shown])
    if arc and ds.shape[0]:
        cp = to_px(curve.reshape(-1, 2))
        boxes.append(np.column_stack([cp[:, 0], cp[:, 1], cp[:, 0], cp[:, 1]]))
    box = np.concatenate(boxes)
    bx0, by0 = box[:, 0].min(), box[:, 1].min()
    bx1, by1 = box[:, 2].max(), box[:, 3].max()
    ox, oy = MARGIN - bx0, y_title + 6 - by0
    P = P + (ox, oy)
    if arc:
        C = C + (ox, oy)
    rects = rects + (ox, oy, ox, oy)
    graph_right, graph_bottom = bx1 + ox, by1 + oy
    graph_area = max((bx1 - bx0) * (by1 - by0), 1.0)

    # edges, weakest bin first
    drawn_idx = np.flatnonzero(keep)
    local = {int(e): q for q, e in enumerate(drawn_idx)}
    for b in range(EDGE_BINS):
        sel = drawn_idx[bins[drawn_idx] == b]
        if sel.shape[0] == 0:
            continue
        cmds: list = []
        length = 0.0
        for e in sel:
            a, z = P[s[e]], P[t[e]]
            if arc:
                c = C[local[int(e)]]
                cmds += [("M", a[0], a[1]), ("Q", c[0], c[1], z[0], z[1])]
                length += 1.48 * math.hypot(z[0] - a[0], z[1] - a[1])
            else:
                cmds += [("M", a[0], a[1]), ("L", z[0], z[1])]
                length += math.hypot(z[0] - a[0], z[1] - a[1])
        width = BIN_WIDTHS[b]
        alpha = float(BIN_ALPHAS[b])
        overlap = 2.5 * length * width / graph_area
        if overlap > 1.0:
            alpha = min(alpha, 255.0 * (1.0 - (1.0 - BIN_TARGET_OPACITY[b]) ** (1.0 / overlap)))
        fig.items.append(Path(tuple(cmds), stroke=EDGE_COLOR, width=width, opacity=max(alpha, 6.0) / 255, cap="butt"))
    if not arc and drawn_idx.shape[0]:
        strongest = drawn_idx[np.argsort(-w[drawn_idx], kind="stable")[:ARROW_BUDGET]]
        for b in range(EDGE_BINS):
            sel = strongest[bins[strongest] == b]
            cmds = []
            for e in sel:
                cmds += _arrow(P[s[e]], P[t[e]], radius[t[e]] + 1.5, 6.0 + 1.6 * b)
            if cmds:
                fig.items.append(Path(tuple(cmds), stroke=None, fill=EDGE_COLOR,
                                      fill_opacity=min(255, BIN_ALPHAS[b] + 20) / 255))

    # highlighted path (only when given)
    path = [int(p) for p in path if 0 <= int(p) < n]
    pedges = [(a, z) for a, z in zip(path[:-1], path[1:], strict=False) if a != z]
    if pedges:
        cmds = []
        heads = []
        for a, z in pedges:
            pa, pz = P[a], P[z]
            if arc:
                d = pos[z] - pos[a]
                c = to_px((0.5 * (pos[a] + pos[z]) + np.array([-d[1], d[0]]))[None])[0] + (ox, oy)
                cmds += [("M", pa[0], pa[1]), ("Q", c[0], c[1], pz[0], pz[1])]
                heads += _arrow(c, pz, radius[z] + 2.0, 11.0)  # along the arc's final tangent
            else:
                cmds += [("M", pa[0], pa[1]), ("L", pz[0], pz[1])]
                heads += _arrow(pa, pz, radius[z] + 2.0, 11.0)
        fig.items.append(Path(tuple(cmds), stroke="#ffffff", width=7, opacity=0.9))
        fig.items.append(Path(tuple(cmds), stroke=GRAPH_COLORS["path"], width=3.5))
        if heads:
            fig.items.append(Path(tuple(heads), stroke=None, fill=GRAPH_COLORS["path"]))

    # nodes
    for i in range(n):
        tip = [f"{_display_label(labels[i])} (#{i})"]
        if communities is not None:
            tip.append(f"community {int(communities[i])}")
        for name, values in (metric_values or {}).items():
            tip.append(f"{name} {_format_number(np.asarray(values)[i])}")
        fig.items.append(Circle(P[i, 0], P[i, 1], radius[i], fill=node_fill[i], stroke="#ffffff",
                                stroke_width=1.2, title="\n".join(tip)))
    for i in path:
        if i not in (source, target):
            fig.items.append(Circle(P[i, 0], P[i, 1], radius[i] + 3, fill=None, stroke=GRAPH_COLORS["path"], stroke_width=2.5))
    if selected is not None and 0 <= selected < n and selected not in (source, target):
        fig.items.append(Circle(P[selected, 0], P[selected, 1], radius[selected] + 3.5, fill=None,
                                stroke=GRAPH_COLORS["selected"], stroke_width=2.0, dash=(4.0, 3.0)))
    for node, role in ((source, "source"), (target, "target")):
        if node is not None and 0 <= node < n:
            fig.items.append(Circle(P[node, 0], P[node, 1], radius[node] + 4.5, fill=None,
                                    stroke=GRAPH_COLORS[role], stroke_width=3.5))

    # labels on a white halo
    for i in shown:
        left, top, right, bottom = rects[i]
        fig.items.append(Rect(left, top, right - left, bottom - top, fill="#ffffff", fill_opacity=0.85))
        bold = i in forced_set
        color = "#000000" if bold else TEXT_COLOR
        if arc:
            fig.items.append(Text(left + lh / 2 - BASELINE * LABEL_SIZE, top + 2.5, texts[i], LABEL_SIZE, color,
                                  bold=bold, rotate=90))
        else:
            fig.items.append(Text(left + 3, top + lh / 2 + BASELINE * LABEL_SIZE, texts[i], LABEL_SIZE, color, bold=bold))

    # legend
    legend_items, lw, lh_total = _graph_legend(
        labels, texts, communities, node_fill, size_values, size_metric, sizes, w, keep, key,
        weight_name, bool(pedges) or source is not None or target is not None, metrics)
    wide = (graph_right - MARGIN) > 1.6 * (graph_bottom - (y_title + 6))
    if wide:
        lx, ly = MARGIN, graph_bottom + 18
    else:
        lx, ly = graph_right + 28, y_title + 6
    for item in legend_items:
        fig.items.append(_shift(item, lx, ly))
    right = max(graph_right, lx + lw, MARGIN + title_w)
    bottom = max(graph_bottom, ly + lh_total)
    drawn, total = int(keep.sum()), int(np.count_nonzero(s != t))
    fig.notes.append(ARC_NOTE if arc else DIRECTION_NOTE)
    if drawn < total:
        fig.notes.append(f"The strongest {drawn:,} of {total:,} edges are drawn.")
    note_width = max(right - MARGIN, 360.0)
    bottom = _notes(fig, bottom + 6, note_width, metrics)
    fig.width, fig.height = math.ceil(max(right, MARGIN + note_width) + MARGIN), math.ceil(bottom + MARGIN)
    fig.meta = {"kind": "graph", "nodes": P.tolist(), "labels_shown": list(shown), "edges_drawn": drawn,
                "edges": total}
    return fig


def _arrow(frm, to, back: float, length: float) -> list:
    """A filled triangle pointing from ``frm`` to ``to``, its tip ``back`` units before
    ``to``; none when the edge is too short to show it."""
    d = np.asarray(to, dtype=np.float64) - np.asarray(frm, dtype=np.float64)
    dist = math.hypot(d[0], d[1])
    if dist <= back + length + 2:
        return []
    u = d / dist
    perp = np.array([-u[1], u[0]])
    tip = np.asarray(to) - u * back
    base = tip - u * length
    half = 0.42 * length
    a, b = base + perp * half, base - perp * half
    return [("M", tip[0], tip[1]), ("L", a[0], a[1]), ("L", b[0], b[1]), ("Z",)]


def _shift(item, dx: float, dy: float):
    if isinstance(item, Rect):
        return Rect(item.x + dx, item.y + dy, item.w, item.h, item.fill, item.fill_opacity, item.stroke,
                    item.stroke_width, item.stroke_opacity, item.title, item.crisp, item.cls)
    if isinstance(item, Circle):
        return Circle(item.cx + dx, item.cy + dy, item.r, item.fill, item.stroke, item.stroke_width, item.dash,
                      item.title)
    if isinstance(item, Text):
        return Text(item.x + dx, item.y + dy, item.text, item.size, item.color, item.anchor, item.bold,
                    item.rotate, item.underline)
    if isinstance(item, Line):
        return Line(item.x1 + dx, item.y1 + dy, item.x2 + dx, item.y2 + dy, item.stroke, item.width, item.opacity)
    if isinstance(item, Path):
        cmds = []
        for c in item.commands:
            if c[0] == "Z":
                cmds.append(c)
            else:
                vals = list(c[1:])
                cmds.append((c[0], *[v + (dx if q % 2 == 0 else dy) for q, v in enumerate(vals)]))
        return Path(tuple(cmds), item.stroke, item.width, item.opacity, item.fill, item.fill_opacity, item.dash,
                    item.cap)
    raise TypeError(f"cannot shift {type(item).__name__}")


def _graph_legend(labels, texts, communities, node_fill, size_values, size_metric, sizes, w, keep, key,
                  weight_name, highlighted, metrics) -> tuple[list, float, float]:
    """The graph legend's items at the origin, its width and height."""
    items: list = []
    y = 0.0
    right = 0.0
    row = LABEL_SIZE * 1.6

    def heading(text: str) -> None:
        nonlocal y, right
        y += AXIS_SIZE
        items.append(Text(0, y, text, AXIS_SIZE, TEXT_COLOR, bold=True))
        right = max(right, metrics.width(text, AXIS_SIZE, True))
        y += 6

    def entry(text: str, x: float = 22.0) -> None:
        nonlocal right
        items.append(Text(x, y + row / 2 + BASELINE * LABEL_SIZE, text, LABEL_SIZE, TEXT_COLOR))
        right = max(right, x + metrics.width(text, LABEL_SIZE))

    if communities is not None and len(communities):
        heading("Communities")
        ids = [int(c) for c in dict.fromkeys(int(c) for c in communities)]
        for cid in ids[:10]:
            members = [i for i in np.argsort(-key, kind="stable") if int(communities[i]) == cid][:3]
            names = ", ".join(_elide(texts[i], 12) for i in members)
            more = int(np.count_nonzero(np.asarray(communities) == cid)) - len(members)
            color = COMMUNITY_PALETTE[cid % len(COMMUNITY_PALETTE)] if cid >= 0 else NO_COMMUNITY_COLOR
            items.append(Circle(8, y + row / 2, 6, fill=color, stroke="#ffffff", stroke_width=1))
            entry(f"{cid}: {names}" + (f" +{more}" if more > 0 else ""))
            y += row
        if len(ids) > 10:
            entry(f"… and {len(ids) - 10} more communities", 0.0)
            y += row
        y += 8
    if size_values is not None and size_metric:
        heading(f"Node size: {size_metric}")
        v = np.asarray(size_values, dtype=np.float64)
        finite = v[np.isfinite(v)]
        if finite.size:
            refs = sorted({float(finite.min()), float(np.median(finite)), float(finite.max())})
            lo_px, hi_px, _ = _node_px_range(len(v))
            lo, hi = float(finite.min()), float(finite.max())
            for value in refs:
                r = 0.5 if hi <= lo else (value - lo) / (hi - lo)
                d = round(lo_px + (hi_px - lo_px) * math.sqrt(r))
                cy = y + max(row, d + 4) / 2
                items.append(Circle(13, cy, d / 2, fill="#9aa5b1", stroke="#ffffff", stroke_width=1))
                items.append(Text(34, cy + BASELINE * LABEL_SIZE, _format_number(value), LABEL_SIZE, TEXT_COLOR))
                right = max(right, 34 + metrics.width(_format_number(value), LABEL_SIZE))
                y += max(row, d + 4)
        y += 8
    kept = w[keep]
    if kept.size and kept.max() > 0:
        heading(f"Edge width: {weight_name}")
        top = float(kept.max())
        for b, text in ((EDGE_BINS - 1, f"≥ {_format_number(top * ((EDGE_BINS - 1) / EDGE_BINS) ** 2)}"),
                        (2, f"≥ {_format_number(top * (2 / EDGE_BINS) ** 2)}"),
                        (0, f"< {_format_number(top * (1 / EDGE_BINS) ** 2)}")):
            items.append(Line(0, y + row / 2, 26, y + row / 2, EDGE_COLOR, BIN_WIDTHS[b], BIN_ALPHAS[b] / 255))
            entry(text, 34.0)
            y += row
        y += 8
    if highlighted:
        heading("Highlight")
        for text, color, kind in (("path", GRAPH_COLORS["path"], "line"), ("source", GRAPH_COLORS["source"], "ring"),
                                  ("target", GRAPH_COLORS["target"], "ring")):
            if kind == "line":
                items.append(Line(0, y + row / 2, 26, y + row / 2, color, 3.5))
            else:
                items.append(Circle(13, y + row / 2, 6, fill=None, stroke=color, stroke_width=3))
            entry(text, 34.0)
            y += row
    return items, right, y


# ----------------------------------------------------------------------------- SVG


def _n(v: float) -> str:
    """A coordinate with at most two decimals, no trailing zeros."""
    text = f"{float(v):.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _esc(text: str, quote: bool = False) -> str:
    text = _clean_text(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace('"', "&quot;") if quote else text


def _title_el(title: str | None) -> str:
    if not title:
        return ""
    return "<title>" + "&#10;".join(_esc(line) for line in str(title).split("\n")) + "</title>"


def _opacity(name: str, value: float) -> str:
    return f' {name}="{_n(value)}"' if value < 0.999 else ""


def _path_d(commands) -> str:
    out = []
    for c in commands:
        if c[0] == "Z":
            out.append("Z")
        else:
            out.append(c[0] + " ".join(_n(v) for v in c[1:]))
    return "".join(out)


def encode_png(rgba: np.ndarray) -> bytes:
    """PNG bytes of an RGBA ``uint8 [rows, cols, 4]`` image (no Qt, no Pillow)."""
    a = np.ascontiguousarray(rgba, dtype=np.uint8)
    h, w = a.shape[:2]
    raw = b"".join(b"\x00" + a[y].tobytes() for y in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def to_svg(fig: Figure, *, width: float | None = None, standalone: bool = True,
           css_class: str | None = None, font_family: str | None = None) -> str:
    """The figure as SVG text: plain elements in figure units (``viewBox``), text as
    ``<text>``, tooltips as ``<title>``, notes in ``<desc>``. ``width`` sets the
    ``width`` attribute (the height follows the aspect; default: the figure's size).
    ``standalone`` adds the XML declaration (off when inlined in HTML). ``font_family``
    (the family the layout was measured with) comes first in the font list."""
    scale = 1.0 if width is None else float(width) / fig.width
    out: list[str] = []
    if standalone:
        out.append('<?xml version="1.0" encoding="UTF-8"?>\n')
    cls = f' class="{_esc(css_class, True)}"' if css_class else ""
    out.append(
        f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" version="1.1"{cls} '
        f'width="{_n(fig.width * scale)}" height="{_n(fig.height * scale)}" viewBox="0 0 {_n(fig.width)} {_n(fig.height)}" '
        f'font-family="{_font_stack(font_family)}">\n'
    )
    if fig.title:
        out.append(f"<title>{_esc(fig.title)}</title>\n")
    desc = " ".join([fig.description, *fig.notes]).strip()
    if desc:
        out.append(f"<desc>{_esc(desc)}</desc>\n")
    for note in fig.notes:
        out.append(f"<!-- {_esc(note).replace('--', '- -')} -->\n")
    out.append(f'<rect x="0" y="0" width="{_n(fig.width)}" height="{_n(fig.height)}" fill="{fig.background}"/>\n')
    for item in fig.items:
        out.append(_svg_item(item))
    out.append("</svg>\n")
    return "".join(out)


def _font_stack(family: str | None) -> str:
    if not family or family == FONT_FAMILY:
        return SVG_FONT_STACK
    clean = family.replace("'", "").replace('"', "").replace("<", "").replace("&", "")
    return f"'{clean}', {SVG_FONT_STACK}"


def _svg_item(item) -> str:
    if isinstance(item, Rect):
        attrs = f'x="{_n(item.x)}" y="{_n(item.y)}" width="{_n(item.w)}" height="{_n(item.h)}"'
        if item.cls:
            attrs = f'class="{item.cls}" ' + attrs
        attrs += f' fill="{item.fill}"' + _opacity("fill-opacity", item.fill_opacity) if item.fill else ' fill="none"'
        if item.stroke and item.stroke_width > 0:
            attrs += f' stroke="{item.stroke}" stroke-width="{_n(item.stroke_width)}"'
            attrs += _opacity("stroke-opacity", item.stroke_opacity)
        title = _title_el(item.title)
        return f"<rect {attrs}>{title}</rect>\n" if title else f"<rect {attrs}/>\n"
    if isinstance(item, Text):
        attrs = f'x="{_n(item.x)}" y="{_n(item.y)}" font-size="{_n(item.size)}" fill="{item.color}"'
        if item.anchor != "start":
            attrs += f' text-anchor="{item.anchor}"'
        if item.bold:
            attrs += ' font-weight="bold"'
        if item.underline:
            attrs += ' text-decoration="underline"'
        if item.rotate:
            attrs += f' transform="rotate({_n(item.rotate)} {_n(item.x)} {_n(item.y)})"'
        return f'<text {attrs} xml:space="preserve">{_esc(item.text)}</text>\n'
    if isinstance(item, Path):
        attrs = f'd="{_path_d(item.commands)}"'
        attrs += f' fill="{item.fill}"' + _opacity("fill-opacity", item.fill_opacity) if item.fill else ' fill="none"'
        if item.stroke:
            attrs += (f' stroke="{item.stroke}" stroke-width="{_n(item.width)}" stroke-linecap="{item.cap}"'
                      ' stroke-linejoin="round"' + _opacity("stroke-opacity", item.opacity))
            if item.dash:
                attrs += f' stroke-dasharray="{" ".join(_n(v) for v in item.dash)}"'
        return f"<path {attrs}/>\n"
    if isinstance(item, Circle):
        attrs = f'cx="{_n(item.cx)}" cy="{_n(item.cy)}" r="{_n(item.r)}"'
        attrs += f' fill="{item.fill}"' if item.fill else ' fill="none"'
        if item.stroke and item.stroke_width > 0:
            attrs += f' stroke="{item.stroke}" stroke-width="{_n(item.stroke_width)}"'
            if item.dash:
                attrs += f' stroke-dasharray="{" ".join(_n(v) for v in item.dash)}"'
        title = _title_el(item.title)
        return f"<circle {attrs}>{title}</circle>\n" if title else f"<circle {attrs}/>\n"
    if isinstance(item, Line):
        return (f'<line x1="{_n(item.x1)}" y1="{_n(item.y1)}" x2="{_n(item.x2)}" y2="{_n(item.y2)}" '
                f'stroke="{item.stroke}" stroke-width="{_n(item.width)}"{_opacity("stroke-opacity", item.opacity)}/>\n')
    if isinstance(item, Image):
        rgba = np.asarray(item.rgba, dtype=np.uint8)
        rows, cols = rgba.shape[:2]
        # upsample (nearest) so viewers that smooth bitmaps blur only within a cell
        k = max(1, min(4, 2048 // max(rows, cols)))
        if k > 1:
            rgba = np.repeat(np.repeat(rgba, k, axis=0), k, axis=1)
        data = base64.b64encode(encode_png(rgba)).decode("ascii")
        return (f'<image x="{_n(item.x)}" y="{_n(item.y)}" width="{_n(item.w)}" height="{_n(item.h)}" '
                f'preserveAspectRatio="none" image-rendering="optimizeSpeed" style="image-rendering:pixelated" '
                f'xlink:href="data:image/png;base64,{data}"/>\n')
    raise TypeError(f"unknown figure item {type(item).__name__}")
