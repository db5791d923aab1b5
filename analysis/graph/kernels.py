"""The heavy steps of the graph analysis: all-pairs shortest paths with betweenness, and
Louvain. The C kernels ``analysis/graph/_paths.c`` and ``analysis/graph/_louvain.c`` (built by
``pip install -e .``; they release the GIL and run on two threads) compute them; without a
compiler, scipy and igraph compute the same numbers more slowly (the fallback below), with
networkx's own steps where igraph would count tied or zero-length paths otherwise.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import igraph
import numpy as np
import scipy.sparse as sps
from scipy.sparse import csgraph
from threadpoolctl import ThreadpoolController

try:  # C kernels, built by `pip install -e .` (see pyproject.toml); they release the GIL
    from analysis.graph import _paths as _paths_core
except ImportError:  # installed without a C compiler: scipy + igraph below, slower
    _paths_core = None
try:
    from analysis.graph import _louvain as _louvain_core
except ImportError:
    _louvain_core = None

# igraph's betweenness needs strictly positive lengths: a weight of exactly 1 (length 0)
# gets this length instead, far below igraph's tie tolerance (1e-10 relative).
LENGTH_FLOOR = 1e-15


# An edge u -> v can lie on a shortest path only if its length equals the distance u -> v;
# edges longer than that by more than this relative slack are left out of betweenness.
BACKBONE_SLACK = 1e-9


def kernels_in_use() -> str:
    """Which implementation backs the heavy steps, e.g. "C (paths, Louvain)"."""
    compiled = [name for name, core in (("paths", _paths_core), ("Louvain", _louvain_core)) if core]
    fallback = [name for name, core in (("paths", _paths_core), ("Louvain", _louvain_core)) if not core]
    parts = []
    if compiled:
        parts.append(f"C ({', '.join(compiled)})")
    if fallback:
        parts.append(f"scipy/igraph fallback ({', '.join(fallback)}; C extension not built)")
    return "; ".join(parts)


def paths_csr(n: int, sources, targets, lengths, *, by_length: bool):
    """CSR arrays ``(indptr, indices, lengths)`` of the graph without self-loops (they never lie
    on a shortest path). Rows list their edges by increasing length when ``by_length`` (the
    kernel's pruning needs it), else by target, the order networkx visits them in."""
    off_diagonal = sources != targets
    sources, targets, lengths = sources[off_diagonal], targets[off_diagonal], lengths[off_diagonal]
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(sources, minlength=n), out=indptr[1:])
    if by_length:  # one row-wise argsort of a dense matrix beats a lexsort of the edges
        dense = np.full((n, n), np.inf)
        dense[sources, targets] = lengths
        order = np.argsort(dense, axis=1)
        kept = np.arange(n)[None, :] < np.diff(indptr)[:, None]
        targets = order[kept]
        lengths = dense[np.repeat(np.arange(n), np.diff(indptr)), targets]
    else:
        order = np.lexsort((targets, sources))
        targets, lengths = targets[order], lengths[order]
    return indptr, np.ascontiguousarray(targets, dtype=np.int64), np.ascontiguousarray(
        lengths, dtype=np.float64
    )


PATH_CHUNKS = 8  # source blocks for the C kernel, shared out among the pool's threads


def zero_length_loops(n: int, sources, targets, lengths) -> np.ndarray:
    """uint8 ``[n]``: 1 where node ``i`` has a self-loop of length 0 (weight exactly 1).

    Such a loop never shortens a path, but networkx's betweenness meets it as a second
    shortest path into its node (``d + 0 == d``): it doubles the node's path count and
    makes the node its own predecessor, which raises the node's betweenness (by one for
    every source that reaches it, when it leads nowhere) and lowers its predecessors'.
    The metrics follow networkx, so these loops are kept track of.
    """
    loops = np.zeros(n, dtype=np.uint8)
    loops[sources[(sources == targets) & (lengths == 0)]] = 1
    return loops


