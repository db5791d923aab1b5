"""The graph across layers: rollout / flow views with the canvas's "layered" layout."""

import numpy as np
import pytest
from PySide6.QtCore import Qt

from analysis.graph.layered import node_id, route_nodes
from analysis.graph.paths import layered_route
from app.tasks import TaskKind
from widgets.graph_canvas import GraphCanvas

LAYERED = GraphCanvas.LAYOUTS.index("layered")
ARC = GraphCanvas.LAYOUTS.index("arc")


def layout_combo(window):
    return window.graph_panel.canvas._layout_combo


def layered_item_enabled(window) -> bool:
    return layout_combo(window).model().item(LAYERED).isEnabled()


def click(qtbot, canvas, node, modifier=Qt.KeyboardModifier.NoModifier):
    qtbot.wait(50)  # let a pending resize or auto-range settle before mapping the node to pixels
    viewport = canvas.graphics_view().viewport()
    position = canvas.node_viewport_pos(node)
    qtbot.mouseMove(viewport, position)
    qtbot.mouseClick(viewport, Qt.MouseButton.LeftButton, modifier, position)


def switch_view(qtbot, window, kind, signal):
    with qtbot.waitSignal(signal, timeout=60_000):
        window.view_controls.set_kind(kind)
        window.view_controls.flush()


def test_rollout_across_layers_route_and_back(qtbot, analysed):
    window = analysed
    canvas = window.graph_panel.canvas
    run = window.result.run
    t = run.num_tokens
    assert not layered_item_enabled(window)  # one head: no graph across layers
    window.view_controls.layer_spin.setValue(run.num_layers - 1)
    switch_view(qtbot, window, "rollout", window.graph_ready)
    assert layered_item_enabled(window)

    with qtbot.waitSignal(window.layered_ready, timeout=60_000):
        layout_combo(window).setCurrentIndex(LAYERED)  # as the person picks it
    layer = window.view.spec.layer
    assert layer == run.num_layers - 1
    graph = window.layered
    assert len(canvas.labels()) == (layer + 2) * t == graph.num_nodes
    assert canvas.layout_kind() == "layered"
    assert canvas.edge_count() == len(graph.weights) > 0
    assert canvas.labels()[0] == f"L0 · {run.labels[0]}"
    assert canvas.labels()[-1] == f"L{layer + 1} · {run.labels[-1]}"
    np.testing.assert_array_equal(graph.node_layer, np.repeat(np.arange(layer + 2), t))
    heights = canvas.node_positions()[:, 1].reshape(layer + 2, t)
    assert np.all(np.diff(heights[:, 0]) > 0)  # input at the bottom, top level above
    assert "Across layers" in window.graph_panel.info.text()

    # click a token at a middle level (its token is the query), shift-click one anywhere
    canvas.source_selected.emit(node_id(graph, 3, 2))
    with qtbot.waitSignal(window.path_ready, timeout=10_000):
        canvas.target_selected.emit(node_id(graph, 4, 5))
    expected = layered_route(run.attentions, 2, 5, layer)
    assert expected.found
    assert canvas.highlighted_path() == route_nodes(graph, expected.steps)
    assert canvas.source() == node_id(graph, layer + 1, 2)
    assert canvas.target() == node_id(graph, 0, 5)
    info = window.graph_panel.info.text()
    assert info.startswith(f"Route: {run.labels[2]} (L{layer + 1}")
    assert f"probability {expected.probability:.3g}" in info

    # leaving "layered" brings back the token graph without computing it again
    submitted = []
    runner = window.host.runner
    original = runner.submit
    runner.submit = lambda session, kind, job, **handlers: submitted.append(kind) or original(session, kind, job, **handlers)
    layout_combo(window).setCurrentIndex(ARC)
    runner.submit = original
    assert TaskKind.GRAPH not in submitted
    assert window.layered is None
    assert canvas.labels() == list(window.view.row_labels)
    assert canvas.edge_count() == len(window.graph.weights)
    assert canvas.layout_kind() == "arc"


