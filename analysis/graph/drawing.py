"""How a graph is drawn, wherever it is drawn: which edges, how thick, how big a node, what
colour, how a label and a number read. Qt-free; the canvas (widgets/canvas_geometry.py)
and the figures (analysis/io/figures/graph.py) both use these, so a figure of a graph looks
like the graph on screen.

Examples
--------
>>> weight_bins(np.array([0.01, 0.25, 1.0])).tolist()
[0, 2, 4]
"""

from __future__ import annotations

import math

import numpy as np

from analysis.options import COMMUNITY_PALETTE, NO_COMMUNITY_COLOR

EDGE_BINS = 5
MAX_DRAWN_EDGES = 4000
ARROW_BUDGET = 1500  # strongest edges that get an arrowhead in straight layouts
BIN_WIDTHS = (1.0, 1.0, 1.6, 2.4, 3.4)  # pen width per bin, pixels
BIN_ALPHAS = (60, 95, 140, 190, 235)  # upper bounds; lowered where edges pile up
BIN_TARGET_OPACITY = (0.22, 0.38, 0.6, 0.82, 0.95)  # where edges overlap on average


def community_colors(communities: np.ndarray | None, n: int) -> list[str]:
    """Node fill colours: the palette entry of each community id (cycling), one neutral
    colour without communities or for ids below 0."""
    if communities is None:
        return [NO_COMMUNITY_COLOR] * n
    k = len(COMMUNITY_PALETTE)
    return [COMMUNITY_PALETTE[int(c) % k] if c >= 0 else NO_COMMUNITY_COLOR for c in communities]

def finite_weights(weights: np.ndarray) -> np.ndarray:
    """``|weights|`` as float64 with NaN and infinities read as 0 (they draw nothing).

    Edge weights may be any non-negative values (attention, flow, value norms, ...);
    everything that depends on them is relative to the strongest edge."""
    w = np.abs(np.asarray(weights, dtype=np.float64).ravel())
    return np.where(np.isfinite(w), w, 0.0)

def drawn_edge_mask(sources: np.ndarray, targets: np.ndarray, weights: np.ndarray,
                    limit: int | None = None) -> np.ndarray:
    """Edges worth drawing: not self-loops, and only the ``limit`` strongest (ties by order).

    Linear time (a partition, not a sort): broad heads keep ~200k edges at 512 tokens.
    Weights are compared by magnitude, non-finite ones as 0 (see :func:`finite_weights`).
    """
    limit = MAX_DRAWN_EDGES if limit is None else int(limit)
    sources = np.asarray(sources)
    targets = np.asarray(targets)
    keep = sources != targets
    candidates = np.flatnonzero(keep)
    if candidates.shape[0] > limit:
        if limit <= 0:
            return np.zeros_like(keep)
        strength = finite_weights(weights)[candidates]
        cut = np.partition(strength, candidates.shape[0] - limit)[candidates.shape[0] - limit]
        above = candidates[strength > cut]
        tied = candidates[strength == cut][: limit - above.shape[0]]  # earliest ties first
        keep = np.zeros_like(keep)
        keep[above] = True
        keep[tied] = True
    return keep

def weight_bins(weights: np.ndarray, n_bins: int = EDGE_BINS) -> np.ndarray:
    """Bin index ``0 .. n_bins-1`` per edge by weight relative to the strongest edge.

    Bin ``b`` holds the edges with ``b/n <= sqrt(w / max(w)) < (b+1)/n``; the strongest
    edge is in the top bin. The square root spreads the many small attention weights over
    the lower bins while the strongest links land in the top bin. Any scale works: the
    bins of ``w`` and of ``1000 * w`` are the same.
    """
    w = finite_weights(weights)
    if w.size == 0:
        return np.zeros(0, dtype=np.int64)
    wmax = w.max()
    if wmax <= 0:
        return np.zeros(w.shape, dtype=np.int64)
    b = np.floor(np.sqrt(w / wmax) * n_bins).astype(np.int64)
    return np.clip(b, 0, n_bins - 1)

def node_px_range(n: int) -> tuple[float, float, float]:
    """(smallest, largest, uniform) node diameter in pixels for a graph of n nodes."""
    if n <= 64:
        return 7.0, 26.0, 12.0
    if n <= 200:
        return 5.0, 18.0, 9.0
    return 4.0, 14.0, 6.0

def node_sizes(values: np.ndarray | None, n: int) -> np.ndarray:
    """Node diameters in whole pixels: uniform for ``values`` None, else min-max scaled so
    that the node's *area* grows with the value (non-finite values get the smallest
    size; all-equal values the middle of the range). Whole pixels keep pyqtgraph's symbol
    atlas small."""
    if n == 0:
        return np.zeros(0)
    lo_px, hi_px, uniform = node_px_range(n)
    if values is None:
        return np.full(n, uniform)
    v = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(v)
    r = np.zeros(n)
    if finite.any():
        lo = v[finite].min()
        hi = v[finite].max()
        r[finite] = (v[finite] - lo) / (hi - lo) if hi > lo else 0.5
    return np.round(lo_px + (hi_px - lo_px) * np.sqrt(r))

def display_label(text: str) -> str:
    """A token as the canvas writes it: blank tokens (spaces, newlines) by their repr."""
    text = str(text)
    if text.strip() == "":
        return repr(text)
    return text

def format_number(value: float) -> str:
    """``0.300``; very large or very small (non-zero) values in 3 significant digits."""
    v = float(value)
    if not math.isfinite(v):
        return "nan"
    if v != 0 and (abs(v) >= 1e4 or abs(v) < 1e-3):
        return f"{v:.3g}"
    return f"{v:.3f}"
