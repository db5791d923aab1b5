"""widgets.canvas_geometry: the canvas's drawing decisions on small hand-computed cases
(no Qt: these run without a display)."""

from __future__ import annotations

import ast
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from widgets import canvas_geometry as geo

ROOT = Path(__file__).resolve().parents[2]


def test_module_imports_only_numpy_math_and_qt_free_analysis_modules():
    tree = ast.parse((ROOT / "widgets" / "canvas_geometry.py").read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module if node.module.startswith("analysis") else node.module.split(".")[0])
    assert imported <= {"__future__", "collections", "math", "numpy", "analysis.options", "analysis.graph.drawing"}, imported
    code = (
        "import sys, widgets.canvas_geometry; "
        "bad = [m for m in ('PySide6', 'pyqtgraph', 'torch') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)


# ----------------------------------------------------------------------------- edges


def test_arc_between_nodes_0_and_2_peaks_at_half_the_chord():
    pos = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]])  # the arc layout's line
    x, y, connect = geo.arc_xy(pos, np.array([0]), np.array([2]), k=5)
    # control point (1, 2): B(1/2) = (p + 2c + q) / 4 = (1, 1), height |d| / 2
    assert (x[2], y[2]) == pytest.approx((1.0, 1.0))
    assert (x[0], y[0]) == (0.0, 0.0) and (x[-1], y[-1]) == pytest.approx((2.0, 0.0))
    assert y.max() == pytest.approx(1.0) and np.all(y >= 0)  # i < j: above the line
    assert connect.tolist() == [True] * 4 + [False]
    _, y_back, _ = geo.arc_xy(pos, np.array([2]), np.array([0]), k=5)
    assert y_back.min() == pytest.approx(-1.0) and np.all(y_back <= 0)  # i > j: below


def test_arcs_in_one_batch_are_not_joined():
    pos = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]])
    x, y, connect = geo.arc_xy(pos, np.array([0, 1]), np.array([1, 2]), k=4)
    assert x.shape == (8,) and connect.tolist() == [True, True, True, False] * 2
    assert geo.arc_samples(10) == 32 and geo.arc_samples(2000) == 16 and geo.arc_samples(5000) == 10


def test_straight_edges_are_pairs():
    pos = np.array([[0.0, 0.0], [3.0, 4.0], [-1.0, 2.0]])
    x, y, connect = geo.straight_xy(pos, np.array([0, 2]), np.array([1, 0]))
    assert x.tolist() == [0.0, 3.0, -1.0, 0.0]
    assert y.tolist() == [0.0, 4.0, 2.0, 0.0]
    assert connect == "pairs"
    assert geo.edge_length(pos, np.array([0]), np.array([1]), arc=False) == pytest.approx(5.0)
    assert geo.edge_length(pos, np.array([0]), np.array([1]), arc=True) == pytest.approx(5.0 * 1.48)


def test_arrow_tip_ends_at_the_nodes_rim():
    # edge (0, 0) -> (10, 0); target radius 3 px; 6 px long; 0.5 data units per pixel
    x, y, connect = geo.arrow_xy(
        np.array([[0.0, 0.0]]), np.array([[10.0, 0.0]]), np.array([3.0]), 6.0, 0.5
    )
    tip, left, right = zip(x, y, strict=True)
    assert tip == pytest.approx((10.0 - 3 * 0.5, 0.0))  # 3 px before the centre
    assert left == pytest.approx((8.5 - 6 * 0.5, 0.42 * 6 * 0.5))  # base 6 px behind the tip
    assert right == pytest.approx((5.5, -1.26))
    assert connect.tolist() == [True, True, False]


def test_edges_too_short_for_an_arrowhead_get_none():
    # needs (3 + 6 + 2) px = 5.5 data units; the first edge is 5 long, the second 20
    x, _, _ = geo.arrow_xy(
        np.array([[0.0, 0.0], [0.0, 0.0]]), np.array([[5.0, 0.0], [0.0, 20.0]]),
        np.array([3.0, 3.0]), 6.0, 0.5,
    )
    assert x.shape == (3,)  # one triangle, for the long edge


