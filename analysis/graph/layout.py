"""Node layouts for attention graphs. Pure numpy: no Qt, no networkx.

Every function returns a float64 array of shape ``[n, 2]`` (x, y) with a typical
spacing between neighbouring nodes of about one unit, so the different layouts of one
graph have comparable scales (the view fits them anyway; this keeps arc heights, arrow
sizes and label spacing consistent).

Conventions: nodes are tokens in reading order ``0 .. n-1``; an edge ``i -> j`` with
weight ``A[i, j]`` means "token i attends to token j".  ``y`` grows upwards (as in a
pyqtgraph ViewBox).

All functions are deterministic; :func:`force_layout` takes a ``seed`` for its initial
positions and returns the same array for the same inputs and seed.  They are cheap
enough to run in the GUI thread for small graphs; the app may run them in its worker
for large ones.
"""

from __future__ import annotations

import numpy as np

from analysis.options import LAYOUT_KINDS

__all__ = [
    "LAYOUT_KINDS",
    "arc_layout",
    "circular_layout",
    "force_layout",
    "layered_layout",
]


def _check_n(n: int) -> int:
    n = int(n)
    if n < 0:
        raise ValueError(f"number of nodes must be >= 0, got {n}")
    return n


def arc_layout(n: int) -> np.ndarray:
    """Tokens on a horizontal line in reading order: node ``i`` at ``(i, 0)``."""
    n = _check_n(n)
    pos = np.zeros((n, 2), dtype=np.float64)
    pos[:, 0] = np.arange(n, dtype=np.float64)
    return pos


def circular_layout(n: int) -> np.ndarray:
    """Tokens on a circle, clockwise in reading order, token 0 at the top.

    The radius grows with ``n`` so that neighbours stay about one unit apart
    (a minimum radius keeps tiny graphs from collapsing to a point).
    """
    n = _check_n(n)
    if n == 0:
        return np.zeros((0, 2), dtype=np.float64)
    if n == 1:
        return np.zeros((1, 2), dtype=np.float64)
    radius = max(n / (2.0 * np.pi), 1.0)
    theta = np.pi / 2.0 - 2.0 * np.pi * np.arange(n) / n  # clockwise from 12 o'clock
    return np.column_stack([radius * np.cos(theta), radius * np.sin(theta)])


def _as_edges(n, sources, targets, weights):
    s = np.asarray(sources, dtype=np.int64).ravel()
    t = np.asarray(targets, dtype=np.int64).ravel()
    if weights is None:
        w = np.ones(s.shape, dtype=np.float64)
    else:
        w = np.asarray(weights, dtype=np.float64).ravel()
    if not (s.shape == t.shape == w.shape):
        raise ValueError(
            f"sources, targets and weights must have the same length, got "
            f"{s.shape[0]}, {t.shape[0]}, {w.shape[0]}"
        )
    if s.size and (s.min() < 0 or t.min() < 0 or s.max() >= n or t.max() >= n):
        raise ValueError(f"edge endpoints must lie in [0, {n})")
    w = np.where(np.isfinite(w), np.abs(w), 0.0)
    return s, t, w