def test_view_switching_into_and_out_of_layers(qtbot, analysed):
    window = analysed
    canvas = window.graph_panel.canvas
    run = window.result.run
    t = run.num_tokens
    window.set_graph_layout("layered")  # one head: nothing across layers, the arc is shown
    assert window.layered is None and canvas.layout_kind() == "arc"
    assert len(canvas.labels()) == t

    window.view_controls.layer_spin.setValue(4)
    switch_view(qtbot, window, "flow", window.layered_ready)
    assert len(canvas.labels()) == (window.view.spec.layer + 2) * t
    assert canvas.layout_kind() == "layered"

    # clicking a node selects its token (the flow view follows it) and makes it the query
    graph = window.layered
    with qtbot.waitSignal(window.flow_ready, timeout=60_000):
        click(qtbot, canvas, node_id(graph, 1, 4))
    assert window.session.selected_token == 4 and window.view.spec.query == 4
    assert window.layered is graph  # same layers: not rebuilt
    assert canvas.selected_token() == node_id(graph, 1, 4)
    assert window.session.path_source == 4 and canvas.source() == node_id(graph, 5, 4)

    # shift-click: the target; the route survives a change of layer
    with qtbot.waitSignal(window.path_ready, timeout=10_000):
        click(qtbot, canvas, node_id(graph, 3, 6), Qt.KeyboardModifier.ShiftModifier)
    assert window.session.path_target == 6 and canvas.target() == node_id(graph, 0, 6)
    expected = layered_route(run.attentions, 4, 6, 4)
    assert canvas.highlighted_path() == route_nodes(graph, expected.steps)
    with qtbot.waitSignal(window.path_ready, timeout=10_000):
        canvas.source_selected.emit(node_id(graph, 0, 1))  # a new query: token 1
    with qtbot.waitSignals([window.layered_ready, window.path_ready], timeout=60_000):
        window.view_controls.layer_spin.setValue(2)
        window.view_controls.flush()
    graph = window.layered
    assert graph.layer == 2 and len(canvas.labels()) == 4 * t
    expected = layered_route(run.attentions, 1, 6, 2)
    assert canvas.highlighted_path() == route_nodes(graph, expected.steps)

    # words merged in the view: the graph across layers stays over the model's tokens
    with qtbot.waitSignal(window.layered_ready, timeout=60_000):
        window.view_controls.words_check.setChecked(not window.view_controls.words_check.isChecked())
        window.view_controls.flush()
        window.graph_panel.flush()
        window.graph_panel.coverage_spin.setValue(80)  # a new rule rebuilds it
        window.graph_panel.flush()
    assert len(canvas.labels()) == 4 * t
    qtbot.waitUntil(lambda: window.graph_panel.info.text().startswith("Route:"), timeout=10_000)
    assert "model's tokens" in window.graph_panel.info.text()

    switch_view(qtbot, window, "mean", window.graph_ready)
    assert window.layered is None
    assert canvas.labels() == list(window.view.row_labels)
    assert canvas.edge_count() == len(window.graph.weights)
    assert canvas.layout_kind() == "arc"  # "layered" stays chosen; a head mean has no layers


TEXT_23 = "The cat sat on the mat because it was tired, and the dog ran away into the dark night."
TEXT_60 = ("Attention flow follows every route from the top layer down to the input tokens, and the layered "
           "layout draws each token once per level so a person can see which words keep their information, "
           "which ones gather it from their neighbours, and where the model mixes the sentence together "
           "before the last layer.")


def overlapping(rects):
    """Pairs of (left, top, right, bottom) rectangles that share area."""
    return [(a, b) for k, a in enumerate(rects) for b in rects[k + 1:]
            if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]]


@pytest.mark.parametrize(("text", "tokens"), [(TEXT_23, 23), (TEXT_60, 60)])
def test_layered_labels_never_overlap_on_the_canvas_or_in_the_figure(qtbot, window, text, tokens):
    window.resize(1400, 900)
    window.input_panel.set_texts(text)
    with qtbot.waitSignals([window.analysis_ready, window.graph_ready], timeout=120_000):
        window.analyse()
    run = window.result.run
    assert run.num_tokens == tokens
    window.view_controls.layer_spin.setValue(3)
    switch_view(qtbot, window, "rollout", window.graph_ready)
    with qtbot.waitSignal(window.layered_ready, timeout=60_000):
        layout_combo(window).setCurrentIndex(LAYERED)
    canvas = window.graph_panel.canvas
    graph = window.layered

    def painted_labels():
        canvas.graphics_view().viewport().grab()  # one paint: the label layer places its labels
        return canvas.visible_labels(), canvas.label_rects()

    def labelled_columns():
        return sorted(int(graph.node_token[n]) for n, role in zip(canvas.visible_labels(), canvas.label_roles(),
                                                                  strict=True) if role == "column")

    nodes, rects = painted_labels()
    assert rects and not overlapping(rects)
    # every label stays inside the canvas (none cut at its edge)
    viewport = canvas.graphics_view().viewport().rect()
    assert all(0 <= r[0] and r[2] <= viewport.width() and 0 <= r[1] and r[3] <= viewport.height() for r in rects)
    # one label per column (a token, thinned to a regular stride) and one per row (its level)
    columns = labelled_columns()
    stride = columns[1] - columns[0]
    assert columns == list(range(0, tokens, stride)) and stride == canvas_stride(canvas, tokens)
    assert canvas.label_roles().count("row") == graph.num_layers_shown  # L0 .. L4 named

    # a route forces its tokens' labels: still none overlaps
    canvas.source_selected.emit(node_id(graph, 4, 2))
    with qtbot.waitSignal(window.path_ready, timeout=10_000):
        canvas.target_selected.emit(node_id(graph, 0, tokens - 2))
    assert canvas.highlighted_path()
    nodes, rects = painted_labels()
    assert not overlapping(rects)
    forced_tokens = {int(graph.node_token[n]) for n in canvas.highlighted_path()}
    assert forced_tokens <= set(labelled_columns())

    # the exported figure places its labels the same way
    figure = canvas.figure(include_highlight=True)
    assert figure.meta["label_rects"] and not overlapping(figure.meta["label_rects"])


def canvas_stride(canvas, tokens):
    """The regular stride the labels of ``tokens`` columns need on this canvas: 1, 2, 5, ...
    columns, the smallest at which one line of label text (and 3 px) fits between them."""
    from analysis.io.figures.base import nice_step
    from widgets.canvas_items import LabelLayer

    xs = sorted({round(canvas.node_viewport_pos(n).x()) for n in range(tokens)})
    spacing = (xs[-1] - xs[0]) / (len(xs) - 1)
    font = canvas.font()
    font.setPixelSize(LabelLayer.FONT_PX)
    from PySide6.QtGui import QFontMetricsF

    return nice_step((QFontMetricsF(font).height() + LabelLayer.GAP_PX) / spacing)
