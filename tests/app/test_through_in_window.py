"""Rollout, flow and the graph across layers *through* a contribution, in the window."""

import numpy as np

from analysis.attention.capacities import layer_capacities
from analysis.attention.flow import attention_flow
from analysis.graph.layered import node_id, route_nodes
from analysis.graph.paths import layered_route
from tests.app.test_layered_graph import LAYERED, layout_combo


def choose(qtbot, window, signal, *, kind=None, through=None):
    controls = window.view_controls
    with qtbot.waitSignal(signal, timeout=120_000):
        if kind is not None:
            controls.set_kind(kind)
        if through is not None:
            controls.through_box.setCurrentIndex(controls.through_box.findData(through))
        controls.flush()


def test_flow_rollout_and_route_through_alti(qtbot, analysed):
    window = analysed
    controls = window.view_controls
    assert not controls.through_box.isVisibleTo(window)  # one head: nothing to go through
    choose(qtbot, window, window.flow_ready, kind="flow")
    assert controls.through_box.isVisibleTo(window) and controls.through() == "attention"
    # through ALTI: its per-layer matrices are computed from the model, then the flow
    choose(qtbot, window, window.flow_ready, through="alti")
    run, view = window.result.run, window.view
    assert view.spec.through == "alti" and "ALTI" in view.title
    assert {"alti", "alti_layers"} <= set(run.contributions)
    layer, query = view.spec.layer, view.spec.query
    np.testing.assert_allclose(view.matrix, run.contributions["alti"][layer], atol=1e-6)  # ALTI's rollout
    expected = attention_flow(query=query, layer=layer, layers=layer_capacities(run, "alti", upto_layer=layer))
    np.testing.assert_allclose(window.session.flow, expected, atol=1e-9)
    plain = attention_flow(run.attentions, query, layer)
    assert not np.allclose(expected, plain)  # not the attention flow under another name
    # the graph across layers and its route go through ALTI too
    with qtbot.waitSignal(window.layered_ready, timeout=60_000):
        layout_combo(window).setCurrentIndex(LAYERED)
    graph = window.layered
    canvas = window.graph_panel.canvas
    canvas.source_selected.emit(node_id(graph, layer + 1, 2))
    with qtbot.waitSignal(window.path_ready, timeout=10_000):
        canvas.target_selected.emit(node_id(graph, 0, 5))
    route = layered_route(query=2, target=5, layer=layer, layers=layer_capacities(run, "alti", upto_layer=layer))
    assert canvas.highlighted_path() == route_nodes(graph, route.steps)
    # back through attention: the rollout of raw attention again
    choose(qtbot, window, window.layered_ready, through="attention")
    assert window.view.spec.through == "attention" and "ALTI" not in window.view.title
    from analysis.attention.rollout import attention_rollout

    np.testing.assert_allclose(window.view.matrix, attention_rollout(run.attentions, layer), atol=1e-9)