def start_shortest_paths(
    n: int, sources, targets, lengths, pool: ThreadPoolExecutor | None = None
) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
    """Starts :func:`shortest_paths` on ``pool``'s threads (the C kernel; the fallback runs
    at once in this thread) and returns the function that waits for ``(D, betweenness)``."""
    # networkx leaves n <= 2 unscaled: raw values are 0 there, but for a zero-length loop
    scale = 1.0 / ((n - 1) * (n - 2)) if n > 2 else 1.0
    sources, targets = np.asarray(sources, dtype=np.int64), np.asarray(targets, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.float64)
    loops = zero_length_loops(n, sources, targets, lengths)
    if _paths_core is None:
        distances, predecessors = _scipy_distances(n, sources, targets, lengths)
        betweenness = _fallback_betweenness(n, sources, targets, lengths, distances, predecessors)
        return lambda: (distances, betweenness)
    # Every length > 0: rows sorted by length, so the kernel can stop scanning a row early.
    prune = bool(len(lengths)) and bool((lengths[sources != targets] > 0).all())
    indptr, indices, ordered = paths_csr(n, sources, targets, lengths, by_length=prune)
    reach = np.empty(n, dtype=np.int64)
    _paths_core.reach_counts(indptr, indices, reach)
    distances = np.empty((n, n))
    bounds = np.linspace(0, n, PATH_CHUNKS + 1).astype(int)
    blocks = [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]
    partial = np.zeros((max(len(blocks), 1), n))

    loop_args = (loops,) if loops.any() else ()

    def run(k: int) -> None:
        start, stop = blocks[k]
        _paths_core.brandes(
            indptr, indices, ordered, reach, start, stop, prune, distances[start:stop], partial[k],
            *loop_args,
        )

    if pool is None:
        for k in range(len(blocks)):
            run(k)
        running = []
    else:
        running = [pool.submit(run, k) for k in range(len(blocks))]

    def wait() -> tuple[np.ndarray, np.ndarray]:
        for future in running:
            future.result()
        return distances, partial.sum(axis=0) * scale

    return wait


