"""The graph figure and its legend. No Qt (see analysis/io/figure_data.py)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np

from analysis.graph.drawing import (
    ARROW_BUDGET,
    BIN_ALPHAS,
    BIN_TARGET_OPACITY,
    BIN_WIDTHS,
    EDGE_BINS,
    MAX_DRAWN_EDGES,
    community_colors,
    drawn_edge_mask,
    finite_weights,
    format_number,
    node_px_range,
    node_sizes,
    weight_bins,
)
from analysis.io.figures.base import (
    APPROX_METRICS,
    AXIS_SIZE,
    BASELINE,
    LABEL_SIZE,
    MARGIN,
    MUTED_COLOR,
    TEXT_COLOR,
    Circle,
    Figure,
    Line,
    Path,
    Rect,
    Text,
    TextMetrics,
    _clean_text,
    _elide,
    _notes,
    _title,
    nice_step,
)
from analysis.options import COMMUNITY_PALETTE, NO_COMMUNITY_COLOR

# ----------------------------------------------------------------------------- graph

# Edge bins, widths, node sizes and colours: analysis.graph.drawing, as on the canvas.

EDGE_COLOR = "#2c3a4a"
GRAPH_COLORS = {"path": "#d81b60", "source": "#1a9850", "target": "#7b3294", "selected": "#222222"}
#: Generated tokens (a generation's answer): a ring and a tinted label, as the heatmap's axes tint them.
GENERATED_COLOR = "#bf5b00"
ARC_NOTE = "Arcs above the line: a token attends to a later token; below: to an earlier one."
DIRECTION_NOTE = "Arrowheads point to the attended token."














#: "L2 · cat" -> "cat": a layered graph's node labels name their level, the column label does not.
_LEVEL_PREFIX = re.compile(r"^L\d+ · ")


def layered_column_text(label: str) -> str:
    """A layered graph's node label without its level: "L2 · cat" -> "cat"."""
    return _LEVEL_PREFIX.sub("", str(label), count=1)


