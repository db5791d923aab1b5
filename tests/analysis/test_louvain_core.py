"""The compiled Louvain kernel ``analysis.graph._louvain``: quality against python-louvain,
conventions (self-loops, isolated nodes, resolution), determinism, input validation, and
that it really runs with the GIL released.

The extension is imported plainly: ``make test`` builds it, so a missing build is a
failure here, not a skip.
"""

from __future__ import annotations

import threading

import community as community_louvain
import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sps

try:
    from analysis.graph._louvain import louvain
except ImportError as error:  # pragma: no cover - only without a build
    raise ImportError(
        "analysis.graph._louvain is not built: run `make setup` (or `pip install -e .`) with a C "
        f"compiler available, or build it in place ({error})"
    ) from error

# -------------------------------------------------------------------------- helpers


def csr_of_matrix(w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Symmetric CSR of a symmetric weight matrix: off-diagonal entries appear in both
    rows, a self-loop once (its weight is ``w[i, i]``)."""
    matrix = sps.csr_matrix(np.asarray(w, dtype=np.float64))
    matrix.eliminate_zeros()
    return (
        matrix.indptr.astype(np.int64),
        matrix.indices.astype(np.int64),
        matrix.data.astype(np.float64),
    )


def csr_of_graph(graph: nx.Graph) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Symmetric CSR of a networkx graph on nodes 0..n-1 (self-loops on the diagonal, once)."""
    n = graph.number_of_nodes()
    matrix = nx.to_scipy_sparse_array(graph, nodelist=range(n), weight="weight", format="csr")
    return csr_of_matrix(matrix.toarray())


def run(csr, n: int, resolution: float = 1.0, seed: int = 0) -> tuple[np.ndarray, int]:
    membership = np.full(n, -1, dtype=np.int64)
    levels = louvain(*csr, resolution, seed, membership)
    return membership, levels


def parts_of(membership) -> list[set[int]]:
    groups: dict[int, set[int]] = {}
    for node, label in enumerate(membership):
        groups.setdefault(int(label), set()).add(node)
    return list(groups.values())


def modularity(graph: nx.Graph, membership, resolution: float) -> float:
    return nx.community.modularity(
        graph, parts_of(membership), weight="weight", resolution=resolution
    )


def python_louvain_modularity(graph: nx.Graph, resolution: float, seed: int) -> float:
    partition = community_louvain.best_partition(
        graph, weight="weight", resolution=resolution, random_state=seed
    )
    return modularity(graph, [partition[i] for i in range(graph.number_of_nodes())], resolution)


def random_weighted_graph(n: int, p: float, seed: int, loops: float = 0.0) -> nx.Graph:
    """G(n, p) with weights in [0.05, 1.05); a fraction ``loops`` of nodes get a self-loop."""
    rng = np.random.default_rng(seed)
    graph = nx.Graph()
    graph.add_nodes_from(range(n))
    upper = np.triu(rng.random((n, n)) < p, k=1)
    weights = rng.random((n, n)) + 0.05
    for u, v in zip(*np.nonzero(upper), strict=True):
        graph.add_edge(int(u), int(v), weight=float(weights[u, v]))
    for u in np.nonzero(rng.random(n) < loops)[0]:
        graph.add_edge(int(u), int(u), weight=float(2.0 * weights[u, u]))
    return graph


def attention_like(n: int, seed: int, scale: float = 3.0) -> np.ndarray:
    """``W = A + A.T`` with the diagonal kept once (``A[i, i]``), ``A`` = softmax of random
    logits * scale (row-stochastic)."""
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((n, n)) * scale
    a = np.exp(logits - logits.max(axis=1, keepdims=True))
    a /= a.sum(axis=1, keepdims=True)
    w = a + a.T
    np.fill_diagonal(w, np.diag(a))
    return w


def assert_canonical(membership: np.ndarray) -> None:
    """Ids 0..k-1, numbered in order of first appearance."""
    k = int(membership.max()) + 1
    assert set(membership.tolist()) == set(range(k))
    _, first = np.unique(membership, return_index=True)
    assert np.all(np.diff(first) > 0)


TOLERANCE = 1e-9  # ours reaches python-louvain's modularity (see _louvain.c's numbers)


# -------------------------------------------------------------------------- quality


@pytest.mark.parametrize("resolution", [0.5, 1.0, 2.0])
@pytest.mark.parametrize(("p", "seed"), [(0.08, 1), (0.15, 2), (0.4, 3), (0.9, 4)])
def test_random_graphs_at_least_as_good_as_python_louvain(p, seed, resolution):
    graph = random_weighted_graph(60, p, seed)
    membership, levels = run(csr_of_graph(graph), 60, resolution, seed)
    assert levels >= 1
    assert_canonical(membership)
    ours = modularity(graph, membership, resolution)
    reference = python_louvain_modularity(graph, resolution, seed)
    assert ours >= reference - TOLERANCE


def test_planted_partition_is_found_exactly():
    groups, size = 4, 15
    graph = nx.planted_partition_graph(groups, size, 0.8, 0.03, seed=7)
    rng = np.random.default_rng(7)
    for u, v in graph.edges:
        graph[u][v]["weight"] = float(rng.uniform(0.5, 1.5))
    planted = {frozenset(block) for block in graph.graph["partition"]}
    for seed in range(3):
        membership, _ = run(csr_of_graph(graph), groups * size, 1.0, seed)
        assert {frozenset(part) for part in parts_of(membership)} == planted


@pytest.mark.parametrize("resolution", [0.5, 1.0, 2.0])
def test_graphs_with_self_loops(resolution):
    graph = random_weighted_graph(60, 0.12, 11, loops=0.5)
    assert nx.number_of_selfloops(graph) > 10
    membership, _ = run(csr_of_graph(graph), 60, resolution, 5)
    ours = modularity(graph, membership, resolution)
    assert ours >= python_louvain_modularity(graph, resolution, 5) - TOLERANCE


def set_partitions(items: list[int]):
    """Every partition of ``items`` into non-empty blocks."""
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for partition in set_partitions(rest):
        for i in range(len(partition)):
            yield partition[:i] + [[first, *partition[i]]] + partition[i + 1 :]
        yield [[first], *partition]


def test_self_loops_follow_the_networkx_conventions():
    # Two triangles joined by a bridge, and a heavy self-loop on node 0. The loop counts
    # once in L_c and twice in d_c (networkx): then splitting node 0 off its triangle is
    # best ({0}, {1, 2}, {3, 4, 5}: Q = 0.4048 > 0.3825 for the two triangles); counted
    # once in the degree, the two triangles would win. Checked against brute force.
    graph = nx.Graph()
    graph.add_weighted_edges_from(
        [(0, 1, 1.0), (1, 2, 1.0), (0, 2, 1.0), (3, 4, 1.0), (4, 5, 1.0), (3, 5, 1.0)]
    )
    graph.add_edge(2, 3, weight=0.2)
    graph.add_edge(0, 0, weight=5.0)
    best = max(
        set_partitions(list(range(6))),
        key=lambda p: nx.community.modularity(graph, p, weight="weight"),
    )
    membership, _ = run(csr_of_graph(graph), 6, 1.0, 0)
    assert {frozenset(part) for part in parts_of(membership)} == {frozenset(b) for b in best}
    assert membership.tolist() == [0, 1, 1, 2, 2, 2]
    assert modularity(graph, membership, 1.0) == pytest.approx(0.40482, abs=1e-5)


def test_isolated_nodes_stay_alone():
    graph = random_weighted_graph(50, 0.15, 21)
    graph.add_nodes_from(range(50, 60))  # isolated
    membership, _ = run(csr_of_graph(graph), 60, 1.0, 3)
    assert_canonical(membership)
    connected = set(membership[:50].tolist())
    isolated = membership[50:].tolist()
    assert len(set(isolated)) == 10 and not connected & set(isolated)
    ours = modularity(graph, membership, 1.0)
    assert ours >= python_louvain_modularity(graph, 1.0, 3) - TOLERANCE


@pytest.mark.parametrize("resolution", [0.5, 1.0, 2.0])
def test_attention_like_graph(resolution):
    w = attention_like(128, seed=5)
    graph = nx.from_numpy_array(w)  # self-loops with weight A[i, i]
    membership, _ = run(csr_of_matrix(w), 128, resolution, 1)
    assert_canonical(membership)
    ours = modularity(graph, membership, resolution)
    assert ours >= python_louvain_modularity(graph, resolution, 1) - TOLERANCE


def test_level_count_matches_a_dendrogram():
    graph = nx.planted_partition_graph(8, 6, 0.9, 0.05, seed=3)
    nx.set_edge_attributes(graph, 1.0, "weight")
    membership, levels = run(csr_of_graph(graph), 48, 1.0, 0)
    assert 1 <= levels <= 4
    assert int(membership.max()) + 1 <= 12


# -------------------------------------------------------------------------- determinism


def test_same_seed_same_membership_and_canonical_ids():
    w = attention_like(96, seed=2, scale=1.5)
    csr = csr_of_matrix(w)
    first, levels_first = run(csr, 96, 1.0, 123456789)
    second, levels_second = run(csr, 96, 1.0, 123456789)
    assert first.tolist() == second.tolist() and levels_first == levels_second
    assert_canonical(first)
    assert first[0] == 0


def test_seed_takes_the_full_unsigned_64_bit_range():
    csr = csr_of_graph(random_weighted_graph(30, 0.2, 1))
    for seed in (0, 1, 2**63, 2**64 - 1):
        a, _ = run(csr, 30, 1.0, seed)
        b, _ = run(csr, 30, 1.0, seed)
        assert a.tolist() == b.tolist()


def test_accepts_keywords_and_other_int64_buffers():
    import array

    graph = random_weighted_graph(20, 0.3, 8)
    indptr, indices, weights = csr_of_graph(graph)
    out = array.array("q", [0] * 20)
    levels = louvain(
        indptr=array.array("q", indptr.tolist()),
        indices=memoryview(indices),
        weights=array.array("d", weights.tolist()),
        resolution=1.0,
        seed=9,
        membership_out=out,
    )
    expected, expected_levels = run((indptr, indices, weights), 20, 1.0, 9)
    assert list(out) == expected.tolist() and levels == expected_levels


# -------------------------------------------------------------------------- edge cases


def test_empty_graph():
    out = np.empty(0, dtype=np.int64)
    assert louvain(np.zeros(1, np.int64), np.empty(0, np.int64), np.empty(0), 1.0, 0, out) == 0


def test_single_node_with_and_without_a_self_loop():
    membership, levels = run(csr_of_matrix(np.zeros((1, 1))), 1)
    assert membership.tolist() == [0] and levels == 1
    membership, levels = run(csr_of_matrix(np.array([[2.5]])), 1)
    assert membership.tolist() == [0] and levels == 1


def test_no_edges_every_node_alone():
    membership, levels = run(csr_of_matrix(np.zeros((5, 5))), 5)
    assert membership.tolist() == [0, 1, 2, 3, 4] and levels == 1


def test_a_node_that_loses_everywhere_goes_alone():
    """Found by fuzzing: python-louvain's moves (and ours before) could only join a
    neighbouring community, so this graph ended with every node in one community (Q = 0)
    although {0} | {1, 2} has Q = 0.079: from there, node 0 loses by staying anywhere."""
    w = np.array([[3.0, 1.0, 6.5], [1.0, 0.0, 10.5], [6.5, 10.5, 0.0]]) / 7.0  # 0-0 loop 3/7
    graph = nx.Graph()
    for i, j in zip(*np.nonzero(np.triu(w)), strict=True):
        graph.add_edge(int(i), int(j), weight=w[i, j])
    for seed in range(8):
        membership, _ = run(csr_of_matrix(w), 3, 1.0, seed)
        assert membership.tolist() == [0, 1, 1]
        assert modularity(graph, membership, 1.0) == pytest.approx(0.0790816, abs=1e-6)
    assert louvain(*csr_of_matrix(w), 1.0, 1, np.empty(3, np.int64), restarts=1) >= 1


@pytest.mark.parametrize(("p", "seed"), [(0.1, 5), (0.3, 6)])
def test_more_restarts_never_lower_the_modularity(p, seed):
    """The first run is the seed's own; the best of more runs is at least as good."""
    graph = random_weighted_graph(40, p, seed)
    csr = csr_of_graph(graph)
    qualities = []
    for restarts in (1, 4, 32):
        membership = np.empty(40, np.int64)
        louvain(*csr, 1.0, seed, membership, restarts=restarts)
        qualities.append(modularity(graph, membership, 1.0))
    assert qualities == sorted(qualities)
    with pytest.raises(ValueError, match="restarts"):
        louvain(*csr, 1.0, seed, np.empty(40, np.int64), restarts=0)


def test_two_disconnected_cliques():
    w = np.zeros((8, 8))
    w[:4, :4] = 1.0
    w[4:, 4:] = 1.0
    np.fill_diagonal(w, 0.0)
    membership, _ = run(csr_of_matrix(w), 8, 1.0, 4)
    assert membership.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]


