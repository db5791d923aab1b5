"""GraphCanvas: drawing state, batching, interaction and export (pytest-qt, offscreen)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PySide6 import QtCore, QtGui, QtWidgets
from PySide6.QtCore import Qt

from analysis.graph.layout import force_layout
from widgets.graph_canvas import (
    EDGE_BINS,
    EMPTY_HINT,
    LAYING_OUT_HINT,
    NO_EDGES_HINT,
    GraphCanvas,
    weight_bins,
)

LABELS = ["the", "cat", "sat", "on", "the", "mat"]
# edge i -> j: "token i attends to token j"
SOURCES = np.array([0, 1, 2, 2, 3, 4, 5, 5, 1, 3])
TARGETS = np.array([1, 0, 1, 5, 2, 5, 4, 2, 2, 4])
WEIGHTS = np.array([0.9, 0.05, 0.5, 0.3, 0.7, 0.2, 0.6, 0.1, 0.02, 0.4])
METRICS = {
    "pagerank": np.array([0.10, 0.30, 0.05, 0.20, 0.15, 0.20]),
    "betweenness": np.array([0.0, 0.5, 0.12, 0.0, 0.25, 0.1]),
}
COMMUNITIES = np.array([0, 0, 1, 1, 2, 2])


@pytest.fixture
def canvas(qtbot):
    w = GraphCanvas()
    qtbot.addWidget(w)
    w.resize(800, 600)
    w.show()
    qtbot.waitExposed(w)
    return w


@pytest.fixture
def graph(canvas):
    canvas.set_graph(
        LABELS, SOURCES, TARGETS, WEIGHTS, metrics=METRICS, communities=COMMUNITIES
    )
    QtWidgets.QApplication.processEvents()
    return canvas


def _viewport(canvas):
    return canvas.graphics_view().viewport()


def _click(qtbot, canvas, index, modifier=Qt.KeyboardModifier.NoModifier):
    pos = canvas.node_viewport_pos(index)
    qtbot.mouseMove(_viewport(canvas), pos)
    qtbot.mouseClick(_viewport(canvas), Qt.MouseButton.LeftButton, modifier, pos)


def test_empty_state_hint(canvas):
    assert canvas.hint_text() == EMPTY_HINT
    assert canvas.edge_count() == 0
    assert canvas.node_positions().shape == (0, 2)
    canvas.grab()  # paints without error


def test_no_edges_hint(canvas):
    canvas.set_graph(LABELS, np.zeros(0), np.zeros(0), np.zeros(0))
    assert canvas.hint_text() == NO_EDGES_HINT
    assert canvas.node_positions().shape == (6, 2)


def test_set_graph_accessors(graph):
    assert graph.labels() == LABELS
    assert graph.edge_count() == len(SOURCES)
    assert graph.hint_text() == ""
    pos = graph.node_positions()
    assert pos.shape == (6, 2)
    # default layout is the arc: reading order on a line
    assert graph.layout_kind() == "arc"
    assert np.all(np.diff(pos[:, 0]) > 0) and np.allclose(pos[:, 1], 0)


def test_set_graph_rejects_bad_edges(canvas):
    with pytest.raises(ValueError):
        canvas.set_graph(LABELS, np.array([0, 7]), np.array([1, 2]), np.array([0.1, 0.2]))
    with pytest.raises(ValueError):
        canvas.set_graph(LABELS, np.array([0]), np.array([1, 2]), np.array([0.1, 0.2]))


def test_edges_are_bucketed_into_few_batches(graph):
    counts = graph.edge_bin_counts()
    assert len(counts) == EDGE_BINS
    assert sum(counts) == graph.edge_count() == len(SOURCES)
    bins = graph.edge_bins()
    assert np.array_equal(np.bincount(bins, minlength=EDGE_BINS), counts)
    # heavier edges never land in a lower bin than lighter ones
    order = np.argsort(WEIGHTS)
    assert np.all(np.diff(bins[order]) >= 0)
    assert bins[np.argmax(WEIGHTS)] == EDGE_BINS - 1
    # the pens get wider (or equal) and more opaque with the weight
    pens = graph.edge_bin_pens()
    widths = [p.widthF() for p in pens]
    alphas = [p.color().alpha() for p in pens]
    assert widths == sorted(widths) and alphas == sorted(alphas)


def test_weight_bins_function():
    w = np.array([0.0, 0.01, 0.25, 1.0, 0.64])
    b = weight_bins(w, 5)
    assert b.tolist() == [0, 0, 2, 4, 4]
    assert weight_bins(np.zeros(3)).tolist() == [0, 0, 0]
    assert weight_bins(np.zeros(0)).shape == (0,)


def test_big_graph_is_batched(canvas):
    rng = np.random.default_rng(0)
    n, m = 512, 20000
    s = rng.integers(0, n, m)
    t = rng.integers(0, n, m)
    w = rng.random(m) ** 3
    canvas.set_graph([f"t{i}" for i in range(n)], s, t, w)
    assert canvas.edge_count() == m
    assert sum(canvas.edge_bin_counts()) == m
    canvas.set_layout("circular")
    canvas.grab()
    # labels are thinned: not all 512 fit, none overlap is checked in the painter
    assert 0 < len(canvas.visible_labels()) < n


def test_size_metric_monotonic(graph):
    graph.set_size_metric("pagerank")
    assert graph.size_metric() == "pagerank"
    sizes = graph.node_sizes()
    pr = METRICS["pagerank"]
    order = np.argsort(pr, kind="stable")
    assert np.all(np.diff(sizes[order]) >= 0)
    assert sizes[np.argmax(pr)] > sizes[np.argmin(pr)]
    graph.set_size_metric("betweenness")
    b = METRICS["betweenness"]
    sizes = graph.node_sizes()
    assert sizes[np.argmax(b)] == sizes.max() and sizes[np.argmin(b)] == sizes.min()
    graph.set_size_metric(None)
    assert np.ptp(graph.node_sizes()) == 0


def test_size_metric_kept_across_set_graph(graph):
    graph.set_layout("circular")
    graph.set_size_metric("pagerank")
    graph.set_graph(LABELS, SOURCES, TARGETS, WEIGHTS, metrics=METRICS, communities=COMMUNITIES)
    assert graph.size_metric() == "pagerank"
    assert graph.layout_kind() == "circular"


def test_community_colours_stable(graph):
    colors = graph.node_colors()
    assert colors[0] == colors[1] and colors[2] == colors[3] and colors[4] == colors[5]
    assert len({colors[0], colors[2], colors[4]}) == 3


def _force_positions():
    """The force layout as the app's worker computes it (never the canvas)."""
    return force_layout(len(LABELS), SOURCES, TARGETS, WEIGHTS, seed=0)