def layered_label_plan(
    x: np.ndarray,
    y: np.ndarray,
    radius: np.ndarray,
    node_layer: np.ndarray,
    texts: Sequence[str],
    measure: Callable[[str, bool], float],
    height: float,
    *,
    forced: Iterable[int] = (),
    gap: float = 3.0,
    max_length: float | None = None,
    elide: Callable[[str, float, bool], str] | None = None,
) -> list[tuple[int, tuple[float, float, float, float], str, bool, bool]]:
    """Where the labels of a graph drawn in rows (the layered layout) go, none overlapping.

    A node label per node ("L2 · cat") piles up: in a row the nodes are closer than a
    label is long. Instead each **column** (the nodes sharing an ``x``: one token through
    the levels) gets its token's text once, written vertically under the column's lowest
    node, and each **row** its level ("L2") left of its leftmost node. Columns are thinned
    to a regular stride (1, 2, 5, 10, ... columns, the smallest at which ``height + gap``
    pixels fit between labels); the columns of ``forced`` nodes (hovered, selected, path)
    are always labelled, in bold, and the regular labels near them make room; a forced
    label that would still touch another is moved further down, past it. Rows are thinned
    the same way.

    Parameters
    ----------
    x, y : arrays ``[n]``
        Node centres in pixels, y pointing down.
    radius : array ``[n]``
        Node radii in pixels.
    node_layer : array ``[n]``
        Each node's level (row).
    texts : sequence of ``n`` str
        Node labels; a leading "Lk · " is dropped for the column label.
    measure : callable ``(text, bold) -> float``
        Text width in pixels.
    height : float
        One line of label text, in pixels.
    max_length, elide : float and callable ``(text, pixels, bold) -> str``, optional
        A column label longer than ``max_length`` pixels is shortened by ``elide`` (the
        canvas keeps its labels inside the room it has under the graph).

    Returns
    -------
    list of ``(node, (left, top, right, bottom), text, vertical, bold)``
        One entry per label drawn: the node it stands for (a column's lowest node, a row's
        leftmost), its rectangle in pixels, its text, whether it is written vertically
        (columns) and whether it is bold (forced). No two rectangles share area.

    Examples
    --------
    >>> x = np.array([0.0, 10, 0, 10]); y = np.array([100.0, 100, 0, 0])
    >>> plan = layered_label_plan(x, y, np.full(4, 3.0), np.array([0, 0, 1, 1]),
    ...                           ["L0 · a", "L0 · b", "L1 · a", "L1 · b"],
    ...                           lambda text, bold: 7.0 * len(text), 14.0)
    >>> [(node, text) for node, _, text, _, _ in plan]
    [(0, 'a'), (0, 'L0'), (2, 'L1')]
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    radius = np.asarray(radius, dtype=np.float64)
    layer = np.asarray(node_layer).ravel()
    n = x.shape[0]
    if n == 0:
        return []
    forced = {int(i) for i in forced if 0 <= int(i) < n}
    out: list = []

    # columns: nodes sharing an x, labelled under their lowest node (largest y)
    columns, column_of = np.unique(np.round(x, 3), return_inverse=True)
    by_column = np.lexsort((-y, column_of))
    lowest = by_column[np.r_[0, np.flatnonzero(np.diff(column_of[by_column])) + 1]]
    spacing = float(np.median(np.diff(columns))) if len(columns) > 1 else float("inf")
    step = nice_step((height + gap) / spacing) if spacing > 0 else 1
    forced_columns = sorted({int(column_of[i]) for i in forced})
    strong: list[tuple[float, float, float, float]] = []  # forced labels: every other label keeps clear

    def column_rect(column: int, bold: bool):
        node = int(lowest[column])
        text = layered_column_text(texts[node])
        if max_length is not None and elide is not None and measure(text, bold) > max_length:
            text = elide(text, max_length, bold)
        left, top = x[node] - height / 2, y[node] + radius[node] + 3.0
        return node, text, (left, top, left + height, top + measure(text, bold) + 4.0)

    def widened(rect):
        return (rect[0] - gap, rect[1] - gap, rect[2] + gap, rect[3] + gap)

    for column in forced_columns:  # always drawn; moved down past a forced label it would touch
        node, text, rect = column_rect(column, True)
        for _ in range(len(strong) + 1):
            blocking = [other for other in strong if _overlaps(rect, widened(other))]
            if not blocking:
                break
            shift = max(other[3] for other in blocking) + gap - rect[1]
            rect = (rect[0], rect[1] + shift, rect[2], rect[3] + shift)
        strong.append(rect)
        out.append((node, rect, text, True, True))
    previous = None  # regular labels go left to right: each keeps clear of the one before it
    for column in range(0, len(columns), step):
        if column in forced_columns:
            continue
        node, text, rect = column_rect(column, False)
        probe = widened(rect)
        if (previous is not None and _overlaps(previous, probe)) or any(_overlaps(o, probe) for o in strong):
            continue
        previous = rect
        out.append((node, rect, text, True, False))

    # rows: the level, left of the row's leftmost node, thinned like the columns
    levels, row_of = np.unique(layer, return_inverse=True)
    by_row = np.lexsort((x, row_of))
    leftmost = by_row[np.r_[0, np.flatnonzero(np.diff(row_of[by_row])) + 1]]
    rows = sorted(zip(leftmost.tolist(), levels.tolist(), strict=True), key=lambda item: -y[item[0]])
    heights = np.sort(y[leftmost])
    row_spacing = float(np.median(np.diff(heights))) if len(rows) > 1 else float("inf")
    row_step = nice_step((height + gap) / row_spacing) if row_spacing > 0 else 1
    placed = [rect for _, rect, *_ in out]
    for k, (node, level) in enumerate(rows):
        if k % row_step and k != len(rows) - 1:
            continue
        text = f"L{level}"
        width = measure(text, False) + 6.0
        right = x[node] - max(radius[node], height / 2) - 6.0
        rect = (right - width, y[node] - height / 2, right, y[node] + height / 2)
        if not any(_overlaps(other, widened(rect)) for other in placed):
            placed.append(rect)
            out.append((int(node), rect, text, False, False))
    return [(node, tuple(float(v) for v in rect), text, vertical, bold) for node, rect, text, vertical, bold in out]


def _display_label(text: str) -> str:
    text = str(text)
    return repr(text) if text.strip() == "" else _clean_text(text)




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
    generated: Sequence[bool] | np.ndarray | None = None,
    node_layer: np.ndarray | None = None,
) -> Figure:
    """The token graph as a figure: nodes at ``positions`` (``[n, 2]``, y up, as the
    canvas), the strongest ``max_edges`` edges ``sources[k] -> targets[k]`` (arcs in the
    "arc" layout, segments with arrowheads otherwise), width and opacity by weight bin,
    nodes coloured by community and sized by ``size_values`` (named ``size_metric``),
    labels placed without overlaps (priority: the size metric, else strength) and a
    legend: communities (colour and their strongest members), the node-size metric (three
    reference sizes with their values) and edge widths. ``path``, ``source``, ``target``
    and ``selected`` are highlights, drawn only when given. ``generated`` (bool ``[n]``)
    marks a generation's tokens: a ring in :data:`GENERATED_COLOR`, a tinted label and a
    legend entry "generated". In the "layered" layout, with ``node_layer`` (the level of
    each node), token labels are written once per column under the lowest row, thinned to
    a regular stride, and each row is named ("L0", "L1", ...) at its left, so no label
    covers another or a node."""
    metrics = metrics or APPROX_METRICS
    labels = [str(x) for x in labels]
    n = len(labels)
    generated_mask = np.zeros(n, dtype=bool) if generated is None else np.asarray(generated, dtype=bool).ravel()
    if generated_mask.shape != (n,):
        raise ValueError(f"generated must have one value per node ({n}), got {generated_mask.shape[0]}")
    fig = Figure(0, 0, title=title or "attention graph",
                 description="Attention Atlas graph: edge i -> j means token i attends to token j")
    y_title, title_w = _title(fig, title, metrics)
    if n == 0:
        fig.items.append(Text(MARGIN, y_title + 20, "(empty graph: no tokens)", AXIS_SIZE, MUTED_COLOR))
        fig.width, fig.height = math.ceil(max(240.0, MARGIN * 2 + title_w)), math.ceil(y_title + 40)
        return fig
    s = np.asarray(sources, dtype=np.int64).ravel()
    t = np.asarray(targets, dtype=np.int64).ravel()
    w = finite_weights(weights)
    if not (s.shape == t.shape == w.shape):
        raise ValueError("sources, targets and weights must have the same length")
    pos = np.asarray(positions, dtype=np.float64)
    if pos.shape != (n, 2) or not np.isfinite(pos).all():
        raise ValueError(f"positions must be finite and of shape ({n}, 2), got {pos.shape}")
    arc = layout == "arc"
    keep = drawn_edge_mask(s, t, w, max_edges)
    bins = weight_bins(w)
    sizes = node_sizes(size_values, n)
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
    if layout == "layered" and node_layer is not None:  # one label per column and per row
        plan = layered_label_plan(P[:, 0], P[:, 1], radius, np.asarray(node_layer).ravel(), texts,
                                  lambda text, bold: metrics.width(text, LABEL_SIZE, bold), lh,
                                  forced=forced_set, gap=2.0)
        shown = [node for node, *_ in plan]
        specs = [(rect, text, vertical, bold,
                  MUTED_COLOR if not vertical else GENERATED_COLOR if generated_mask[node] else
                  "#000000" if bold else TEXT_COLOR)
                 for node, rect, text, vertical, bold in plan]
    else:
        shown = _place(order, rects, forced_set, max_free=400, gap=2.0)
        specs = [(tuple(rects[i]), texts[i], arc, i in forced_set,
                  GENERATED_COLOR if generated_mask[i] else "#000000" if i in forced_set else TEXT_COLOR)
                 for i in shown]

    # bounding box of everything drawn in the local frame -> offset
    boxes = [np.column_stack([P[:, 0] - radius - 6, P[:, 1] - radius - 6, P[:, 0] + radius + 6, P[:, 1] + radius + 6])]
    if specs:
        boxes.append(np.array([rect for rect, *_ in specs], dtype=np.float64))
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
    specs = [((r[0] + ox, r[1] + oy, r[2] + ox, r[3] + oy), *rest) for r, *rest in specs]
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
            tip.append(f"{name} {format_number(np.asarray(values)[i])}")
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
    for i in np.flatnonzero(generated_mask):  # a generation's answer: a ring, as on the canvas
        fig.items.append(Circle(P[i, 0], P[i, 1], radius[i] + 2.0, fill=None, stroke=GENERATED_COLOR,
                                stroke_width=2.0))

    # labels on a white halo
    for (left, top, right, bottom), text, vertical, bold, color in specs:
        fig.items.append(Rect(left, top, right - left, bottom - top, fill="#ffffff", fill_opacity=0.85))
        if vertical:
            fig.items.append(Text(left + lh / 2 - BASELINE * LABEL_SIZE, top + 2.5, text, LABEL_SIZE, color,
                                  bold=bold, rotate=90))
        else:
            fig.items.append(Text(left + 3, top + lh / 2 + BASELINE * LABEL_SIZE, text, LABEL_SIZE, color, bold=bold))

    # legend
    legend_items, lw, lh_total = _graph_legend(
        labels, texts, communities, node_fill, size_values, size_metric, sizes, w, keep, key,
        weight_name, bool(pedges) or source is not None or target is not None, metrics,
        generated=bool(generated_mask.any()))
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
                "edges": total, "label_rects": [list(rect) for rect, *_ in specs],
                "generated": np.flatnonzero(generated_mask).tolist()}
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
                  weight_name, highlighted, metrics, *, generated: bool = False) -> tuple[list, float, float]:
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
            lo_px, hi_px, _ = node_px_range(len(v))
            lo, hi = float(finite.min()), float(finite.max())
            for value in refs:
                r = 0.5 if hi <= lo else (value - lo) / (hi - lo)
                d = round(lo_px + (hi_px - lo_px) * math.sqrt(r))
                cy = y + max(row, d + 4) / 2
                items.append(Circle(13, cy, d / 2, fill="#9aa5b1", stroke="#ffffff", stroke_width=1))
                items.append(Text(34, cy + BASELINE * LABEL_SIZE, format_number(value), LABEL_SIZE, TEXT_COLOR))
                right = max(right, 34 + metrics.width(format_number(value), LABEL_SIZE))
                y += max(row, d + 4)
        y += 8
    kept = w[keep]
    if kept.size and kept.max() > 0:
        heading(f"Edge width: {weight_name}")
        top = float(kept.max())
        for b, text in ((EDGE_BINS - 1, f"≥ {format_number(top * ((EDGE_BINS - 1) / EDGE_BINS) ** 2)}"),
                        (2, f"≥ {format_number(top * (2 / EDGE_BINS) ** 2)}"),
                        (0, f"< {format_number(top * (1 / EDGE_BINS) ** 2)}")):
            items.append(Line(0, y + row / 2, 26, y + row / 2, EDGE_COLOR, BIN_WIDTHS[b], BIN_ALPHAS[b] / 255))
            entry(text, 34.0)
            y += row
        y += 8
    if generated:
        heading("Tokens")
        items.append(Circle(13, y + row / 2, 6, fill="#9aa5b1", stroke=GENERATED_COLOR, stroke_width=2))
        entry("generated", 34.0)
        y += row + 8
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


