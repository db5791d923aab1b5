"""The graph canvas's geometry and drawing decisions, in plain numpy (no Qt).

Everything :class:`widgets.graph_canvas.GraphCanvas` computes before it hands anything
to Qt lives here, so it can be tested with hand-computed cases and read without the
widget around it:

* which edges are drawn (:func:`drawn_edge_mask`), their weight bins
  (:func:`weight_bins`), which bins are drawn one pixel wide (:func:`thin_bins`), each
  bin's opacity (:func:`bin_alpha`) and which edges get an arrowhead
  (:func:`arrow_edges`);
* edge coordinates: straight segments (:func:`straight_xy`), arcs
  (:func:`arc_xy`) and arrowheads (:func:`arrow_xy`);
* nodes: pixel size ranges (:func:`node_px_range`), sizes from a metric
  (:func:`node_sizes`), hit-testing (:func:`nearest_node`), rank within a layer
  (:func:`layer_ranks`);
* input: :func:`check_graph` and :func:`check_positions` (``ValueError`` naming what
  does not fit), node colours by community (:func:`community_colors`);
* labels: their rectangles (:func:`label_rects`) and the greedy, overlap-free choice of
  which to draw (:func:`place_labels`); number and label text (:func:`format_number`,
  :func:`display_label`).

Coordinates are the canvas's data units unless a name says pixels (``px``: data units
per screen pixel). This module imports only numpy, math and Qt-free analysis modules (the drawing rules it
shares with the figures live in analysis/graph/drawing.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from analysis.graph.drawing import (  # noqa: F401  (re-exported: the canvas's rules)
    ARROW_BUDGET,
    BIN_ALPHAS,
    BIN_TARGET_OPACITY,
    BIN_WIDTHS,
    EDGE_BINS,
    MAX_DRAWN_EDGES,
    community_colors,
    display_label,
    drawn_edge_mask,
    finite_weights,
    format_number,
    node_px_range,
    node_sizes,
    weight_bins,
)
from analysis.options import COMMUNITY_PALETTE, NO_COMMUNITY_COLOR  # noqa: F401  (re-exported)

__all__ = [
    "ARROW_BUDGET",
    "COMMUNITY_PALETTE",
    "NO_COMMUNITY_COLOR",
    "BIN_ALPHAS",
    "BIN_TARGET_OPACITY",
    "BIN_WIDTHS",
    "EDGE_BINS",
    "MAX_DRAWN_EDGES",
    "THICK_EDGE_BUDGET",
    "arc_samples",
    "arc_xy",
    "arrow_edges",
    "arrow_xy",
    "bin_alpha",
    "check_graph",
    "check_positions",
    "community_colors",
    "display_label",
    "drawn_edge_mask",
    "edge_length",
    "finite_weights",
    "format_number",
    "label_priority",
    "label_rects",
    "layer_ranks",
    "nearest_node",
    "node_px_range",
    "node_sizes",
    "place_labels",
    "straight_xy",
    "thin_bins",
    "weight_bins",
]

THICK_EDGE_BUDGET = 1500  # edges drawn wider than 1 px (wide AA strokes are slow)
#: Edges drawn at most; the strongest are kept. A broad 512-token head keeps ~200k edges at
#: 90% coverage: drawing them all costs ~0.3 s on the GUI thread and shows only a haze.
#: Measured on a 700x600 canvas, broad head, force layout: 12,000 edges took 96 ms to paint,
#: 4,000 took 46 ms (within the 50 ms stall budget) and looked the same.

ARC_LENGTH_FACTOR = 1.48  # an arc of height |d|/2 is ~1.48 times its chord


# ----------------------------------------------------------------------------- input


def check_graph(n: int, sources, targets, weights, metrics=None, communities=None,
                node_layer=None):
    """Validated arrays of a graph of ``n`` nodes: ``(sources, targets, weights, metrics,
    communities, node_layer)`` as int64, int64, float64, ``{name: float64 [n]}``, int64
    ``[n]`` or None, ``[n]`` or None. ``ValueError`` saying what does not fit."""
    s = np.asarray(sources, dtype=np.int64).ravel()
    t = np.asarray(targets, dtype=np.int64).ravel()
    w = np.asarray(weights, dtype=np.float64).ravel()
    if not (s.shape == t.shape == w.shape):
        raise ValueError(
            f"sources, targets and weights must have the same length, got "
            f"{s.shape[0]}, {t.shape[0]}, {w.shape[0]}"
        )
    if s.size and (min(s.min(), t.min()) < 0 or max(s.max(), t.max()) >= n):
        raise ValueError(f"edge endpoints must be token indices in [0, {n})")
    clean: dict[str, np.ndarray] = {}
    for name, values in (metrics or {}).items():
        arr = np.asarray(values, dtype=np.float64).ravel()
        if arr.shape[0] != n:
            raise ValueError(f"metric {name!r} has {arr.shape[0]} values for {n} tokens")
        clean[str(name)] = arr
    if communities is not None:
        communities = np.asarray(communities).ravel().astype(np.int64)
        if communities.shape[0] != n:
            raise ValueError(f"communities has {communities.shape[0]} values for {n} tokens")
    if node_layer is not None:
        node_layer = np.asarray(node_layer).ravel()
        if node_layer.shape[0] != n:
            raise ValueError(f"node_layer has {node_layer.shape[0]} values for {n} tokens")
    return s, t, w, clean, communities, node_layer


def check_positions(positions, n: int) -> np.ndarray:
    """``positions`` as a float64 ``[n, 2]`` copy; ``ValueError`` for another shape or
    non-finite coordinates."""
    pos = np.array(positions, dtype=np.float64)
    if pos.shape != (n, 2):
        raise ValueError(f"positions must have shape ({n}, 2), got {pos.shape}")
    if not np.isfinite(pos).all():
        raise ValueError("positions must be finite numbers")
    return pos




# ----------------------------------------------------------------------------- edges








def thin_bins(drawn_per_bin: Sequence[int], budget: int = THICK_EDGE_BUDGET,
              widths: Sequence[float] = BIN_WIDTHS) -> list[bool]:
    """Which bins are drawn one pixel wide although their nominal width is wider.

    Wide antialiased strokes are slow, so only ``budget`` edges in all may be drawn
    wide: bins take from the budget from the strongest down; the first wide bin that does
    not fit, and every wide bin below it that has edges, is drawn thin."""
    thin = [False] * len(widths)
    for b in range(len(widths) - 1, -1, -1):
        count = int(drawn_per_bin[b])
        if widths[b] <= 1.0:
            continue
        if count > budget:
            thin[b] = True
            budget = 0
        else:
            budget -= count
    return thin


def bin_alpha(b: int, length: float, px: float | None, width: float, area: float) -> float:
    """Opacity (0..255) of the pen of weight bin ``b``.

    Thin lines are drawn one by one, so where thousands of weak edges overlap their
    opacity adds up to a solid blot. The opacity is chosen so that edges overlapping as
    often as they do on average (``2.5 x length x px x width / area``: total stroke area
    in pixels over the drawing's area) reach the bin's target opacity, never more than
    its nominal one (``BIN_ALPHAS``), never less than 6."""
    alpha = float(BIN_ALPHAS[b])
    if px is not None and area > 0 and length > 0:
        overlap = 2.5 * length * px * width / area
        if overlap > 1.0:
            target = BIN_TARGET_OPACITY[b]
            alpha = min(alpha, 255.0 * (1.0 - (1.0 - target) ** (1.0 / overlap)))
    return max(alpha, 6.0)


def arrow_edges(bins: np.ndarray, keep: np.ndarray, weights: np.ndarray, *,
                budget: int = ARROW_BUDGET, n_bins: int = EDGE_BINS) -> list[np.ndarray]:
    """Per bin, the indices of the drawn edges that get an arrowhead.

    At most ``budget`` in all, the strongest bins first and the strongest edges within a
    bin; in graphs of more than 2,000 edges the weakest bin gets none (its arrowheads only
    pile up on the hubs)."""
    w = finite_weights(weights)
    lowest = 0 if bins.shape[0] <= 2000 else 1
    out: list[np.ndarray] = [np.zeros(0, dtype=np.int64)] * n_bins
    for b in range(n_bins - 1, lowest - 1, -1):
        sel = np.flatnonzero((bins == b) & keep)
        if sel.shape[0] > budget:
            sel = sel[np.argsort(-w[sel], kind="stable")[:budget]]
        budget -= sel.shape[0]
        out[b] = sel
    return out


def edge_length(pos: np.ndarray, s: np.ndarray, t: np.ndarray, arc: bool) -> float:
    """Total drawn length of edges ``s -> t`` (arcs are ~1.48 times their chord)."""
    if s.shape[0] == 0:
        return 0.0
    d = pos[t] - pos[s]
    length = float(np.hypot(d[:, 0], d[:, 1]).sum())
    return length * (ARC_LENGTH_FACTOR if arc else 1.0)


def straight_xy(pos: np.ndarray, s: np.ndarray, t: np.ndarray):
    """Segments ``pos[s] -> pos[t]`` as x, y (interleaved start, end) and ``"pairs"``."""
    m = s.shape[0]
    x = np.empty(2 * m)
    y = np.empty(2 * m)
    x[0::2] = pos[s, 0]
    x[1::2] = pos[t, 0]
    y[0::2] = pos[s, 1]
    y[1::2] = pos[t, 1]
    return x, y, "pairs"


def arc_samples(m: int) -> int:
    """Points per arc: smooth for a few edges, cheaper (still round) for thousands."""
    return 32 if m <= 1000 else (16 if m <= 2500 else 10)


def arc_xy(pos: np.ndarray, s: np.ndarray, t: np.ndarray, k: int | None = None):
    """Quadratic Bezier arcs ``pos[s] -> pos[t]`` bulging to the left of the direction of
    travel, ``k`` points each; returns x, y and the connect mask (False ends an arc).

    The control point sits ``|d|`` left of the chord's midpoint, so an arc's highest
    point is ``|d| / 2`` from its chord. On the arc layout's horizontal line that puts
    ``i -> j`` with ``i < j`` above the line and ``i > j`` below it; for dragged nodes
    the rule still holds.
    """
    m = s.shape[0]
    k = k or arc_samples(m)
    p = pos[s]
    q = pos[t]
    d = q - p
    normal = np.column_stack([-d[:, 1], d[:, 0]])  # left of travel, length = |d|
    c = 0.5 * (p + q) + normal  # control point: arc height = |d| / 2
    u = np.linspace(0.0, 1.0, k)
    a = ((1 - u) ** 2)[None, :, None]
    b = (2 * u * (1 - u))[None, :, None]
    e = (u**2)[None, :, None]
    pts = a * p[:, None, :] + b * c[:, None, :] + e * q[:, None, :]  # [m, k, 2]
    connect = np.ones(m * k, dtype=bool)
    connect[k - 1 :: k] = False
    return pts[:, :, 0].ravel(), pts[:, :, 1].ravel(), connect


def arrow_xy(tip_from: np.ndarray, tip_to: np.ndarray, back_px: np.ndarray, length_px: float,
             px: float):
    """Triangles pointing from ``tip_from`` towards ``tip_to``.

    The tip sits ``back_px`` pixels before ``tip_to`` (the node's rim), the base
    ``length_px`` pixels behind the tip and ``0.84 x length_px`` wide. Edges too short to
    show an arrowhead (under ``back_px + length_px + 2`` pixels) get none. Returns x, y,
    connect for a path of unclosed triangles (tip, left, right; filled with the winding
    rule)."""
    d = tip_to - tip_from
    L = np.hypot(d[:, 0], d[:, 1])
    back_px = np.broadcast_to(np.asarray(back_px, dtype=np.float64), L.shape)
    ok = L > (back_px + length_px + 2.0) * px
    d, L, tip_to, back_px = d[ok], L[ok], tip_to[ok], back_px[ok]
    u = d / L[:, None]
    perp = np.column_stack([-u[:, 1], u[:, 0]])
    tip = tip_to - u * (back_px * px)[:, None]
    base = tip - u * (length_px * px)
    half = 0.42 * length_px * px
    left = base + perp * half
    right = base - perp * half
    m = tip.shape[0]
    pts = np.stack([tip, left, right], axis=1)  # [m, 3, 2]
    connect = np.ones(m * 3, dtype=bool)
    connect[2::3] = False
    return pts[:, :, 0].ravel(), pts[:, :, 1].ravel(), connect


# ----------------------------------------------------------------------------- nodes






def label_priority(key: np.ndarray) -> np.ndarray:
    """Node indices by descending ``key`` (ties by index; NaN last): the order in which
    labels claim room."""
    key = np.asarray(key, dtype=np.float64)
    if key.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    key = np.where(np.isfinite(key), key, -np.inf)
    return np.argsort(-key, kind="stable")


def nearest_node(pos: np.ndarray, x: float, y: float, px: float, sizes: np.ndarray,
                 slack_px: float = 2.0) -> int:
    """Index of the node drawn under ``(x, y)``: the nearest whose disc (radius
    ``sizes / 2 + slack_px`` pixels) contains the point; -1 if none."""
    if pos.shape[0] == 0 or not px > 0:
        return -1
    d = np.hypot(pos[:, 0] - x, pos[:, 1] - y) / px  # pixels
    d = np.where(d <= sizes * 0.5 + slack_px, d, np.inf)
    i = int(np.argmin(d))
    return i if np.isfinite(d[i]) else -1


def layer_ranks(layer: np.ndarray) -> np.ndarray:
    """Each node's rank among the nodes of its layer, in list order (its column in the
    layered layout: tokens of a layered graph are listed layer by layer)."""
    layer = np.asarray(layer)
    order = np.zeros(layer.shape[0], dtype=np.int64)
    for value in np.unique(layer):
        idx = np.flatnonzero(layer == value)
        order[idx] = np.arange(idx.shape[0])
    return order


# ----------------------------------------------------------------------------- labels


def label_rects(dx: np.ndarray, dy: np.ndarray, radius: np.ndarray, widths: np.ndarray,
                height: float, scale: float, mode: str, leftward: np.ndarray | None = None):
    """Screen rectangles ``[n, 4]`` (left, top, right, bottom; pixels, y down) of node labels.

    ``mode`` "vertical" (the arc layout) puts a rotated label below the node; otherwise
    the label sits right of the node, or left of it where ``leftward`` is True (the left
    half of the circular layout). ``radius`` and ``widths`` are in pixels; ``scale`` is the
    export's resolution scale (1 on screen)."""
    n = dx.shape[0]
    out = np.empty((n, 4))
    if mode == "vertical":
        out[:, 0] = dx - height / 2
        out[:, 1] = dy + radius + 3 * scale
        out[:, 2] = out[:, 0] + height
        out[:, 3] = out[:, 1] + widths + 4 * scale
        return out
    left_of = np.zeros(n, dtype=bool) if leftward is None else np.asarray(leftward, dtype=bool)
    w = widths + 6 * scale
    out[:, 0] = np.where(left_of, dx - radius - 3 * scale - w, dx + radius + 3 * scale)
    out[:, 2] = out[:, 0] + w
    out[:, 1] = dy - height / 2
    out[:, 3] = out[:, 1] + height
    return out


def _overlap(a, b) -> bool:
    """Whether two (left, top, right, bottom) rectangles share area (touching is not)."""
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def place_labels(order: Sequence[int], rects: np.ndarray, forced: set[int], width: float,
                 height: float, *, max_free: int = 150, gap: float = 3.0,
                 cell: float = 64.0) -> list[tuple[int, bool]]:
    """Greedy, overlap-free choice of labels to draw: ``[(node, is_forced), ...]`` in
    placement order.

    Nodes are tried in ``order``. A forced label (hovered, selected, path ends, path) is
    always drawn. Any other is skipped when its rectangle lies outside the
    ``width x height`` screen (culling), when ``max_free`` unforced labels are already
    placed, or when it comes within ``gap`` pixels of a label already placed. A grid of
    ``cell``-pixel buckets keeps the overlap test local."""
    placed: list[np.ndarray] = []
    grid: dict[tuple[int, int], list[int]] = {}
    chosen: list[tuple[int, bool]] = []
    free = 0
    for i in order:
        r = rects[i]
        is_forced = i in forced
        if not is_forced and (r[2] < 0 or r[0] > width or r[3] < 0 or r[1] > height):
            continue
        gx0, gx1 = int(r[0] // cell), int(r[2] // cell)
        gy0, gy1 = int(r[1] // cell), int(r[3] // cell)
        if not is_forced:
            if free >= max_free:
                continue
            probe = (r[0] - gap, r[1] - gap, r[2] + gap, r[3] + gap)
            if any(
                _overlap(placed[j], probe)
                for gx in range(gx0, gx1 + 1)
                for gy in range(gy0, gy1 + 1)
                for j in grid.get((gx, gy), ())
            ):
                continue
            free += 1
        k = len(placed)
        placed.append(r)
        for gx in range(gx0, gx1 + 1):
            for gy in range(gy0, gy1 + 1):
                grid.setdefault((gx, gy), []).append(k)
        chosen.append((int(i), is_forced))
    return chosen


# ----------------------------------------------------------------------------- text




