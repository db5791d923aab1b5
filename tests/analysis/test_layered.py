"""The layered graph across layers: nodes, edges equal to R, per-row sparsification, routes."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from analysis.attention.rollout import residual_augmented_layers
from analysis.graph.layered import LayeredGraph, layered_graph, node_id, node_labels, route_nodes
from analysis.graph.paths import layered_route
from analysis.graph.rules import SparsifyRule

ALL = SparsifyRule(mode="none")


def hand_attentions() -> np.ndarray:
    """2 layers, 1 head, 3 tokens. R_0 = [[.5, .3, .2], [0, .5, .5], [.5, 0, .5]],
    R_1 = [[.5, .5, 0], [.5, .5, 0], [0, 0, 1]]."""
    layer0 = np.array([[0.0, 0.6, 0.4], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    layer1 = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    return np.stack([layer0, layer1])[:, None]  # [L=2, H=1, 3, 3]


def edge_dict(graph: LayeredGraph) -> dict[tuple[int, int], float]:
    return {
        (int(s), int(t)): float(w)
        for s, t, w in zip(graph.sources, graph.targets, graph.weights, strict=True)
    }


def random_attentions(layers=3, heads=2, t=5, seed=2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.random((layers, heads, t, t)) ** 2
    return a / a.sum(axis=-1, keepdims=True)


def test_hand_computed_two_layer_graph():
    graph = layered_graph(hand_attentions(), layer=1, rule=ALL)
    assert graph.num_layers_shown == 3 and graph.num_tokens == 3 and graph.layer == 1
    assert graph.num_nodes == 9
    assert graph.node_layer.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert graph.node_token.tolist() == [0, 1, 2] * 3
    # level 1 (ids 3..5) -> level 0 (ids 0..2) with R_0; level 2 (6..8) -> level 1 with R_1
    assert edge_dict(graph) == pytest.approx(
        {
            (3, 0): 0.5, (3, 1): 0.3, (3, 2): 0.2,
            (4, 1): 0.5, (4, 2): 0.5,
            (5, 0): 0.5, (5, 2): 0.5,
            (6, 3): 0.5, (6, 4): 0.5,
            (7, 3): 0.5, (7, 4): 0.5,
            (8, 5): 1.0,
        }
    )  # fmt: skip
    assert graph.capped_per_node is None


def test_weights_equal_the_residual_augmented_layers():
    attentions = random_attentions(layers=4, t=6)
    r = residual_augmented_layers(attentions)
    graph = layered_graph(attentions, layer=2, rule=ALL)
    assert graph.num_nodes == 4 * 6
    n = graph.num_tokens
    level = graph.node_layer[graph.targets]
    assert np.all(graph.node_layer[graph.sources] == level + 1)
    i, j = graph.node_token[graph.sources], graph.node_token[graph.targets]
    np.testing.assert_allclose(graph.weights, r[level, i, j], rtol=1e-12)
    assert len(graph.weights) == 3 * n * n  # every entry is positive
    assert graph.rule.self_loops and not ALL.self_loops


def test_each_row_is_sparsified_and_the_residual_edge_is_always_allowed():
    attentions = hand_attentions()
    # coverage 60%: row R_0[0] = [.5, .3, .2] keeps .5 (itself) and .3; ties keep both.
    coverage = layered_graph(attentions, 1, SparsifyRule(mode="coverage", coverage=0.6))
    assert set(edge_dict(coverage)) == {
        (3, 0),
        (3, 1),
        (4, 1),
        (4, 2),
        (5, 0),
        (5, 2),
        (6, 3),
        (6, 4),
        (7, 3),
        (7, 4),
        (8, 5),
    }
    # top 1, default self_loops=False: the residual i -> i still counts (it is no loop here)
    top = layered_graph(attentions, 1, SparsifyRule(mode="top_k", top_k=1))
    assert (3, 0) in edge_dict(top) and (3, 1) not in edge_dict(top)
    assert (8, 5) in edge_dict(top)
    threshold = layered_graph(attentions, 1, SparsifyRule(mode="threshold", min_weight=0.4))
    assert min(threshold.weights) >= 0.4 and (3, 1) not in edge_dict(threshold)


def test_max_edges_caps_each_node_to_its_strongest_edges():
    attentions = random_attentions(layers=3, t=8, seed=5)
    full = layered_graph(attentions, 2, ALL)
    capped = layered_graph(attentions, 2, ALL, max_edges=50)
    k = 50 // (3 * 8)
    assert capped.capped_per_node == k == 2
    assert len(capped.weights) <= 50
    assert np.bincount(capped.sources, minlength=capped.num_nodes).max() <= k
    kept = edge_dict(capped)
    every = edge_dict(full)
    for source in np.unique(full.sources):
        weights = sorted((w for (s, _), w in every.items() if s == source), reverse=True)
        assert sorted((w for (s, _), w in kept.items() if s == source), reverse=True) == weights[:k]
    assert layered_graph(attentions, 2, ALL, max_edges=10_000).capped_per_node is None


def test_token_subset_keeps_model_probabilities():
    attentions = random_attentions(layers=2, t=6)
    r = residual_augmented_layers(attentions)
    graph = layered_graph(attentions, 1, ALL, tokens=[1, 2, 4])
    assert graph.num_tokens == 3 and graph.tokens.tolist() == [1, 2, 4]
    assert graph.node_token.tolist() == [1, 2, 4] * 3
    level = graph.node_layer[graph.targets]
    np.testing.assert_allclose(
        graph.weights, r[level, graph.node_token[graph.sources], graph.node_token[graph.targets]]
    )
    assert node_id(graph, 2, 4) == 2 * 3 + 2
    with pytest.raises(ValueError):
        node_id(graph, 0, 3)  # not shown
    with pytest.raises(ValueError):
        layered_graph(attentions, 1, ALL, tokens=[2, 1])


def test_labels_and_bad_arguments():
    graph = layered_graph(hand_attentions(), 0, ALL)
    assert node_labels(graph, ["the", "cat", "sat"]) == [
        "L0 · the", "L0 · cat", "L0 · sat", "L1 · the", "L1 · cat", "L1 · sat",
    ]  # fmt: skip
    with pytest.raises(ValueError):
        layered_graph(hand_attentions(), 2, ALL)
    with pytest.raises(ValueError):
        layered_graph(hand_attentions()[0], 0, ALL)
    with pytest.raises(ValueError):
        node_id(graph, 2, 0)


def test_route_maps_onto_nodes_joined_by_edges_of_the_graph():
    graph = layered_graph(hand_attentions(), 1, ALL)
    route = layered_route(hand_attentions(), query=0, target=2)
    assert route.steps == ((2, 0), (1, 1), (0, 2))
    nodes = route_nodes(graph, route.steps)
    assert nodes == [6, 4, 2]
    edges = edge_dict(graph)
    assert np.prod([edges[(a, b)] for a, b in itertools.pairwise(nodes)]) == pytest.approx(
        route.probability
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_best_route_in_the_graph_is_layered_route(seed):
    """Brute force over every route from (layer + 1, q) down to (0, target) in the graph."""
    attentions = random_attentions(layers=3, t=4, seed=seed)
    graph = layered_graph(attentions, 2, ALL)
    edges = edge_dict(graph)
    for query, target in [(0, 3), (2, 2), (3, 1)]:
        best, best_nodes = 0.0, None
        for middle in itertools.product(range(4), repeat=2):
            tokens = (query, *middle, target)
            nodes = [node_id(graph, 3 - k, token) for k, token in enumerate(tokens)]
            p = np.prod([edges.get((a, b), 0.0) for a, b in itertools.pairwise(nodes)])
            if p > best:
                best, best_nodes = p, nodes
        route = layered_route(attentions, query, target, layer=2)
        assert route.probability == pytest.approx(best)
        assert route_nodes(graph, route.steps) == best_nodes