def shortest_paths(
    n: int, sources, targets, lengths, pool: ThreadPoolExecutor | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(D, betweenness)``: all-pairs shortest path lengths ``D[s, t]`` (inf when t is
    unreachable from s) and normalised directed betweenness, equal to
    ``nx.betweenness_centrality(G, weight="length")`` on the same graph.

    The C kernel (analysis/graph/_paths.c) runs one Dijkstra + Brandes pass per source with
    networkx's path counting and exact float tie test; with every length > 0 it scans each
    row by increasing length and stops once no edge can reach a node within the largest
    distance still possible (exact). Without the kernel: scipy's Dijkstra and igraph's
    Brandes (:func:`_fallback_betweenness`), same results, several times slower.

    Self-loops of length > 0 change nothing; one of length 0 (weight 1) counts as networkx
    counts it (see :func:`zero_length_loops`), networkx's adjacency being the edges in
    row-major order (as ``sparsify`` returns them and ``export.to_networkx`` adds them).
    Without the kernel such a graph's betweenness comes from networkx itself.
    """
    return start_shortest_paths(n, sources, targets, lengths, pool)()


def networkx_raw_betweenness(n: int, sources, targets, lengths, from_sources=None) -> np.ndarray:
    """Raw (unscaled) betweenness summed over the shortest paths from ``from_sources``
    (default all), computed by networkx's own Dijkstra + Brandes steps on the graph built
    in row-major edge order: the fallback's exact answer where igraph's tie tolerance or
    zero lengths would count paths otherwise. Slow (Python), used for few sources."""
    import networkx as nx
    from networkx.algorithms.centrality.betweenness import (
        _accumulate_basic,
        _single_source_dijkstra_path_basic,
    )

    graph = nx.DiGraph()
    graph.add_nodes_from(range(n))
    order = np.lexsort((targets, sources))
    graph.add_weighted_edges_from(
        zip(sources[order].tolist(), targets[order].tolist(), lengths[order].tolist(), strict=True),
        weight="length",
    )
    raw = dict.fromkeys(range(n), 0.0)
    for source in range(n) if from_sources is None else (int(s) for s in from_sources):
        stack, predecessors, sigma, _ = _single_source_dijkstra_path_basic(graph, source, "length")
        raw, _ = _accumulate_basic(raw, stack, predecessors, sigma, source)
    return np.array([raw[i] for i in range(n)], dtype=np.float64)


def _scipy_distances(n: int, sources, targets, lengths) -> tuple[np.ndarray, np.ndarray]:
    """All-pairs shortest path lengths ``D[s, t]`` (inf when t is unreachable from s) and
    one shortest-path predecessor ``P[s, t]`` (negative for t == s or unreachable)."""
    graph = sps.csr_matrix((lengths, (sources, targets)), shape=(n, n))
    if n <= DIJKSTRA_CHUNK:
        return csgraph.dijkstra(graph, directed=True, return_predecessors=True)
    # In blocks of sources: scipy holds the GIL for a whole call (0.17 s for a broad 512-token
    # head), which would freeze the window's thread while the worker runs this.
    distances = np.empty((n, n))
    predecessors = np.empty((n, n), dtype=np.int32)
    for start in range(0, n, DIJKSTRA_CHUNK):
        rows = np.arange(start, min(start + DIJKSTRA_CHUNK, n))
        distances[rows], predecessors[rows] = csgraph.dijkstra(
            graph, directed=True, indices=rows, return_predecessors=True
        )
    return distances, predecessors


DIJKSTRA_CHUNK = 64  # sources per scipy call in _scipy_distances


def backbone_mask(sources, targets, lengths, distances) -> np.ndarray:
    """Mask of the edges that are themselves a shortest path between their ends. Only these
    can lie on any shortest path; the slack keeps every edge a tie tolerance could admit."""
    return (sources != targets) & (lengths <= distances[sources, targets] * (1.0 + BACKBONE_SLACK))


def igraph_betweenness(n: int, sources, targets, lengths, from_sources=None) -> np.ndarray:
    """Raw directed betweenness (igraph Brandes, ties within 1e-10 relative), optionally
    summed over the shortest paths that start at ``from_sources`` only."""
    graph = igraph.Graph(n=n, edges=np.column_stack([sources, targets]).tolist(), directed=True)
    with warnings.catch_warnings():  # LENGTH_FLOOR (for weight-1 edges) is meant to be tiny
        warnings.filterwarnings("ignore", "Some weights are smaller", RuntimeWarning)
        raw = graph.betweenness(
            directed=True,
            weights=np.maximum(lengths, LENGTH_FLOOR).tolist(),
            sources=None if from_sources is None else [int(s) for s in from_sources],
        )
    return np.asarray(raw, dtype=np.float64)


def _sources_with_ties(distances: np.ndarray, sources, targets, lengths) -> np.ndarray:
    """Bool per source: does some node have two "tight" incoming edges (two shortest paths)?

    Edge u -> v is tight for source s when ``D[s, u] + len(u, v) == D[s, v]`` (relative
    tolerance ``BACKBONE_SLACK``). Every reachable node other than s has at least one tight
    edge (its predecessor), so s has ties exactly when it has more tight edges than that.
    """
    n = distances.shape[0]
    by_node = np.ascontiguousarray(distances.T)  # by_node[v, s] = D[s, v]
    limit = by_node * (1.0 + BACKBONE_SLACK)
    tight = np.zeros(n, dtype=np.int64)
    for start in range(0, len(lengths), 1024):
        block = slice(start, start + 1024)
        via = by_node[sources[block]]
        via += lengths[block, None]
        tight += np.count_nonzero(via <= limit[targets[block]], axis=0)
    return tight > np.isfinite(distances).sum(axis=1) - 1


def _tree_betweenness(distances, predecessors, skip: np.ndarray) -> np.ndarray:
    """Raw betweenness summed over sources whose shortest paths are unique (not ``skip``).

    With unique shortest paths each source's paths form a tree, and a node's dependency is
    the number of its descendants. Subtree sizes are accumulated for all sources at once,
    visiting nodes from the farthest to the nearest (flat indices; index n*n is a bin for
    "no parent"). Needs strictly positive lengths (a parent is strictly nearer).
    """
    n = distances.shape[0]
    trash = n * n
    reachable = np.isfinite(distances) & ~skip[:, None]
    row_start = np.arange(n)[:, None] * n
    visit = np.ascontiguousarray((row_start + np.argsort(distances, axis=1)).T)
    parent = np.where(reachable & (predecessors >= 0), row_start + predecessors, trash)
    parent = np.append(parent.ravel(), trash)
    size = np.append(reachable.ravel().astype(np.float64), 0.0)
    for rank in range(n - 1, 0, -1):
        nodes = visit[rank]
        size[parent[nodes]] += size[nodes]
    size = size[:trash].reshape(n, n)
    reachable[np.arange(n), np.arange(n)] = False
    return np.where(reachable, size - 1.0, 0.0).sum(axis=0)


def _fallback_betweenness(
    n: int, sources, targets, lengths, distances, predecessors
) -> np.ndarray:
    """Normalised directed betweenness with lengths, equal to ``nx.betweenness_centrality``.

    Sources whose shortest paths are all unique (no two paths within 1e-9 relative) use
    the vectorised tree accumulation; the others go through networkx's own per-source
    steps (:func:`networkx_raw_betweenness`), which compare path lengths exactly as
    networkx does. A graph with a length-0 edge (weight 1; a self-loop included, see
    :func:`zero_length_loops`) goes to networkx whole: slow, but exact.
    """
    if bool((lengths == 0).any()):
        raw = networkx_raw_betweenness(n, sources, targets, lengths)
        return raw / ((n - 1) * (n - 2)) if n > 2 else raw
    backbone = backbone_mask(sources, targets, lengths, distances)
    if n < 3 or not backbone.any():
        return np.zeros(n)
    tied = _sources_with_ties(distances, sources[backbone], targets[backbone], lengths[backbone])
    raw = _tree_betweenness(distances, predecessors, skip=tied)
    if tied.any():
        raw += networkx_raw_betweenness(n, sources, targets, lengths, np.flatnonzero(tied))
    return raw / ((n - 1) * (n - 2))


LOUVAIN_WORK = 2**17  # CSR entries x runs: about 5 ms of Louvain (one run of a broad head)
LOUVAIN_MAX_RUNS = 128


def louvain_restarts(entries: int) -> int:
    """Louvain runs whose best partition is kept, for a graph of ``entries`` CSR entries
    (each undirected edge twice): as many as fit in LOUVAIN_WORK, 1 to LOUVAIN_MAX_RUNS.
    Small graphs, where one greedy run most often misses the best partition, get many (a
    60-token head: 128 runs, ~2 ms); a broad 512-token head gets one, whose refinement
    already beats python-louvain's run on average."""
    return int(min(LOUVAIN_MAX_RUNS, max(1, LOUVAIN_WORK // max(int(entries), 1))))


def louvain(n: int, u, v, w, resolution: float, seed: int) -> np.ndarray:
    """Louvain communities of the undirected graph ``(u, v, w)`` (``u <= v``, weights > 0),
    seeded: the C kernel when built (analysis/graph/_louvain.c, GIL released), else igraph's
    multilevel. Both run :func:`louvain_restarts` times from different node orders and keep
    the partition of the highest modularity, so the result reaches what one
    python-louvain run does (see _louvain.c for the numbers)."""
    if len(w) == 0:
        return np.arange(n, dtype=np.int64)
    u, v, w = np.asarray(u), np.asarray(v), np.asarray(w, dtype=np.float64)
    restarts = louvain_restarts(2 * len(w) - int(np.count_nonzero(u == v)))
    if _louvain_core is None:
        return _igraph_louvain(n, u, v, w, resolution, seed, restarts)
    if n <= 2048 and bool((w > 0).all()):  # row-major order straight from a dense matrix
        symmetric = np.zeros((n, n))
        symmetric[u, v] = w
        symmetric[v, u] = w
        rows, cols = np.nonzero(symmetric)
        data = symmetric[rows, cols]
    else:
        between = u != v
        rows = np.concatenate([u, v[between]])
        cols = np.concatenate([v, u[between]])
        data = np.concatenate([w, w[between]])
        order = np.lexsort((cols, rows))
        rows, cols, data = rows[order], cols[order], data[order]
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    membership = np.empty(n, dtype=np.int64)
    _louvain_core.louvain(
        indptr,
        np.ascontiguousarray(cols, dtype=np.int64),
        np.ascontiguousarray(data, dtype=np.float64),
        float(resolution),
        int(seed) & 0xFFFFFFFFFFFFFFFF,
        membership,
        restarts,
    )
    return membership


def _igraph_louvain(
    n: int, u, v, w, resolution: float, seed: int, restarts: int = 1
) -> np.ndarray:
    """igraph's multilevel (Louvain) with its random generator seeded, then restored;
    ``restarts`` runs from the same generator, the highest modularity kept (earliest on
    ties)."""
    graph = igraph.Graph(n=n, edges=list(zip(u.tolist(), v.tolist(), strict=True)))
    weights = w.tolist()
    best, best_quality = None, -np.inf
    igraph.set_random_number_generator(random.Random(seed))
    try:
        for _ in range(restarts):
            clustering = graph.community_multilevel(weights=weights, resolution=resolution)
            quality = graph.modularity(clustering.membership, weights=weights, resolution=resolution)
            if quality > best_quality:
                best, best_quality = clustering.membership, quality
    finally:
        igraph.set_random_number_generator(random)
    return np.asarray(best, dtype=np.int64)


_blas: ThreadpoolController | None = None


def one_blas_thread():
    """Context in which numpy/scipy's BLAS (OpenBLAS) runs on one thread. Its idle threads
    spin while waiting for work, and on a 2-core machine they took the cores the graph
    step's own threads need: with them the real-head step took 0.07-0.11 s, without them
    0.04-0.09 s (benchmarks/bench_graph_real.py). The products here are small anyway."""
    global _blas
    if _blas is None:
        _blas = ThreadpoolController()
    return _blas.limit(limits=1, user_api="blas")
