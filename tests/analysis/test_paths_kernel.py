"""The C shortest-path kernel (analysis/graph/_paths.c) against networkx and scipy, directly."""

from __future__ import annotations

import math
import threading

import networkx as nx
import numpy as np
import pytest
from scipy.sparse import csgraph, csr_matrix

from analysis.graph import _paths
from analysis.graph.kernels import paths_csr, shortest_paths
from tests.analysis.test_graph import attention_like


def random_graph(n: int, seed: int, *, density: float, zero_lengths: int = 0):
    """Edges without self-loops; some nodes unreachable; ``zero_lengths`` edges of weight 1."""
    rng = np.random.default_rng(seed)
    mask = rng.random((n, n)) < density
    np.fill_diagonal(mask, False)
    mask[:, 0] = False  # nobody reaches node 0
    sources, targets = np.nonzero(mask)
    weights = rng.uniform(0.01, 0.99, len(sources))
    if zero_lengths:
        weights[rng.choice(len(weights), zero_lengths, replace=False)] = 1.0
    return sources.astype(np.int64), targets.astype(np.int64), -np.log(weights)


def networkx_reference(n, sources, targets, lengths):
    graph = nx.DiGraph()
    graph.add_nodes_from(range(n))
    for s, t, length in zip(sources.tolist(), targets.tolist(), lengths.tolist(), strict=True):
        graph.add_edge(s, t, length=length)
    betweenness = nx.betweenness_centrality(graph, weight="length", normalized=True)
    return graph, np.array([betweenness[i] for i in range(n)])


def scipy_distances(n, sources, targets, lengths):
    matrix = csr_matrix((lengths, (sources, targets)), shape=(n, n))
    return csgraph.dijkstra(matrix, directed=True)


@pytest.mark.parametrize(
    ("n", "seed", "density", "zero_lengths"),
    [(30, 0, 0.1, 0), (40, 1, 0.5, 0), (25, 2, 0.9, 0), (30, 3, 0.15, 4), (20, 4, 0.6, 3)],
)
def test_distances_and_betweenness_equal_scipy_and_networkx(n, seed, density, zero_lengths):
    sources, targets, lengths = random_graph(n, seed, density=density, zero_lengths=zero_lengths)
    distances, betweenness = shortest_paths(n, sources, targets, lengths)
    np.testing.assert_array_equal(distances, scipy_distances(n, sources, targets, lengths))
    _, expected = networkx_reference(n, sources, targets, lengths)
    np.testing.assert_allclose(betweenness, expected, rtol=1e-12, atol=1e-15)


def test_pruned_scan_equals_the_full_scan_on_a_broad_head():
    """A broad 150-token head keeps ~100 edges per query: the pruned run (rows by length)
    must give the same distances and betweenness as the plain one (rows by target)."""
    matrix = attention_like(150, 7, sharpness=0.5)
    n = matrix.shape[0]
    sources, targets = np.nonzero(matrix > np.quantile(matrix, 0.3))
    keep = sources != targets
    sources, targets = sources[keep], targets[keep]
    lengths = -np.log(matrix[sources, targets])
    results = []
    for prune in (True, False):
        indptr, indices, ordered = paths_csr(n, sources, targets, lengths, by_length=prune)
        reach = np.empty(n, dtype=np.int64)
        _paths.reach_counts(indptr, indices, reach)
        distances, raw = np.empty((n, n)), np.zeros(n)
        _paths.brandes(indptr, indices, ordered, reach, 0, n, prune, distances, raw)
        results.append((distances, raw))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(results[0][0], scipy_distances(n, sources, targets, lengths))


def test_exact_ties_split_the_paths_as_networkx_does():
    # 0 -> {1, 2} -> 3 with equal products; 1 and 2 share the pair (0, 3) half and half
    sources = np.array([0, 0, 1, 2, 0, 3], dtype=np.int64)
    targets = np.array([1, 2, 3, 3, 3, 4], dtype=np.int64)
    lengths = -np.log(np.array([0.5, 0.5, 0.5, 0.5, 0.1, 0.9]))
    _, betweenness = shortest_paths(5, sources, targets, lengths)
    _, expected = networkx_reference(5, sources, targets, lengths)
    np.testing.assert_allclose(betweenness, expected, rtol=1e-12)
    assert betweenness[1] == betweenness[2] > 0


def with_zero_length_loops(n, sources, targets, lengths, nodes):
    """The graph plus a weight-1 (length-0) self-loop at each of ``nodes``, row-major."""
    sources = np.concatenate([sources, np.asarray(nodes, dtype=np.int64)])
    targets = np.concatenate([targets, np.asarray(nodes, dtype=np.int64)])
    lengths = np.concatenate([lengths, np.zeros(len(nodes))])
    order = np.lexsort((targets, sources))
    return sources[order], targets[order], lengths[order]


