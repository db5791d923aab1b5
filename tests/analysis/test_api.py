"""The notebook API gives the same numbers as the pieces it is made of."""

import json

import numpy as np

import analysis as atlas
from analysis.attention.views import ViewSpec, make_view
from analysis.graph.metrics import analyze_graph
from analysis.graph.rules import SparsifyRule


def test_analyse_view_graph_flow_export(default_loaded, tmp_path):
    run = atlas.analyse("The cat sat on the mat.")
    assert run.model.num_layers == 6 and run.labels[0] == "[CLS]"
    view = atlas.view(run, layer=2, head=5)
    np.testing.assert_array_equal(view.matrix, make_view(run, ViewSpec(kind="head", layer=2, head=5)).matrix)
    assert atlas.view(run).spec.kind == "mean"
    graph = atlas.build_graph(view, mode="top_k", top_k=3)
    reference = analyze_graph(view.matrix, SparsifyRule(mode="top_k", top_k=3))
    np.testing.assert_allclose(graph.metrics["betweenness"], reference.metrics["betweenness"])
    flow = atlas.flow(run, 1, layer=1)
    assert flow.shape == (run.num_tokens,) and flow.max() <= 1 + 1e-9
    folder = atlas.export(tmp_path / "out", run, view, graph)
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["view"]["layer"] == 2 and summary["view"]["head"] == 5


def test_graph_of_a_view_whose_values_exceed_one_is_scaled():
    matrix = np.array([[0.0, 2.0], [1.0, 1.0]])
    graph = atlas.build_graph(matrix, mode="none")
    np.testing.assert_allclose(graph.weights, [1.0, 0.5])  # 0 -> 1 and 1 -> 0; no self-loops


def test_rollout_and_flow_through_alti(default_loaded):
    from analysis.api import with_contributions
    from analysis.contributions import contributions_for_run

    run = atlas.analyse("The cat sat on the mat.")
    with_alti = with_contributions(run, "alti")
    assert {"alti", "alti_layers"} <= set(with_alti.contributions) and run.contributions == {}
    reference = contributions_for_run(default_loaded, run, kinds=("alti",))
    view = atlas.view(with_alti, "rollout", layer=3, through="alti")
    np.testing.assert_allclose(view.matrix, reference["alti_rollout"][3], atol=1e-6)
    assert view.title.endswith("ALTI rollout to layer 3")
    flow = atlas.flow(with_alti, 2, layer=3, through="alti")
    assert flow.shape == (run.num_tokens,) and np.all(flow >= reference["alti_rollout"][3][2] - 1e-6)
    from analysis.attention.flow import attention_flow

    np.testing.assert_array_equal(atlas.flow(run, 2, layer=3), attention_flow(run.attentions, 2, 3))
