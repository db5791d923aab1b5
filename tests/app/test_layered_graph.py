"""The graph across layers: rollout / flow views with the canvas's "layered" layout."""

import numpy as np
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