def test_zero_length_self_loops_count_as_networkx_counts_them():
    """networkx meets a weight-1 self-loop as a tie while scanning its node's edges in
    order: sigma doubles there, so a tie to a lower target (2 -> 1 here: 0 -> 1 and
    0 -> 2 -> 1 both weigh 0.25) adds the sigma from before the loop, a higher one after."""
    sources = np.array([0, 0, 1, 2, 2, 3], dtype=np.int64)
    targets = np.array([1, 2, 3, 1, 3, 4], dtype=np.int64)
    lengths = -np.log(np.array([0.25, 0.5, 0.5, 0.5, 0.125, 0.9]))
    graph = with_zero_length_loops(5, sources, targets, lengths, [1, 2, 3])
    _, betweenness = shortest_paths(5, *graph)
    _, expected = networkx_reference(5, *graph)
    np.testing.assert_allclose(betweenness, expected, rtol=1e-12)
    _, without_loops = networkx_reference(5, sources, targets, lengths)
    assert not np.allclose(expected, without_loops)  # the loops do change networkx's numbers


@pytest.mark.parametrize(("n", "seed", "density"), [(2, 0, 1.0), (12, 1, 0.3), (30, 2, 0.15)])
def test_zero_length_self_loops_on_random_graphs(n, seed, density):
    sources, targets, lengths = random_graph(n, seed, density=density, zero_lengths=0)
    rng = np.random.default_rng(seed)
    loops = rng.choice(n, max(1, n // 3), replace=False)
    graph = with_zero_length_loops(n, sources, targets, lengths, loops)
    distances, betweenness = shortest_paths(n, *graph)
    np.testing.assert_array_equal(distances, scipy_distances(n, sources, targets, lengths))
    _, expected = networkx_reference(n, *graph)
    np.testing.assert_allclose(betweenness, expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("seed", range(4))
def test_reach_counts_equal_networkx_descendants(seed):
    rng = np.random.default_rng(seed)
    n = 40
    mask = rng.random((n, n)) < [0.02, 0.05, 0.1, 0.3][seed]
    if seed == 1:
        mask = np.tril(mask, -1)  # a DAG, as causal attention is
    sources, targets = np.nonzero(mask)
    graph = nx.DiGraph()
    graph.add_nodes_from(range(n))
    graph.add_edges_from(zip(sources.tolist(), targets.tolist(), strict=True))
    indptr, indices, _ = paths_csr(
        n, sources.astype(np.int64), targets.astype(np.int64), np.ones(len(sources)), by_length=False
    )
    counts = np.empty(n, dtype=np.int64)
    _paths.reach_counts(indptr, indices, counts)
    assert counts.tolist() == [len(nx.descendants(graph, v)) + 1 for v in range(n)]


def test_bad_buffers_are_refused_with_a_message():
    indptr = np.array([0, 1, 1], dtype=np.int64)
    indices = np.array([1], dtype=np.int64)
    lengths = np.array([0.5])
    reach = np.array([2, 1], dtype=np.int64)  # node 0 reaches itself and 1
    ok = dict(dist=np.empty((2, 2)), bc=np.zeros(2))
    _paths.brandes(indptr, indices, lengths, reach, 0, 2, True, ok["dist"], ok["bc"])
    assert ok["dist"][0].tolist() == [0.0, 0.5] and math.isinf(ok["dist"][1, 0])
    with pytest.raises(ValueError, match="out of range"):
        _paths.brandes(indptr, np.array([2], dtype=np.int64), lengths, reach, 0, 2, True,
                       np.empty((2, 2)), np.zeros(2))
    with pytest.raises(ValueError, match="indptr"):
        _paths.reach_counts(np.array([0, 2, 1], dtype=np.int64), indices, np.empty(2, dtype=np.int64))
    with pytest.raises(ValueError, match="lengths must be finite"):
        _paths.brandes(indptr, indices, np.array([-1.0]), reach, 0, 2, True,
                       np.empty((2, 2)), np.zeros(2))
    with pytest.raises(ValueError, match="start <= stop"):
        _paths.brandes(indptr, indices, lengths, reach, 0, 3, True, np.empty((3, 2)), np.zeros(2))
    with pytest.raises(ValueError, match="wrong size"):
        _paths.brandes(indptr, indices, lengths[:0], reach, 0, 2, True, np.empty((2, 2)), np.zeros(2))
    with pytest.raises(ValueError, match="loops"):
        _paths.brandes(indptr, indices, lengths, reach, 0, 2, True, np.empty((2, 2)), np.zeros(2),
                       np.zeros(3, dtype=np.uint8))


def test_the_kernel_releases_the_gil():
    """While a thread runs the kernel on a dense 400-node graph, this thread keeps running
    Python: the window's thread is never held up by the graph step."""
    n = 400
    matrix = attention_like(n, 3, sharpness=0.3)
    sources, targets = np.nonzero(~np.eye(n, dtype=bool))
    indptr, indices, ordered = paths_csr(
        n, sources, targets, -np.log(matrix[sources, targets]), by_length=False
    )
    reach = np.full(n, n, dtype=np.int64)
    inside = threading.Event()
    finished = threading.Event()

    def work():
        inside.set()
        _paths.brandes(indptr, indices, ordered, reach, 0, n, False, np.empty((n, n)), np.zeros(n))
        finished.set()

    thread = threading.Thread(target=work)
    thread.start()
    inside.wait()
    spins_while_running = 0
    while not finished.is_set():
        spins_while_running += 1
    thread.join()
    # Holding the GIL for the whole call would leave at most a handful of iterations (the
    # interpreter's 5 ms switch interval); the call takes far longer than that.
    assert spins_while_running > 10_000