def test_layout_switch_changes_positions(graph):
    arc = graph.node_positions()
    graph.set_layout("circular")
    assert graph.layout_kind() == "circular"
    circ = graph.node_positions()
    assert not np.allclose(arc, circ)
    graph.set_layout("force", positions=_force_positions())
    force = graph.node_positions()
    assert graph.layout_kind() == "force"
    assert not np.allclose(force, circ)
    with pytest.raises(ValueError):
        graph.set_layout("spiral")


@pytest.fixture
def no_force_layout(monkeypatch):
    """Make any force layout computed by the widgets fail the test."""
    import analysis.graph.layout
    import widgets.canvas_layouts
    import widgets.graph_canvas

    def boom(*args, **kwargs):
        raise AssertionError("the canvas computed a force layout on the GUI thread")

    monkeypatch.setattr(analysis.graph.layout, "force_layout", boom)
    for module in (widgets.graph_canvas, widgets.canvas_layouts):
        monkeypatch.setattr(module, "force_layout", boom, raising=False)


def test_choosing_force_without_positions_waits_for_them(qtbot, graph, no_force_layout):
    """The force layout is O(n^2 x iterations): the app computes it in its worker. The
    canvas keeps drawing what it drew, says it is laying out, and asks for it."""
    graph.set_layout("circular")
    circ = graph.node_positions()
    with qtbot.waitSignal(graph.layout_changed, timeout=1000) as blk:
        graph._layout_combo.setCurrentIndex(GraphCanvas.LAYOUTS.index("force"))
    assert blk.args == ["force"]
    assert graph.hint_text() == LAYING_OUT_HINT and graph.layout_pending()
    assert graph.layout_kind() == "circular"  # what is drawn
    np.testing.assert_array_equal(graph.node_positions(), circ)
    assert graph._layout_combo.currentText() == "force"  # what was asked for
    graph.grab()  # draws the stand-in without error

    pos = np.arange(12, dtype=float).reshape(6, 2)
    graph.set_positions("force", pos)
    assert graph.layout_kind() == "force" and not graph.layout_pending()
    np.testing.assert_array_equal(graph.node_positions(), pos)
    assert graph.hint_text() == ""