def _good():
    # path 0 - 1 - 2
    indptr = np.array([0, 1, 3, 4], np.int64)
    indices = np.array([1, 0, 2, 1], np.int64)
    weights = np.ones(4)
    return indptr, indices, weights, np.empty(3, np.int64)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: a.update(indptr=np.array([0, 1, 3, 4, 4], np.int64)), "len\\(indptr\\)"),
        (lambda a: a.update(out=np.empty(4, np.int64)), "len\\(indptr\\)"),
        (lambda a: a.update(indptr=np.array([1, 1, 3, 4], np.int64)), "indptr\\[0\\]"),
        (lambda a: a.update(indptr=np.array([0, 3, 1, 4], np.int64)), "non-decreasing"),
        (lambda a: a.update(indptr=np.array([0, 1, 3, 3], np.int64)), "indptr\\[n\\]"),
        (lambda a: a.update(weights=np.ones(3)), "len\\(weights\\)"),
        (lambda a: a.update(indices=np.array([1, 0, 3, 1], np.int64)), "out of range"),
        (lambda a: a.update(indices=np.array([1, -1, 2, 1], np.int64)), "out of range"),
        (lambda a: a.update(weights=np.array([1.0, -1.0, 1.0, 1.0])), "weights\\[1\\]"),
        (lambda a: a.update(weights=np.array([1.0, np.nan, 1.0, 1.0])), "weights\\[1\\]"),
        (lambda a: a.update(weights=np.array([1.0, np.inf, 1.0, 1.0])), "weights\\[1\\]"),
        (lambda a: a.update(resolution=0.0), "resolution"),
        (lambda a: a.update(resolution=-1.0), "resolution"),
        (lambda a: a.update(resolution=float("nan")), "resolution"),
        (lambda a: a.update(resolution=float("inf")), "resolution"),
        (lambda a: a.update(indptr=np.array([0, 1, 3, 4], np.int32)), "int64"),
        (lambda a: a.update(indices=np.array([1, 0, 2, 1], np.uint64)), "int64"),
        (lambda a: a.update(weights=np.ones(4, np.float32)), "float64"),
        (lambda a: a.update(out=np.empty(3, np.int32)), "int64"),
        (lambda a: a.update(out=np.empty((3, 1), np.int64)), "1-dimensional"),
        (lambda a: a.update(indices=np.array([[1, 0], [2, 1]], np.int64)), "1-dimensional"),
        (lambda a: a.update(weights=np.ones(8)[::2]), "contiguous"),
    ],
)
def test_bad_input_raises_value_error(change, message):
    indptr, indices, weights, out = _good()
    args = {"indptr": indptr, "indices": indices, "weights": weights, "out": out}
    args["resolution"] = 1.0
    change(args)
    with pytest.raises(ValueError, match=message):
        louvain(
            args["indptr"], args["indices"], args["weights"], args["resolution"], 0, args["out"]
        )


