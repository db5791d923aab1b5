"""Most probable, widest and k best paths in a view; the best route through the layers."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest

from analysis.graph.paths import (
    k_most_probable_paths,
    layered_route,
    most_probable_path,
    widest_path,
)
from analysis.graph.rules import SparsifyRule

# Two routes 0 -> 3: via 1 (0.7 * 0.25 = 0.175, weakest 0.25) and via 2 (0.3 * 0.5 = 0.15,
# weakest 0.3): the most probable and the widest path differ.
TWO_ROUTES = np.array(
    [
        [0.0, 0.7, 0.3, 0.0],
        [0.75, 0.0, 0.0, 0.25],
        [0.5, 0.0, 0.0, 0.5],
        [0.5, 0.25, 0.25, 0.0],
    ]
)


def test_most_probable_and_widest_paths_differ_as_computed_by_hand():
    probable = most_probable_path(TWO_ROUTES, 0, 3)
    assert probable.nodes == (0, 1, 3) and probable.found
    assert probable.probability == pytest.approx(0.175)
    assert probable.bottleneck == pytest.approx(0.25)
    assert probable.length == pytest.approx(-math.log(0.175))
    widest = widest_path(TWO_ROUTES, 0, 3)
    assert widest.nodes == (0, 2, 3)
    assert widest.bottleneck == pytest.approx(0.3) and widest.probability == pytest.approx(0.15)


def test_widest_path_prefers_the_most_probable_among_equal_bottlenecks():
    m = np.array(
        [
            [0.0, 0.5, 0.4, 0.1, 0.0],
            [0.6, 0.0, 0.0, 0.0, 0.4],
            [0.1, 0.0, 0.0, 0.0, 0.9],
            [0.0, 0.0, 0.0, 0.0, 1.0],
            [0.25, 0.25, 0.25, 0.25, 0.0],
        ]
    )
    widest = widest_path(m, 0, 4)
    assert widest.bottleneck == pytest.approx(0.4)
    assert widest.nodes == (0, 2, 4) and widest.probability == pytest.approx(0.36)


def test_k_paths_are_loop_free_and_ordered_by_probability():
    paths = k_most_probable_paths(TWO_ROUTES, 0, 3, k=5)
    assert [p.nodes for p in paths] == [(0, 1, 3), (0, 2, 3)]
    rng = np.random.default_rng(0)
    m = rng.random((12, 12)) ** 3
    m /= m.sum(axis=1, keepdims=True)
    paths = k_most_probable_paths(m, 2, 9, k=6)
    assert len(paths) == 6
    probabilities = [p.probability for p in paths]
    assert probabilities == sorted(probabilities, reverse=True)
    assert all(len(set(p.nodes)) == len(p.nodes) for p in paths)
    assert paths[0].nodes == most_probable_path(m, 2, 9).nodes
    with pytest.raises(ValueError):
        k_most_probable_paths(m, 2, 9, k=0)


def test_paths_follow_the_rule_and_match_networkx():
    rng = np.random.default_rng(1)
    m = rng.random((20, 20)) ** 4
    m /= m.sum(axis=1, keepdims=True)
    rule = SparsifyRule(mode="top_k", top_k=3)
    path = most_probable_path(m, 0, 17, rule)
    graph = nx.DiGraph()
    order = np.argsort(-np.where(np.eye(20, dtype=bool), 0, m), axis=1)[:, :3]
    for i in range(20):
        for j in order[i]:
            graph.add_edge(i, int(j), length=-math.log(m[i, j]))
    expected = nx.shortest_path(graph, 0, 17, weight="length")
    assert list(path.nodes) == expected
    assert path.probability == pytest.approx(math.exp(-nx.path_weight(graph, expected, "length")))


def test_unreachable_and_trivial_paths():
    causal = np.tril(np.ones((4, 4)))
    causal /= causal.sum(axis=1, keepdims=True)
    for result in (most_probable_path(causal, 0, 3), widest_path(causal, 0, 3)):
        assert (
            not result.found and result.probability == 0.0 and "cannot be reached" in result.reason
        )
    assert k_most_probable_paths(causal, 0, 3) == []
    trivial = most_probable_path(causal, 2, 2)
    assert trivial.nodes == (2,) and trivial.probability == 1.0 and trivial.hops == 0
    with pytest.raises(ValueError):
        most_probable_path(causal, 0, 4)


def hand_attentions() -> np.ndarray:
    """Layer 1 query 0 attends to token 1; layer 0 rows [0, .6, .4], [0, 0, 1], [1, 0, 0]."""
    layer1 = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    layer0 = np.array([[0.0, 0.6, 0.4], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    return np.stack([layer0, layer1])[:, None]  # [L=2, H=1, 3, 3]


def test_layered_route_by_hand():
    # R_1[0] = [.5, .5, 0]; R_0[0, 2] = .2, R_0[1, 2] = .5: via token 1 wins (.25 > .1).
    route = layered_route(hand_attentions(), query=0, target=2)
    assert route.steps == ((2, 0), (1, 1), (0, 2))
    assert route.probability == pytest.approx(0.25) and route.tokens == (0, 1, 2)
    first = layered_route(hand_attentions(), query=0, target=2, layer=0)
    assert first.steps == ((1, 0), (0, 2)) and first.probability == pytest.approx(0.2)


def test_layered_route_is_the_best_of_all_routes():
    rng = np.random.default_rng(2)
    attentions = rng.random((3, 2, 5, 5)) ** 2
    attentions /= attentions.sum(axis=-1, keepdims=True)
    from analysis.attention.rollout import residual_augmented_layers

    r = residual_augmented_layers(attentions)
    best = max(r[2][1, a] * r[1][a, b] * r[0][b, 4] for a in range(5) for b in range(5))
    route = layered_route(attentions, 1, 4)
    assert route.probability == pytest.approx(best)
    assert route.steps[0] == (3, 1) and route.steps[-1] == (0, 4) and len(route.steps) == 4


def test_layered_route_causal_unreachable():
    causal = np.tril(np.ones((4, 4)))
    causal /= causal.sum(axis=1, keepdims=True)
    route = layered_route(np.stack([causal[None]] * 2), query=1, target=3)
    assert not route.found and route.reason
    with pytest.raises(ValueError):
        layered_route(np.stack([causal[None]] * 2), 1, 0, layer=2)
