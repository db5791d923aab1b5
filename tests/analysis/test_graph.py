"""Graph of a view: sparsify rules, metrics against networkx, communities, export."""

from __future__ import annotations

import math

import community as community_louvain
import networkx as nx
import numpy as np
import pytest

import analysis.graph.kernels as graph_module
from analysis.graph.export import to_networkx, write_gexf, write_graphml
from analysis.graph.metrics import analyze_graph, dense_betweenness
from analysis.graph.rules import SparsifyRule, sparsify
from analysis.options import METRIC_NAMES

RTOL = 1e-6


@pytest.fixture(params=["compiled", "fallback"])
def kernels(request, monkeypatch):
    """Runs a test with the C kernels (analysis/graph/_paths.c, _louvain.c) and again with the
    scipy/igraph fallback used when the package was installed without a C compiler."""
    if request.param == "compiled":
        assert graph_module._paths_core is not None and graph_module._louvain_core is not None, (
            "the C kernels are not built: run `make setup` (pip install -e .) with a C compiler"
        )
    else:
        monkeypatch.setattr(graph_module, "_paths_core", None)
        monkeypatch.setattr(graph_module, "_louvain_core", None)
    return request.param


def attention_like(n: int, seed: int, *, causal: bool = False, sharpness: float = 2.0):
    """Softmax of random logits with sink columns, a previous-token habit and peaked rows."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, sharpness, (n, n))
    logits[:, [0, n - 1]] += np.log(n) + 1.0
    logits[np.arange(1, n), np.arange(n - 1)] += sharpness
    peaked = rng.choice(n, max(1, n // 6), replace=False)
    logits[peaked, rng.integers(0, n, peaked.size)] += 8.0
    if causal:
        logits[np.triu_indices(n, 1)] = -np.inf
    logits -= logits.max(axis=1, keepdims=True)
    weights = np.exp(logits)
    return weights / weights.sum(axis=1, keepdims=True)


def reference_graph(result) -> nx.DiGraph:
    graph = nx.DiGraph()
    graph.add_nodes_from(range(result.n))
    for s, t, w in zip(result.sources, result.targets, result.weights, strict=True):
        graph.add_edge(int(s), int(t), weight=float(w), length=-math.log(w))
    return graph


def networkx_betweenness(graph: nx.DiGraph) -> dict:
    """networkx betweenness as it is, including how it counts a zero-length self-loop
    (weight exactly 1): as a second shortest path into its node."""
    return nx.betweenness_centrality(graph, weight="length", normalized=True)


def undirected_reference(graph: nx.DiGraph) -> nx.Graph:
    undirected = nx.Graph()
    undirected.add_nodes_from(graph)
    for s, t, w in graph.edges(data="weight"):
        if undirected.has_edge(s, t):
            undirected[s][t]["weight"] += w
        else:
            undirected.add_edge(s, t, weight=w)
    return undirected


def as_array(values: dict, n: int) -> np.ndarray:
    return np.array([values[i] for i in range(n)], dtype=float)


def kept(matrix, rule) -> set[tuple[int, int]]:
    sources, targets, _ = sparsify(np.asarray(matrix, dtype=float), rule)
    return set(zip(sources.tolist(), targets.tolist(), strict=True))


# --------------------------------------------------------------------------- rules


def test_coverage_stops_exactly_when_the_share_is_reached():
    row = [[0.0, 0.5, 0.3, 0.2], [0.25, 0.0, 0.25, 0.5], [0.1] * 4, [0.7, 0.1, 0.1, 0.1]]
    rule = SparsifyRule(coverage=0.8, self_loops=True)
    edges = kept(row, rule)
    assert {(0, 1), (0, 2)} <= edges and (0, 3) not in edges  # 0.5 + 0.3 = 0.8 exactly
    assert {(1, 3), (1, 0), (1, 2)} <= edges  # 0.5 + tied 0.25s: ties at the cut are kept


def test_coverage_total_excludes_the_diagonal_without_self_loops():
    matrix = [[0.8, 0.15, 0.05], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]]
    edges = kept(matrix, SparsifyRule(coverage=0.75))
    assert edges == {(0, 1), (1, 0)}  # row 0: 0.15 of 0.2 = 75%; row 2 has no candidates


def test_top_k_keeps_ties_and_threshold_and_min_weight():
    matrix = np.array([[0.1, 0.3, 0.3, 0.3], [0.4, 0.3, 0.2, 0.1], [0.25] * 4, [0, 0, 0, 1.0]])
    top1 = kept(matrix, SparsifyRule(mode="top_k", top_k=1))
    assert {(0, 1), (0, 2), (0, 3)} <= top1 and (1, 0) in top1 and (1, 2) not in top1
    threshold = kept(matrix, SparsifyRule(mode="threshold", min_weight=0.3))
    assert threshold == {(0, 1), (0, 2), (0, 3), (1, 0)}
    with_min = kept(matrix, SparsifyRule(mode="top_k", top_k=3, min_weight=0.25))
    assert with_min == {(0, 1), (0, 2), (0, 3), (1, 0), (2, 0), (2, 1), (2, 3)}


def test_self_loops_only_when_asked_and_zeros_never_edges():
    causal = np.tril(np.ones((5, 5)))
    causal /= causal.sum(axis=1, keepdims=True)
    none_rule = kept(causal, SparsifyRule(mode="none"))
    assert all(t < s for s, t in none_rule)
    with_loops = kept(causal, SparsifyRule(mode="none", self_loops=True))
    assert all(t <= s for s, t in with_loops) and (0, 0) in with_loops
    assert len(with_loops) == 15
    for rule in (SparsifyRule(coverage=1.0), SparsifyRule(mode="top_k", top_k=10)):
        assert all(t < s for s, t in kept(causal, rule))


def test_sparsify_returns_typed_row_major_edges():
    matrix = attention_like(12, 3)
    sources, targets, weights = sparsify(matrix, SparsifyRule(mode="none"))
    assert sources.dtype == np.int64 and targets.dtype == np.int64 and weights.dtype == float
    assert np.all(np.diff(sources * 12 + targets) > 0)
    np.testing.assert_array_equal(weights, matrix[sources, targets])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"mode": "best"},
        {"coverage": 0.0},
        {"coverage": 1.5},
        {"top_k": 0},
        {"top_k": 2.5},
        {"min_weight": -0.1},
        {"self_loops": "yes"},
    ],
)
def test_rule_validation(kwargs):
    with pytest.raises(ValueError):
        SparsifyRule(**kwargs)


def test_rule_roundtrip_and_description():
    rule = SparsifyRule(mode="top_k", top_k=3, min_weight=0.01, self_loops=True)
    assert SparsifyRule.from_dict(rule.to_dict()) == rule
    assert SparsifyRule().describe() == (
        "per query, the strongest edges covering 90% of its attention; no self-loops"
    )
    assert "3 strongest" in rule.describe() and "self-loops kept" in rule.describe()
    with pytest.raises(ValueError):
        SparsifyRule.from_dict({"mode": "none", "colour": "red"})


def test_bad_matrices_are_refused():
    with pytest.raises(ValueError):
        sparsify(np.ones((2, 3)) / 3)
    with pytest.raises(ValueError):
        sparsify(np.array([[0.5, np.nan], [0.5, 0.5]]))
    with pytest.raises(ValueError):
        sparsify(np.array([[2.0, 0.0], [0.5, 0.5]]))
    with pytest.raises(ValueError):
        analyze_graph(attention_like(6, 0), resolution=0.0)


# --------------------------------------------------------------------------- metrics


CASES = [
    (8, 0, False, SparsifyRule()),
    (20, 1, False, SparsifyRule(mode="top_k", top_k=4)),
    (35, 2, False, SparsifyRule(coverage=0.8, self_loops=True)),
    (60, 3, False, SparsifyRule()),
    (40, 4, True, SparsifyRule()),
    (25, 5, True, SparsifyRule(mode="none", self_loops=True)),
    (30, 6, False, SparsifyRule(mode="threshold", min_weight=0.02)),
]


@pytest.mark.parametrize(("n", "seed", "causal", "rule"), CASES)
def test_every_metric_equals_networkx(n, seed, causal, rule, kernels):
    matrix = attention_like(n, seed, causal=causal)
    result = analyze_graph(matrix, rule, seed=seed)
    graph = reference_graph(result)
    assert list(result.metrics) == list(METRIC_NAMES)
    expected = {
        "in_strength": dict(graph.in_degree(weight="weight")),
        "out_strength": dict(graph.out_degree(weight="weight")),
        "betweenness": networkx_betweenness(graph),
        "closeness": nx.closeness_centrality(graph, distance="length"),
        "pagerank": nx.pagerank(graph, weight="weight", tol=1e-14, max_iter=10_000),
    }
    hubs, authorities = nx.hits(graph, tol=1e-12, max_iter=10_000)
    expected["hub"], expected["authority"] = hubs, authorities
    for name, values in expected.items():
        np.testing.assert_allclose(
            result.metrics[name], as_array(values, n), rtol=RTOL, atol=1e-12, err_msg=name
        )
        assert result.metrics[name].dtype == np.float64
    assert result.density == pytest.approx(nx.density(graph), rel=1e-12)
    assert result.reciprocity == pytest.approx(nx.overall_reciprocity(graph), rel=1e-12)


def test_betweenness_counts_a_weight_one_self_loop_as_networkx_does(kernels):
    """Found by fuzzing: a causal first row is all on itself (weight 1, length 0); kept as a
    self-loop, networkx counts it as a second shortest path into token 0. Before, the
    kernels ignored it (self-loops never shorten a path) and differed from networkx."""
    matrix = attention_like(12, 4, causal=True)
    assert matrix[0, 0] == 1.0
    result = analyze_graph(matrix, SparsifyRule(mode="none", self_loops=True))
    expected = as_array(networkx_betweenness(reference_graph(result)), 12)
    np.testing.assert_allclose(result.metrics["betweenness"], expected, rtol=RTOL, atol=1e-12)
    assert result.metrics["betweenness"][0] > 0  # networkx's count, though 0 leads nowhere


def test_hits_with_a_tied_top_singular_value_follows_the_power_iteration():
    """Chain 0 -> 1 -> 2: singular values (1, 1, 0), nx.hits returns any mix of the tied
    vectors (before: hub [0, 1, 0]); the rule is HITS's power iteration from a uniform hub
    vector (networkx's _hits_python), which splits evenly."""
    from networkx.algorithms.link_analysis.hits_alg import _hits_python

    chain = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    result = analyze_graph(chain, SparsifyRule(mode="none"))
    np.testing.assert_allclose(result.metrics["hub"], [0.5, 0.5, 0.0], atol=1e-12)
    np.testing.assert_allclose(result.metrics["authority"], [0.0, 0.5, 0.5], atol=1e-12)
    hubs, authorities = _hits_python(reference_graph(result), max_iter=10_000, tol=1e-15)
    np.testing.assert_allclose(result.metrics["hub"], as_array(hubs, 3), atol=1e-9)
    np.testing.assert_allclose(result.metrics["authority"], as_array(authorities, 3), atol=1e-9)


def test_hits_splits_between_identical_disconnected_pieces():
    """Two copies of one head side by side tie exactly; each gets half of one copy's HITS,
    and a copy scaled down (a smaller top singular value) gets nothing, as in nx.hits."""
    piece = attention_like(7, 3)
    block = np.zeros((21, 21))
    block[:7, :7] = block[7:14, 7:14] = piece
    block[14:, 14:] = 0.5 * piece + 0.5 * np.eye(7)
    top = [np.linalg.svd(m, compute_uv=False)[0] for m in (piece, block[14:, 14:])]
    assert top[1] < top[0] * 0.99
    single = analyze_graph(piece, SparsifyRule(mode="none"))
    both = analyze_graph(block, SparsifyRule(mode="none"))
    for name in ("hub", "authority"):
        np.testing.assert_allclose(both.metrics[name][:7], single.metrics[name] / 2, rtol=1e-9)
        np.testing.assert_allclose(both.metrics[name][7:14], single.metrics[name] / 2, rtol=1e-9)
        np.testing.assert_allclose(both.metrics[name][14:], 0.0, atol=1e-12)


@pytest.mark.parametrize("resolution", [0.5, 1.0, 2.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_communities_reach_python_louvain_and_modularity_matches(seed, resolution, kernels):
    matrix = attention_like(60, 10 + seed, sharpness=1.5)
    result = analyze_graph(matrix, seed=seed, resolution=resolution)
    undirected = undirected_reference(reference_graph(result))
    parts = [set(np.flatnonzero(result.communities == c)) for c in np.unique(result.communities)]
    assert result.modularity == pytest.approx(
        nx.community.modularity(undirected, parts, weight="weight", resolution=resolution),
        rel=1e-9,
    )
    louvain = community_louvain.best_partition(
        undirected, weight="weight", resolution=resolution, random_state=seed
    )
    theirs = [
        {node for node, c in louvain.items() if c == label} for label in set(louvain.values())
    ]
    theirs_q = nx.community.modularity(undirected, theirs, weight="weight", resolution=resolution)
    assert result.modularity >= theirs_q - 1e-9
    if resolution == 1.0:  # python-louvain's own modularity (resolution 1) agrees with ours
        ours = dict(enumerate(result.communities.tolist()))
        assert community_louvain.modularity(ours, undirected, weight="weight") == pytest.approx(
            result.modularity, rel=1e-9
        )


def test_communities_are_seeded_and_numbered_by_first_appearance():
    matrix = attention_like(50, 7, sharpness=1.0)
    first = analyze_graph(matrix, seed=3)
    again = analyze_graph(matrix, seed=3)
    np.testing.assert_array_equal(first.communities, again.communities)
    assert first.communities.dtype == np.int64 and first.communities[0] == 0
    seen = -1
    for label in first.communities:
        assert label <= seen + 1
        seen = max(seen, label)


def test_self_loop_weighs_once_in_the_community_graph():
    matrix = np.array([[0.6, 0.4, 0.0], [0.5, 0.5, 0.0], [0.0, 0.2, 0.8]])
    result = analyze_graph(matrix, SparsifyRule(mode="none", self_loops=True))
    undirected = nx.Graph()
    undirected.add_weighted_edges_from(
        [(0, 0, 0.6), (0, 1, 0.9), (1, 1, 0.5), (2, 1, 0.2), (2, 2, 0.8)]
    )
    parts = [set(np.flatnonzero(result.communities == c)) for c in np.unique(result.communities)]
    assert result.modularity == pytest.approx(nx.community.modularity(undirected, parts))


def test_graph_without_edges_is_quiet():
    result = analyze_graph(np.eye(4))
    assert len(result.sources) == 0 and result.density == 0.0
    assert math.isnan(result.reciprocity) and math.isnan(result.modularity)
    assert all(np.all(values == 0) for name, values in result.metrics.items() if name != "pagerank")
    np.testing.assert_allclose(result.metrics["pagerank"], 0.25)
    np.testing.assert_array_equal(result.communities, [0, 1, 2, 3])


def test_timings_cover_every_step():
    result = analyze_graph(attention_like(16, 0))
    assert {"sparsify", "paths", "centrality", "communities", "summary"} <= set(result.timings)
    assert result.timings["total"] >= max(v for k, v in result.timings.items() if k != "total")


# --------------------------------------------------------------------------- dense betweenness


def dense_reference(matrix: np.ndarray) -> np.ndarray:
    """networkx on the graph of every positive off-diagonal entry (dense_betweenness's)."""
    graph = nx.DiGraph()
    n = matrix.shape[0]
    graph.add_nodes_from(range(n))
    for i, j in zip(*np.nonzero(matrix > 0), strict=True):
        if i != j:
            graph.add_edge(int(i), int(j), length=-math.log(matrix[i, j]))
    return as_array(networkx_betweenness(graph), n)


@pytest.mark.parametrize(("n", "seed", "causal"), [(10, 0, False), (40, 1, False), (30, 2, True)])
def test_dense_betweenness_equals_networkx(n, seed, causal, kernels):
    matrix = attention_like(n, seed, causal=causal, sharpness=1.0)
    np.testing.assert_allclose(
        dense_betweenness(matrix), dense_reference(matrix), rtol=RTOL, atol=1e-12
    )


def tied_matrix() -> np.ndarray:
    """0 -> 1 -> 3 and 0 -> 2 -> 3 have equal products (0.5 * 0.5) and beat 0 -> 3; 4 -> {1, 2}
    -> 3 ties the same way. Each of 1 and 2 carries half of every tied pair."""
    m = np.full((6, 6), 1e-3)
    m[0, 1] = m[0, 2] = 0.5
    m[1, 3] = m[2, 3] = 0.5
    m[4, 1] = m[4, 2] = 0.4
    m[5, 0] = 0.9
    m /= m.sum(axis=1, keepdims=True) * 1.0001
    assert m[0, 1] * m[1, 3] == m[0, 2] * m[2, 3]
    return m


def test_dense_betweenness_counts_tied_shortest_paths(kernels):
    m = tied_matrix()
    ours = dense_betweenness(m)
    np.testing.assert_allclose(ours, dense_reference(m), rtol=RTOL, atol=1e-12)
    assert ours[1] == pytest.approx(ours[2]) and ours[1] > 0


@pytest.mark.parametrize("rule", [SparsifyRule(mode="none"), SparsifyRule(mode="top_k", top_k=3)])
def test_graph_betweenness_counts_tied_shortest_paths(rule, kernels):
    m = tied_matrix()
    result = analyze_graph(m, rule)
    expected = as_array(networkx_betweenness(reference_graph(result)), 6)
    np.testing.assert_allclose(result.metrics["betweenness"], expected, rtol=RTOL, atol=1e-12)
    assert result.metrics["betweenness"][1] == pytest.approx(result.metrics["betweenness"][2])


def test_dense_betweenness_handles_one_hot_rows(kernels):
    m = attention_like(12, 4, causal=True)
    assert m[0, 0] == 1.0  # a causal first row: a single weight of 1 (length 0)
    m[5] = 0.0
    m[5, 2] = 1.0  # an off-diagonal length-0 edge
    np.testing.assert_allclose(dense_betweenness(m), dense_reference(m), rtol=RTOL, atol=1e-12)


# --------------------------------------------------------------------------- export


def test_to_networkx_carries_every_attribute():
    matrix = attention_like(9, 5)
    result = analyze_graph(matrix)
    labels = [f"tok{i}" for i in range(9)]
    graph = to_networkx(result, labels)
    assert sorted(graph.nodes) == list(range(9))
    assert graph.number_of_edges() == len(result.sources)
    assert graph.nodes[3]["label"] == "tok3"
    assert graph.nodes[3]["community"] == int(result.communities[3])
    assert graph.nodes[3]["pagerank"] == pytest.approx(result.metrics["pagerank"][3])
    s, t = int(result.sources[0]), int(result.targets[0])
    assert graph[s][t]["length"] == pytest.approx(-math.log(graph[s][t]["weight"]))
    with pytest.raises(ValueError):
        to_networkx(result, labels[:-1])


@pytest.mark.parametrize("writer", ["gexf", "graphml"])
def test_files_read_back_with_networkx(tmp_path, writer):
    matrix = attention_like(10, 6)
    result = analyze_graph(matrix)
    labels = [f"w{i}" for i in range(10)]
    path = tmp_path / f"graph.{writer}"
    if writer == "gexf":
        write_gexf(result, labels, path)
        back = nx.read_gexf(path)
    else:
        write_graphml(result, labels, path)
        back = nx.read_graphml(path)
    original = to_networkx(result, labels)
    assert sorted(back.nodes, key=int) == [str(n) for n in original.nodes]
    assert {(int(s), int(t)) for s, t in back.edges} == set(original.edges)
    for node, data in original.nodes(data=True):
        read = back.nodes[str(node)]
        assert read["label"] == data["label"] and int(read["community"]) == data["community"]
        for name in METRIC_NAMES:  # files keep 7 significant digits (analysis/io/numbers.py)
            assert float(read[name]) == pytest.approx(data[name], rel=1e-6, abs=1e-12)
    for s, t, data in original.edges(data=True):
        read = back.edges[str(s), str(t)]
        assert float(read["weight"]) == pytest.approx(data["weight"], rel=1e-6)
        assert float(read["length"]) == pytest.approx(data["length"], rel=1e-6, abs=1e-12)