def test_weight_bins_split_by_the_square_root_of_the_relative_weight():
    # sqrt(w / max) * 5 = 0, 0.5, 2.5, 5 (clipped to the top bin), 4
    w = np.array([0.0, 0.01, 0.25, 1.0, 0.64])
    assert geo.weight_bins(w, 5).tolist() == [0, 0, 2, 4, 4]
    # bin b holds b/5 <= sqrt(w/max) < (b+1)/5: edges exactly on a boundary go up
    edges = (np.arange(5) / 5) ** 2
    assert geo.weight_bins(edges, 5).tolist() == [0, 1, 2, 3, 4]
    assert geo.weight_bins(np.zeros(3)).tolist() == [0, 0, 0]
    assert geo.weight_bins(np.zeros(0)).shape == (0,)


def test_weight_bins_any_scale_and_bad_values():
    w = np.array([0.0, 0.01, 0.25, 1.0, 0.64])
    assert geo.weight_bins(1000 * w).tolist() == geo.weight_bins(w).tolist()
    assert geo.weight_bins(np.array([np.nan, np.inf, 4.0, 1.0])).tolist() == [0, 0, 4, 2]
    assert geo.finite_weights(np.array([-2.0, np.nan])).tolist() == [2.0, 0.0]


def test_culling_keeps_the_strongest_edges_and_drops_self_loops():
    s = np.array([0, 1, 2, 3, 0, 1])
    t = np.array([1, 2, 3, 0, 0, 1])
    w = np.array([0.1, 0.4, 0.4, 0.2, 0.9, 0.8])  # edges 4 and 5 are self-loops
    assert geo.drawn_edge_mask(s, t, w).tolist() == [True] * 4 + [False] * 2
    assert geo.drawn_edge_mask(s, t, w, limit=2).tolist() == [False, True, True, False, False, False]
    assert geo.drawn_edge_mask(s, t, w, limit=1).tolist() == [False, True] + [False] * 4  # tie: earliest
    assert geo.drawn_edge_mask(s, t, w, limit=3).tolist() == [False, True, True, True, False, False]
    assert not geo.drawn_edge_mask(s, t, w, limit=0).any()
    # non-finite weights count as 0, so they are culled first
    w_bad = np.array([np.nan, 0.4, 0.4, np.inf, 0.9, 0.8])
    assert geo.drawn_edge_mask(s, t, w_bad, limit=2).tolist() == [False, True, True] + [False] * 3


def test_culling_keeps_every_edge_of_a_node_within_the_limit():
    # a star: node 0 attends to 1..5; with room for all five, all are drawn
    s, t = np.zeros(5, dtype=int), np.arange(1, 6)
    w = np.array([0.5, 0.01, 0.2, 0.001, 0.3])
    assert geo.drawn_edge_mask(s, t, w, limit=5).all()
    assert geo.drawn_edge_mask(s, t, w, limit=2).tolist() == [True, False, False, False, True]


def test_thin_bins_spend_the_wide_stroke_budget_from_the_strongest_bin_down():
    widths = (1.0, 1.0, 1.6, 2.4, 3.4)
    # 100 + 600 fit in 1,500; 1,000 more do not: bin 2 is drawn 1 px wide
    assert geo.thin_bins([10, 10, 1000, 600, 100], 1500, widths) == [False, False, True, False, False]
    assert geo.thin_bins([5, 5, 5, 5, 5], 1500, widths) == [False] * 5
    # the top bin alone is over budget: it and every wide bin below with edges are thin
    assert geo.thin_bins([0, 0, 3, 0, 2000], 1500, widths) == [False, False, True, False, True]


def test_bin_alpha_fades_where_edges_overlap():
    assert geo.bin_alpha(4, 0.0, 1.0, 3.4, 100.0) == geo.BIN_ALPHAS[4]  # nothing drawn
    assert geo.bin_alpha(2, 10.0, None, 1.6, 100.0) == geo.BIN_ALPHAS[2]  # no view yet
    # overlap 2.5 * 80 * 1 * 1 / 100 = 2: each of ~2 layers carries 1 - (1 - 0.22)^(1/2)
    expected = 255 * (1 - (1 - geo.BIN_TARGET_OPACITY[0]) ** 0.5)
    assert geo.bin_alpha(0, 80.0, 1.0, 1.0, 100.0) == pytest.approx(expected)
    assert geo.bin_alpha(0, 1e9, 1.0, 1.0, 1.0) == 6.0  # never invisible


