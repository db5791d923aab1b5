"""Shapes, text measuring, colours, numbers and the pieces every figure shares. No Qt (see analysis/io/figure_data.py)."""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

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


def colorbar_title(scale: str, name: str | None = None) -> str:
    """The colour bar's title: what the numbers are (``name``, default "attention
    weight") and the scale's note.

    Examples
    --------
    >>> colorbar_title("log", "ALTI contribution")
    'ALTI contribution (log scale)'
    >>> colorbar_title("signed", "attribution score")
    'attribution score (signed, 0 = white)'
    """
    if name is None or name == COLORBAR_LABELS["linear"]:
        return COLORBAR_LABELS[scale]
    signed = f"{name} (0 = white)" if "signed" in name else f"{name} (signed, 0 = white)"
    return {"linear": name, "log": f"{name} (log scale)", "signed": signed}[scale]


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