def test_force_waits_from_the_start_and_for_each_new_graph(canvas, no_force_layout):
    canvas.set_layout("force")  # nothing shown yet
    canvas.set_graph(LABELS, SOURCES, TARGETS, WEIGHTS)
    assert canvas.layout_kind() == "arc" and canvas.hint_text() == LAYING_OUT_HINT
    pos = _force_positions()
    canvas.set_positions("force", pos)
    assert canvas.layout_kind() == "force"
    # another graph without its force layout: the previous one's positions would lie
    canvas.set_graph(LABELS, SOURCES, TARGETS, WEIGHTS[::-1])
    assert canvas.layout_kind() == "arc" and canvas.layout_pending()
    # with it (the app hands the worker's layout in with the graph): drawn at once
    canvas.set_graph(LABELS, SOURCES, TARGETS, WEIGHTS, positions={"force": pos})
    assert canvas.layout_kind() == "force" and canvas.hint_text() == ""
    np.testing.assert_allclose(canvas.node_positions(), pos)


def test_set_positions_for_another_layout_is_kept_until_chosen(graph, qtbot):
    pos = np.arange(12, dtype=float).reshape(6, 2)
    arc = graph.node_positions()
    with qtbot.assertNotEmitted(graph.layout_changed):
        graph.set_positions("force", pos)
    assert graph.layout_kind() == "arc"
    np.testing.assert_array_equal(graph.node_positions(), arc)
    graph.set_layout("force")
    np.testing.assert_array_equal(graph.node_positions(), pos)
    with pytest.raises(ValueError):
        graph.set_positions("force", np.zeros((5, 2)))
    with pytest.raises(ValueError):
        graph.set_positions("force", np.full((6, 2), np.nan))
    with pytest.raises(ValueError):
        graph.set_positions("spiral", pos)


def test_layered_falls_back_without_layers(graph):
    graph.set_layout("layered")
    assert graph.layout_kind() == "arc"
    layers = np.array([0, 0, 1, 1, 2, 2])
    graph.set_graph(LABELS, SOURCES, TARGETS, WEIGHTS, node_layer=layers)
    assert graph.layout_kind() == "layered"
    pos = graph.node_positions()
    assert pos[0, 1] == pos[1, 1] < pos[2, 1] == pos[3, 1] < pos[4, 1]


def test_precomputed_positions(graph):
    pos = np.arange(12, dtype=float).reshape(6, 2)
    graph.set_layout("force", positions=pos)
    assert np.allclose(graph.node_positions(), pos)


def test_click_selects_source_and_token(qtbot, graph):
    with qtbot.waitSignal(graph.source_selected, timeout=2000) as src, qtbot.waitSignal(
        graph.token_selected, timeout=2000
    ) as tok:
        _click(qtbot, graph, 2)
    assert src.args == [2] and tok.args == [2]
    assert graph.source() == 2
    assert "source: sat (#2)" in graph.legend_text()


def test_shift_click_selects_target(qtbot, graph):
    with qtbot.assertNotEmitted(graph.source_selected):
        with qtbot.waitSignal(graph.target_selected, timeout=2000) as blk:
            _click(qtbot, graph, 5, Qt.KeyboardModifier.ShiftModifier)
    assert blk.args == [5]
    assert graph.target() == 5
    assert "target: mat (#5)" in graph.legend_text()


def test_click_works_in_force_layout(qtbot, graph):
    graph.set_layout("force", positions=_force_positions())
    with qtbot.waitSignal(graph.source_selected, timeout=2000) as blk:
        _click(qtbot, graph, 4)
    assert blk.args == [4]


def test_programmatic_selection_does_not_emit(qtbot, graph):
    with qtbot.assertNotEmitted(graph.source_selected), qtbot.assertNotEmitted(
        graph.target_selected
    ), qtbot.assertNotEmitted(graph.token_selected):
        graph.set_source(1)
        graph.set_target(5)
        graph.select_token(3)
    assert (graph.source(), graph.target(), graph.selected_token()) == (1, 5, 3)
    assert graph.legend_text() == "source: cat (#1) → target: mat (#5)"
    graph.set_source(None)
    graph.set_target(None)
    graph.select_token(None)
    assert graph.source() is None and graph.target() is None
    with pytest.raises(ValueError):
        graph.set_source(17)