def force_layout(
    n: int,
    sources: np.ndarray,
    targets: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    seed: int = 0,
    iterations: int = 120,
    init: np.ndarray | None = None,
    gravity: float = 0.05,
) -> np.ndarray:
    """Weighted Fruchterman-Reingold layout, vectorised over all node pairs.

    Edge direction is ignored (``A[i, j]`` and ``A[j, i]`` both pull ``i`` and ``j``
    together); the pull of an edge is proportional to its weight relative to the
    strongest edge, so the strong attention links set the shape and the many weak ones
    only nudge it.  A weak pull to the centre (``gravity``) keeps disconnected
    components and isolated tokens in view.

    Cost is ``O(iterations * n^2)`` with a handful of dense ``n x n`` float32 passes per
    iteration (about 0.2 s for 512 nodes; independent of the edge count beyond building
    the weight matrix).

    Parameters
    ----------
    n : number of nodes.
    sources, targets, weights : edge list (``weights`` None means all 1).
    seed : seeds the random initial positions (ignored when ``init`` is given).
    iterations : number of cooling steps.
    init : optional ``[n, 2]`` starting positions (e.g. the previous layout).
    gravity : strength of the pull towards the centre.
    """
    n = _check_n(n)
    s, t, w = _as_edges(n, sources, targets, weights)
    if n == 0:
        return np.zeros((0, 2), dtype=np.float64)
    if n == 1:
        return np.zeros((1, 2), dtype=np.float64)

    # Symmetric dense weight matrix, strongest edge = 1, no self loops.
    W = np.zeros((n, n), dtype=np.float64)
    keep = s != t
    np.add.at(W, (s[keep], t[keep]), w[keep])
    W = W + W.T
    wmax = W.max()
    if wmax > 0:
        W /= wmax
    W = W.astype(np.float32)

    side = np.sqrt(n)  # area ~ n with ideal distance k = 1
    if init is not None:
        pos = np.array(init, dtype=np.float64, copy=True)
        if pos.shape != (n, 2):
            raise ValueError(f"init must have shape ({n}, 2), got {pos.shape}")
        pos -= pos.mean(axis=0)
    else:
        rng = np.random.default_rng(seed)
        pos = rng.uniform(-0.5, 0.5, size=(n, 2)) * side
    pos = pos.astype(np.float32)

    k2 = np.float32(1.0)  # ideal distance k = 1
    eps = np.float32(1e-4)
    iterations = max(int(iterations), 1)
    t0 = 0.1 * side + 1.0
    temps = (t0 * (1.0 - np.arange(iterations) / iterations) ** 1.5 + 0.01).astype(np.float32)
    g = np.float32(gravity)
    c = np.empty((n, n), dtype=np.float32)
    for it in range(iterations):
        x = np.ascontiguousarray(pos[:, 0])
        y = np.ascontiguousarray(pos[:, 1])
        dx = x[:, None] - x[None, :]
        dy = y[:, None] - y[None, :]
        np.multiply(dx, dx, out=c)
        c += dy * dy
        c += eps
        d = np.sqrt(c)
        # force along (p_i - p_j): repulsion k^2/d^2, attraction W * d / k
        np.divide(k2, c, out=c)
        c -= W * d
        np.fill_diagonal(c, 0.0)
        # two matrix-vector products, not `c @ pos`: OpenBLAS runs that [n, n] x [n, 2]
        # product multithreaded, which is ~100x slower on a busy 2-core machine
        disp = pos * c.sum(axis=1)[:, None]
        disp[:, 0] -= c @ x
        disp[:, 1] -= c @ y
        disp -= g * pos * np.sqrt(np.float32(n))
        length = np.sqrt((disp * disp).sum(axis=1)) + eps
        scale = np.minimum(length, temps[it]) / length
        pos = pos + disp * scale[:, None]

    pos = pos.astype(np.float64)
    pos -= pos.mean(axis=0)
    # dense attention graphs pull everything together: rescale so that the median
    # distance to the nearest neighbour is one unit, like the other layouts
    d2 = ((pos[:, None, :] - pos[None, :, :]) ** 2).sum(axis=2)
    np.fill_diagonal(d2, np.inf)
    nearest = np.sqrt(np.median(d2.min(axis=1)))
    if np.isfinite(nearest) and nearest > 1e-9:
        pos /= nearest
    return pos


def layered_layout(
    node_layer: np.ndarray,
    node_order: np.ndarray,
    *,
    row_gap: float | None = None,
) -> np.ndarray:
    """Layout for graphs across layers (rollout / attention flow graphs).

    Rows are layers, layer 0 (the input) at the bottom and the last layer at the top;
    within a row nodes go left to right by ``node_order`` (usually the token index).
    The x position is the dense rank of ``node_order`` over the whole graph, so the same
    token sits in the same column in every layer even when some layers lack it.

    ``row_gap`` is the vertical distance between rows; by default it grows with the
    number of columns so that a wide graph with few layers is not a flat strip.
    """
    layer = np.asarray(node_layer).ravel()
    order = np.asarray(node_order).ravel()
    if layer.shape != order.shape:
        raise ValueError(
            f"node_layer and node_order must have the same length, got {layer.shape[0]} "
            f"and {order.shape[0]}"
        )
    n = layer.shape[0]
    if n == 0:
        return np.zeros((0, 2), dtype=np.float64)
    _, row = np.unique(layer, return_inverse=True)  # dense rank of layers
    cols, col = np.unique(order, return_inverse=True)
    n_rows = int(row.max()) + 1
    n_cols = cols.shape[0]
    if row_gap is None:
        row_gap = max(1.0, 0.6 * n_cols / max(n_rows - 1, 1))
    pos = np.empty((n, 2), dtype=np.float64)
    pos[:, 0] = col.astype(np.float64)
    pos[:, 1] = row.astype(np.float64) * float(row_gap)
    return pos