def test_empty_graph_with_bad_indptr_raises():
    with pytest.raises(ValueError):
        louvain(
            np.ones(1, np.int64), np.empty(0, np.int64), np.empty(0), 1.0, 0, np.empty(0, np.int64)
        )


def test_read_only_output_is_refused():
    indptr, indices, weights, out = _good()
    out.flags.writeable = False
    with pytest.raises((ValueError, BufferError, TypeError)):
        louvain(indptr, indices, weights, 1.0, 0, out)


def test_non_buffer_arguments_raise_type_error():
    indptr, indices, weights, out = _good()
    with pytest.raises(TypeError):
        louvain([0, 1, 3, 4], indices, weights, 1.0, 0, out)
    with pytest.raises(TypeError):
        louvain(indptr, indices, weights, "1.0", 0, out)


def test_output_may_alias_nothing_it_reads():
    # The membership is written only at the end, after the inputs were copied.
    indptr, indices, weights, _ = _good()
    shared = indptr[:3].copy()
    membership, _ = run((indptr, indices, weights), 3)
    louvain(indptr, indices, weights, 1.0, 0, shared)
    assert shared.tolist() == membership.tolist()


# -------------------------------------------------------------------------- GIL


def test_runs_with_the_gil_released():
    """The main thread keeps running Python while a worker thread is inside ``louvain``.

    ``membership_out`` is filled with -1 and written only at the very end of the call, so
    "out[0] == -1 after the worker signalled it is about to call" means "the call is still
    running". With the GIL held for the call, the main thread could not execute a single
    iteration of its loop in that window (it would get the GIL only after the call), so
    any positive count proves the release. Several tries guard against a main thread that
    happens not to be scheduled during one call.
    """
    w = attention_like(600, seed=9, scale=0.7)
    csr = csr_of_matrix(w)
    n = w.shape[0]
    counts = []
    for attempt in range(5):
        out = np.full(n, -1, dtype=np.int64)
        about_to_call = threading.Event()
        result: list[int] = []

        def worker(out=out, about_to_call=about_to_call, result=result, seed=attempt):
            about_to_call.set()
            result.append(louvain(*csr, 1.0, seed, out))

        thread = threading.Thread(target=worker)
        thread.start()
        about_to_call.wait()
        count = 0
        while out[0] == -1:
            count += 1
        thread.join()
        assert result and result[0] >= 1 and out.min() >= 0
        counts.append(count)
        if count > 0:
            break
    assert max(counts) > 0, f"main thread made no progress during the call: {counts}"
