"""Colour helpers shared by the attention widgets (no torch, no analysis imports).

``COLORMAPS`` maps the names offered to the person to pyqtgraph colour maps. All are
perceptually uniform (monotonic lightness), so a brighter cell always means more
attention; "blues" is light at zero, for figures printed on white paper. Signed values
(attribution scores, differences) use one diverging map instead, :data:`SIGNED_COLORMAP`:
blue below zero, white at zero, red above.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtGui import QColor

#: name offered to the person -> pyqtgraph colour map name
COLORMAPS: dict[str, str] = {
    "viridis": "viridis",
    "magma": "magma",
    "inferno": "inferno",
    "cividis": "cividis",
    "blues": "CET-L12",  # white -> blue; light background, for print
}
DEFAULT_COLORMAP = "viridis"
#: name of the diverging map of signed values (not one of the choices in COLORMAPS)
SIGNED_COLORMAP = "signed"
_SIGNED_PG_NAME = "CET-D1"  # blue - white - red, perceptually uniform on each side

#: colour maps whose low end is light: highlights must be drawn dark on them
LIGHT_COLORMAPS = frozenset({"blues"})

#: neutral look of structurally masked cells (causal upper triangle)
MASKED_BACKGROUND = QColor(226, 226, 226)
MASKED_HATCH = QColor(160, 160, 160)


def get_colormap(name: str) -> pg.ColorMap:
    """The pyqtgraph colour map for one of ``COLORMAPS``; ``ValueError`` for others."""
    try:
        return pg.colormap.get(COLORMAPS[name])
    except KeyError:
        raise ValueError(
            f"unknown colour map {name!r}; choose one of {', '.join(COLORMAPS)}"
        ) from None


def signed_colormap() -> pg.ColorMap:
    """The diverging colour map of signed values: blue < 0, white at 0, red > 0."""
    return pg.colormap.get(_SIGNED_PG_NAME)


def highlight_color(name: str) -> QColor:
    """An outline colour that stands out on every value of the given colour map."""
    light = name in LIGHT_COLORMAPS or name == SIGNED_COLORMAP
    return QColor(20, 20, 20) if light else QColor(255, 255, 255)


def path_color(name: str) -> QColor:
    """Colour of path squares: bright on dark maps, strong red on light ones, green on
    the signed map (whose ends are blue and red)."""
    if name == SIGNED_COLORMAP:
        return QColor(0, 140, 70)
    return QColor(220, 20, 60) if name in LIGHT_COLORMAPS else QColor(0, 255, 255)


def lookup_table(name: str, n: int = 256) -> np.ndarray:
    """``uint8 [n, 4]`` RGBA lookup table of a colour map (for numpy-side colouring);
    ``SIGNED_COLORMAP`` gives the diverging map of signed values."""
    cmap = signed_colormap() if name == SIGNED_COLORMAP else get_colormap(name)
    return cmap.getLookupTable(0.0, 1.0, n, alpha=True, mode="byte")


def selected_label_color(name: str) -> QColor:
    """Colour of the selected token's axis labels on a colour map."""
    return {"blues": QColor(20, 60, 160), SIGNED_COLORMAP: QColor(20, 20, 20)}.get(name, QColor(200, 30, 30))


def highlight_colors(name: str) -> dict[str, str]:
    """The heatmap's selection colours on colour map ``name`` as ``#rrggbb``, in the form
    :func:`analysis.io.figure_data.heatmap_figure` takes: ``outline`` (selected row and
    column), ``path`` (path cells), ``label`` (selected token's labels)."""
    return {"outline": highlight_color(name).name(), "path": path_color(name).name(),
            "label": selected_label_color(name).name()}


def colorize(
    values: np.ndarray, name: str, *, levels: tuple[float, float] = (0.0, 1.0)
) -> np.ndarray:
    """Map ``values`` (any shape) to ``uint8 [..., 4]`` RGBA; NaN becomes transparent."""
    lut = lookup_table(name)
    lo, hi = levels
    span = (hi - lo) or 1.0
    with np.errstate(invalid="ignore"):
        scaled = (np.asarray(values, dtype=np.float32) - lo) / span
    nan = np.isnan(scaled)
    idx = np.clip(np.nan_to_num(scaled, nan=0.0) * (len(lut) - 1) + 0.5, 0, len(lut) - 1)
    rgba = lut[idx.astype(np.intp)]
    rgba[nan] = 0
    return rgba