def test_hover_emits_and_tooltip(qtbot, graph):
    with qtbot.waitSignal(graph.node_hovered, timeout=2000) as blk:
        qtbot.mouseMove(_viewport(graph), graph.node_viewport_pos(1))
    assert blk.args == [1]
    tip = graph.node_tooltip(1)
    assert tip.splitlines()[0] == "cat (#1)"
    assert "community 0" in tip
    assert "pagerank 0.300" in tip and "betweenness 0.500" in tip


def test_highlight_path_covers_exactly_its_edges(graph):
    graph.highlight_path([0, 2, 5])
    assert graph.highlighted_path() == [0, 2, 5]
    assert graph.highlighted_edges() == [(0, 2), (2, 5)]
    assert graph._path_item.n_items == 2
    graph.grab()
    # path nodes always get their label
    assert {0, 2, 5} <= set(graph.visible_labels())
    graph.highlight_path([])
    assert graph.highlighted_path() == [] and graph.highlighted_edges() == []
    assert graph._path_item.n_items == 0
    with pytest.raises(ValueError):
        graph.highlight_path([0, 9])


def _drag(qtbot, canvas, index, dx, dy):
    vp = _viewport(canvas)
    start = canvas.node_viewport_pos(index)
    qtbot.mouseMove(vp, start)
    qtbot.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    for k in range(1, 6):
        p = QtCore.QPointF(start.x() + dx * k / 5, start.y() + dy * k / 5)
        ev = QtGui.QMouseEvent(
            QtCore.QEvent.Type.MouseMove,
            p,
            vp.mapToGlobal(p),
            Qt.MouseButton.NoButton,
            Qt.MouseButton.LeftButton,
            Qt.KeyboardModifier.NoModifier,
        )
        QtWidgets.QApplication.sendEvent(vp, ev)
        qtbot.wait(15)  # pyqtgraph drops moves closer than 10 ms (mouseRateLimit)
    end = QtCore.QPoint(start.x() + dx, start.y() + dy)
    qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, end)


def test_drag_moves_node_and_edges_follow(qtbot, graph):
    graph.set_layout("circular")
    before = graph.node_positions()
    _drag(qtbot, graph, 3, 60, -40)
    after = graph.node_positions()
    moved = np.flatnonzero(np.any(~np.isclose(before, after), axis=1))
    assert moved.tolist() == [3]
    assert after[3, 0] > before[3, 0] and after[3, 1] > before[3, 1]  # up on screen = +y
    # edges incident to 3 now end at its new position: the batch paths contain it
    x, y = after[3]
    rect = QtCore.QRectF()
    for item in graph._edge_items:
        if item.n_items:
            rect = rect.united(item.boundingRect())
    assert rect.contains(QtCore.QPointF(x, y))


def test_drag_in_background_pans_not_moves(qtbot, graph):
    before = graph.node_positions()
    rng0 = graph.view_box().viewRange()
    vp = _viewport(graph)
    start = QtCore.QPoint(20, 20)
    qtbot.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    for k in range(1, 6):
        p = QtCore.QPointF(20 + 10 * k, 20 + 8 * k)
        ev = QtGui.QMouseEvent(
            QtCore.QEvent.Type.MouseMove, p, vp.mapToGlobal(p),
            Qt.MouseButton.NoButton, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
        )
        QtWidgets.QApplication.sendEvent(vp, ev)
        qtbot.wait(15)
    qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, QtCore.QPoint(70, 60))
    assert np.allclose(graph.node_positions(), before)
    assert graph.view_box().viewRange() != rng0
    graph.reset_view()


def test_reset_view_shows_all_nodes(graph):
    graph.view_box().scaleBy((5, 5))
    graph.reset_view()
    (x0, x1), (y0, y1) = graph.view_box().viewRange()
    pos = graph.node_positions()
    assert x0 <= pos[:, 0].min() and pos[:, 0].max() <= x1
    assert y0 <= pos[:, 1].min() and pos[:, 1].max() <= y1


def test_toolbar_combo_emits_layout_changed(qtbot, graph):
    combo = graph._layout_combo
    with qtbot.waitSignal(graph.layout_changed, timeout=1000) as blk:
        combo.setCurrentIndex(GraphCanvas.LAYOUTS.index("circular"))
    assert blk.args == ["circular"]
    assert graph.layout_kind() == "circular"
    # programmatic set_layout updates the combo without emitting
    with qtbot.assertNotEmitted(graph.layout_changed):
        graph.set_layout("arc")
    assert combo.currentText() == "arc"