def test_arrowheads_go_to_the_strongest_edges_first():
    bins = np.array([4, 4, 3, 3, 0, 0])
    keep = np.array([True, True, True, False, True, True])
    w = np.array([0.9, 1.0, 0.5, 0.6, 0.1, 0.2])
    sel = geo.arrow_edges(bins, keep, w, budget=2)
    assert [a.tolist() for a in sel] == [[], [], [], [], [0, 1]]
    sel = geo.arrow_edges(bins, keep, w, budget=3)
    assert sel[3].tolist() == [2] and sel[0].tolist() == []  # edge 3 is not drawn
    sel = geo.arrow_edges(bins, keep, w, budget=10)
    assert sel[0].tolist() == [4, 5]
    big = np.zeros(2001, dtype=int)  # more than 2,000 edges: the weakest bin gets none
    assert geo.arrow_edges(big, np.ones(2001, bool), np.ones(2001))[0].shape == (0,)


# ----------------------------------------------------------------------------- nodes


def test_node_pixel_ranges_shrink_with_the_graph():
    assert geo.node_px_range(64) == (7.0, 26.0, 12.0)
    assert geo.node_px_range(65) == (5.0, 18.0, 9.0)
    assert geo.node_px_range(201) == (4.0, 14.0, 6.0)


def test_node_sizes_grow_by_area():
    assert geo.node_sizes(None, 3).tolist() == [12.0] * 3
    # values 0, 0.25, 1 -> r = 0, 0.25, 1 -> 7 + 19 * sqrt(r) = 7, 16.5 (rounds to 16), 26
    assert geo.node_sizes(np.array([0.0, 0.25, 1.0]), 3).tolist() == [7.0, 16.0, 26.0]
    assert geo.node_sizes(np.array([2.0, 2.0]), 2).tolist() == [round(7 + 19 * math.sqrt(0.5))] * 2
    assert geo.node_sizes(np.array([np.nan, 1.0, 3.0]), 3).tolist() == [7.0, 7.0, 26.0]
    assert geo.node_sizes(None, 0).shape == (0,)


def test_label_priority_is_descending_with_nan_last():
    assert geo.label_priority(np.array([0.2, np.nan, 0.5, 0.2])).tolist() == [2, 0, 3, 1]


def test_nearest_node_hit_test():
    pos = np.array([[0.0, 0.0], [10.0, 0.0], [11.0, 0.0]])
    sizes = np.array([10.0, 10.0, 10.0])  # radius 5 px + 2 px slack, at 1 unit per px
    assert geo.nearest_node(pos, -6.5, 0.0, 1.0, sizes) == 0  # 6.5 px <= 5 + 2
    assert geo.nearest_node(pos, 0.0, 7.5, 1.0, sizes) == -1
    assert geo.nearest_node(pos, 10.6, 0.0, 1.0, sizes) == 2  # both reach: the nearest
    assert geo.nearest_node(np.zeros((0, 2)), 0, 0, 1.0, np.zeros(0)) == -1


def test_layer_ranks_count_within_each_layer():
    assert geo.layer_ranks(np.array([0, 0, 1, 1, 1, 2])).tolist() == [0, 1, 0, 1, 2, 0]


def test_community_colours_cycle_and_none():
    colors = geo.community_colors(np.array([0, 1, 0, -1, len(geo.COMMUNITY_PALETTE)]), 5)
    assert colors[0] == colors[2] == colors[4] == geo.COMMUNITY_PALETTE[0]
    assert colors[3] == geo.NO_COMMUNITY_COLOR
    assert geo.community_colors(None, 2) == [geo.NO_COMMUNITY_COLOR] * 2


def test_check_graph_and_positions_say_what_does_not_fit():
    s, t, w, metrics, comm, layer = geo.check_graph(3, [0, 1], [1, 2], [0.5, 0.5], {"m": [1, 2, 3]})
    assert s.dtype == np.int64 and w.dtype == np.float64 and metrics["m"].tolist() == [1, 2, 3]
    with pytest.raises(ValueError, match="same length"):
        geo.check_graph(3, [0], [1, 2], [0.5, 0.5])
    with pytest.raises(ValueError, match="token indices"):
        geo.check_graph(3, [0, 3], [1, 2], [0.5, 0.5])
    with pytest.raises(ValueError, match="metric 'm'"):
        geo.check_graph(3, [], [], [], {"m": [1]})
    with pytest.raises(ValueError, match="communities"):
        geo.check_graph(3, [], [], [], communities=[0, 1])
    assert geo.check_positions([[0, 1], [2, 3]], 2).dtype == np.float64
    with pytest.raises(ValueError, match="shape"):
        geo.check_positions(np.zeros((3, 2)), 2)
    with pytest.raises(ValueError, match="finite"):
        geo.check_positions([[0, np.inf]], 1)