def test_export_png_width(graph, tmp_path):
    graph.highlight_path([0, 2, 5])
    path = tmp_path / "graph.png"
    graph.export_png(path, width=640)
    image = QtGui.QImage(str(path))
    assert not image.isNull()
    assert image.width() == 640


def test_export_svg_content(graph, tmp_path):
    path = tmp_path / "graph.svg"
    graph.export_svg(path)
    text = path.read_text()
    assert "<svg" in text and "</svg>" in text
    assert ">mat<" in text or "mat" in text


def test_export_unwritable_path_raises(graph, tmp_path):
    missing = tmp_path / "no" / "such" / "dir" / "g.png"
    with pytest.raises(OSError, match="does not exist"):
        graph.export_png(missing)
    with pytest.raises(OSError):
        graph.export_svg(tmp_path / "no" / "g.svg")
    with pytest.raises(OSError, match="folder"):
        graph.export_png(tmp_path)
    if os.name == "posix" and os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        try:
            with pytest.raises(OSError):
                graph.export_png(ro / "g.png")
        finally:
            ro.chmod(0o700)


def test_a_huge_graph_draws_only_its_strongest_edges_and_says_so(qtbot):
    from widgets.graph_canvas import MAX_DRAWN_EDGES, GraphCanvas, drawn_edge_mask

    n = 200
    rng = np.random.default_rng(3)
    sources, targets = np.divmod(np.arange(n * n), n)
    weights = rng.random(n * n)
    canvas = GraphCanvas()
    qtbot.addWidget(canvas)
    canvas.set_graph([f"t{i}" for i in range(n)], sources, targets, weights)
    assert canvas.edge_count() == n * n  # the graph keeps every edge
    assert canvas.drawn_edge_count() == MAX_DRAWN_EDGES
    drawn = drawn_edge_mask(sources, targets, weights)
    assert weights[drawn].min() >= weights[(sources != targets) & ~drawn].max()
    assert not drawn[sources == targets].any()
    assert f"strongest {MAX_DRAWN_EDGES:,}" in canvas._note.text()


def drawn_edge_paths(canvas) -> int:
    return sum(not item._path.isEmpty() for item in canvas._edge_items)


def test_edges_can_follow_the_nodes_on_a_later_turn(canvas):
    """The window shows a new graph's nodes first and its edges on the next turn of the
    event loop, so no turn keeps the window from answering for long."""
    canvas.set_graph(LABELS, SOURCES, TARGETS, WEIGHTS, metrics=METRICS, edges_later=True)
    assert canvas.edges_pending() and drawn_edge_paths(canvas) == 0
    assert canvas.edge_count() == len(WEIGHTS)  # the graph itself is complete
    canvas.draw_pending_edges()
    assert not canvas.edges_pending() and drawn_edge_paths(canvas) > 0
    canvas.set_graph(LABELS, SOURCES, TARGETS, WEIGHTS, edges_later=True)
    canvas.set_layout("circular")  # any full redraw draws the edges too
    assert not canvas.edges_pending() and drawn_edge_paths(canvas) > 0


def test_weights_of_any_scale_draw_alike(canvas):
    """Edge weights are any non-negative values (flow, value norms, ...): bins, pens and
    the drawn edges depend on the weights relative to the strongest, not on [0, 1]."""
    canvas.set_graph(LABELS, SOURCES, TARGETS, WEIGHTS)
    bins, pens = canvas.edge_bins(), [(p.widthF(), p.color().alpha()) for p in canvas.edge_bin_pens()]
    canvas.set_graph(LABELS, SOURCES, TARGETS, 250.0 * WEIGHTS)
    np.testing.assert_array_equal(canvas.edge_bins(), bins)
    assert [(p.widthF(), p.color().alpha()) for p in canvas.edge_bin_pens()] == pens
    assert canvas.drawn_edge_count() == len(SOURCES) and canvas.hint_text() == ""
    assert canvas.edge_bins()[np.argmax(WEIGHTS)] == EDGE_BINS - 1
    canvas.grab()


def test_non_finite_weights_draw_as_the_weakest(canvas):
    w = WEIGHTS.copy()
    w[0], w[1] = np.nan, np.inf
    canvas.set_graph(LABELS, SOURCES, TARGETS, w)
    bins = canvas.edge_bins()
    assert bins[0] == bins[1] == 0 and bins[np.nanargmax(np.where(np.isfinite(w), w, 0))] == EDGE_BINS - 1
    canvas.set_layout("circular")  # straight edges: arrowheads by weight too
    canvas.grab()