# ----------------------------------------------------------------------------- labels


def test_label_rects_beside_and_below_the_node():
    dx, dy = np.array([100.0, 100.0]), np.array([50.0, 50.0])
    radius, widths = np.array([5.0, 5.0]), np.array([30.0, 30.0])
    side = geo.label_rects(dx, dy, radius, widths, 14.0, 1.0, "side", np.array([False, True]))
    # right of the node: starts 3 px past the rim, 6 px of padding, centred vertically
    assert side[0].tolist() == [108.0, 43.0, 144.0, 57.0]
    # left of it (left half of the circle): ends 3 px before the rim
    assert side[1].tolist() == [56.0, 43.0, 92.0, 57.0]
    below = geo.label_rects(dx, dy, radius, widths, 14.0, 2.0, "vertical")
    # rotated: a column one line wide, starting 3 px (x scale 2) under the rim
    assert below[0].tolist() == [93.0, 61.0, 107.0, 99.0]


def test_place_labels_never_overlaps_and_forced_labels_always_show():
    rects = np.array([
        [0.0, 0.0, 50.0, 10.0],
        [40.0, 0.0, 90.0, 10.0],  # overlaps 0
        [52.0, 20.0, 80.0, 30.0],  # clear of 0 and 1 by more than the gap
        [500.0, 0.0, 550.0, 10.0],  # off the 300 x 200 screen
        [10.0, 0.0, 20.0, 10.0],  # overlaps 0
    ])
    assert geo.place_labels([0, 1, 2, 3, 4], rects, set(), 300, 200) == [(0, False), (2, False)]
    # forced labels are placed even off screen or over others, and go first in order
    placed = geo.place_labels([4, 3, 0, 1, 2], rects, {4, 3}, 300, 200)
    assert placed == [(4, True), (3, True), (1, False), (2, False)]
    assert geo.place_labels([0, 2], rects, set(), 300, 200, max_free=1) == [(0, False)]
    # within the gap counts as touching: 52 - 50 = 2 px < 3 px
    near = np.array([[0.0, 0.0, 50.0, 10.0], [52.0, 0.0, 80.0, 10.0]])
    assert geo.place_labels([0, 1], near, set(), 300, 200) == [(0, False)]
    assert geo.place_labels([0, 1], near, set(), 300, 200, gap=1.0) == [(0, False), (1, False)]


# ----------------------------------------------------------------------------- text


def test_number_and_label_text():
    assert geo.format_number(0.3) == "0.300"
    assert geo.format_number(0.0) == "0.000"
    assert geo.format_number(12345.0) == "1.23e+04"
    assert geo.format_number(0.0004) == "0.0004"
    assert geo.format_number(float("nan")) == "nan"
    assert geo.display_label(" ") == "' '" and geo.display_label("\n") == "'\\n'"
    assert geo.display_label("cat") == "cat"


# ----------------------------------------------------------------------------- layouts


def test_layout_state_never_computes_force(monkeypatch):
    """widgets.canvas_layouts (Qt-free): "force" is only ever handed in."""
    import analysis.graph.layout
    from widgets import canvas_layouts

    def boom(*args, **kwargs):
        raise AssertionError("force layout computed by the canvas")

    monkeypatch.setattr(analysis.graph.layout, "force_layout", boom)
    monkeypatch.setattr(canvas_layouts, "force_layout", boom, raising=False)
    state = canvas_layouts.CanvasLayouts()
    state.new_graph(3, None)
    state.request("circular")
    circ = state.positions()
    state.request("force")
    assert state.positions() is circ and state.drawn == "circular" and state.pending
    assert state.give("force", np.zeros((3, 2)))  # asked for: draw it now
    assert state.positions().tolist() == [[0.0, 0.0]] * 3 and not state.pending
    state.new_graph(3, None, {"force": np.zeros((2, 2)), "spiral": np.zeros((3, 2))})  # ignored
    assert state.positions().tolist() == [[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]]  # the arc
    assert state.drawn == "arc" and state.pending
    state.request("layered")  # no node layers: the arc, and nothing pending
    assert state.positions() is not None and state.drawn == "arc" and not state.pending
    with pytest.raises(ValueError):
        state.request("spiral")
