"""Attention as a graph: centralities, communities and summary numbers of one view.

Conventions (see README, "Conventions of meaning"):

- The input is a view matrix ``A`` ``[n, n]`` (see :mod:`analysis.graph.rules` for how it
  becomes edges ``i -> j`` of weight ``A[i, j]`` and length ``-ln A[i, j]``).
- Communities: Louvain on the undirected graph whose edge ``{i, j}`` weighs
  ``W[i, j] + W[j, i]`` (``W`` = the kept edges; a kept self-loop weighs ``W[i, i]``, once),
  resolution adjustable, seeded.

Every metric is defined as networkx defines it on the same sparsified ``nx.DiGraph`` (the
reference the tests compare with). Shortest paths, betweenness and Louvain run in
:mod:`analysis.graph.kernels` (C kernels, or scipy/igraph when they are not built).
``dense_betweenness`` is the exact betweenness of the complete graph of all positive entries.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sps
from scipy.sparse import csgraph
from scipy.sparse.linalg import svds

from analysis.graph import kernels
from analysis.graph.rules import (
    DEFAULT_RULE,
    SparsifyRule,
    checked_view_matrix,
    edge_lengths,
    sparsify_checked,
)
from analysis.options import METRIC_NAMES

PAGERANK_ALPHA = 0.85


@dataclass(frozen=True)
class GraphResult:
    """Everything computed on one view's graph. Arrays are per token unless said otherwise."""

    n: int  # tokens (nodes), including isolated ones
    sources: np.ndarray  # int64 [m]: edge i -> j means "i attends to j"
    targets: np.ndarray  # int64 [m]
    weights: np.ndarray  # float64 [m]: A[i, j]
    metrics: dict[str, np.ndarray]  # METRIC_NAMES, in that order, float64 [n] each
    communities: np.ndarray  # int64 [n]: community id, numbered by first appearance
    modularity: float  # of `communities` on the undirected graph, at `resolution`
    density: float  # m / (n (n - 1)), as nx.density
    reciprocity: float  # share of edges whose reverse is also an edge (nan: no edges)
    rule: SparsifyRule
    resolution: float
    seed: int
    timings: dict[str, float] = field(default_factory=dict)  # seconds per step
    kernels: str = ""  # which implementation computed it (kernels.kernels_in_use())

    @property
    def lengths(self) -> np.ndarray:
        """``-ln(weight)`` per edge."""
        return edge_lengths(self.weights)


def _strengths(n: int, sources, targets, weights) -> tuple[np.ndarray, np.ndarray]:
    """Weighted in- and out-degree (a self-loop counts in both), as ``G.in_degree(weight=)``."""
    incoming = np.bincount(targets, weights=weights, minlength=n).astype(np.float64)
    outgoing = np.bincount(sources, weights=weights, minlength=n).astype(np.float64)
    return incoming, outgoing


def _closeness_incoming(distances: np.ndarray) -> np.ndarray:
    """``nx.closeness_centrality(G, distance="length")`` on a DiGraph (incoming distances).

    For node u: r = nodes that reach u (u included), total = sum of their distances to u;
    closeness = (r - 1) / total * (r - 1) / (n - 1) (Wasserman-Faust), 0 when total is 0.
    """
    n = distances.shape[0]
    reach = np.isfinite(distances)
    reached_by = reach.sum(axis=0) - 1.0
    total = np.where(reach, distances, 0.0).sum(axis=0)
    if n < 2:
        return np.zeros(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        closeness = reached_by / total * reached_by / (n - 1)
    return np.where(total > 0, closeness, 0.0)


DENSE_SHARE = 1 / 16  # edges per possible pair above which PageRank/HITS use dense products


def _adjacency(n: int, sources, targets, values):
    """``M[source, target] = value`` as a dense array when the graph is dense enough for BLAS
    products to win, else as a CSR matrix."""
    if len(values) >= DENSE_SHARE * n * n:
        dense = np.zeros((n, n))
        dense[sources, targets] = values
        return dense
    return sps.csr_matrix((values, (sources, targets)), shape=(n, n))


def _pagerank(n: int, sources, targets, weights, *, tol: float = 1e-13) -> np.ndarray:
    """``nx.pagerank(G, alpha=0.85, weight="weight")``: uniform teleport, dangling mass spread
    uniformly; iterated to ``tol`` per node (tighter than networkx's 1e-6)."""
    if n == 0:
        return np.zeros(0)
    outgoing = np.bincount(sources, weights=weights, minlength=n)
    dangling = outgoing == 0
    # transposed, row-normalised transition matrix
    step = _adjacency(n, targets, sources, weights / outgoing[sources])
    x = np.full(n, 1.0 / n)
    for _ in range(10_000):
        previous = x
        x = PAGERANK_ALPHA * (step @ x + x[dangling].sum() / n) + (1.0 - PAGERANK_ALPHA) / n
        if np.abs(x - previous).sum() < n * tol:
            break
    return x


HITS_TIE_RTOL = 1e-9  # top singular values of components this close count as tied


def _top_singular(rows: int, cols: int, sources, targets, weights) -> tuple[float, np.ndarray]:
    """Largest singular value of the non-negative ``[rows, cols]`` matrix with these
    entries, and its left singular vector (unit norm, signed so its entries sum >= 0)."""
    if rows == 1 or cols == 1:  # rank one: no iteration needed
        if rows == 1:
            return float(np.linalg.norm(weights)), np.ones(1)
        column = np.bincount(sources, weights=weights, minlength=rows)
        norm = float(np.linalg.norm(column))
        return norm, column / norm
    if min(rows, cols) <= 64:
        dense = np.zeros((rows, cols))
        dense[sources, targets] = weights
        u, sigma, _ = np.linalg.svd(dense, full_matrices=False)
        top, vector = float(sigma[0]), u[:, 0]
    else:
        if len(weights) >= DENSE_SHARE * rows * cols:
            block = np.zeros((rows, cols))
            block[sources, targets] = weights
        else:
            block = sps.csr_matrix((weights, (sources, targets)), shape=(rows, cols))
        u, sigma, _ = svds(block, k=1, tol=1e-12, v0=np.full(cols, 1.0 / np.sqrt(cols)))
        top, vector = float(sigma[0]), u[:, 0].real
    return top, vector if vector.sum() >= 0 else -vector


def _compact(nodes: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The distinct ``nodes`` (sorted) and each entry's position among them."""
    present = np.zeros(n, dtype=bool)
    present[nodes] = True
    position = np.cumsum(present) - 1
    return np.flatnonzero(present), position[nodes]


def _hits(n: int, sources, targets, weights) -> tuple[np.ndarray, np.ndarray]:
    """Weighted HITS as ``nx.hits(G)`` computes it (it uses the "weight" attribute), with a
    rule where ``nx.hits`` is arbitrary.

    The hub vector is the top left singular vector of the weighted adjacency ``W``, the
    authority vector ``W.T @ hub``, both normalised to sum 1 (all zeros without edges).
    When the top singular value is simple that is exactly ``nx.hits``. When it is tied
    (e.g. the chain 0 -> 1 -> 2, or two identical disconnected pieces), ``nx.hits`` returns
    whichever vector of the tied subspace ARPACK's random start lands on; here the hub is
    the projection of the uniform vector onto that subspace: what HITS's power iteration
    from a uniform hub vector converges to (Kleinberg's algorithm, networkx's own
    ``_hits_python``). For the chain: hub ``[1/2, 1/2, 0]``, authority ``[0, 1/2, 1/2]``.

    Computed per connected component of the hub-authority (bipartite) graph, where the top
    singular value is simple (Perron-Frobenius): the tied subspace is spanned by the top
    vectors of the components whose top singular values are within ``HITS_TIE_RTOL``.
    """
    if n == 0 or len(weights) == 0:
        return np.zeros(n), np.zeros(n)
    # bipartite graph: hub side i, authority side n + j; components by edge
    links = sps.csr_matrix((np.ones(len(weights)), (sources, targets + n)), shape=(2 * n, 2 * n))
    _, labels = csgraph.connected_components(links, directed=False)
    component = labels[sources]
    tops = []  # (top singular value, hub nodes, top left singular vector) per component
    singles = np.zeros(0, dtype=np.int64)  # edges that are a component alone: sigma = weight
    if component.min() == component.max():  # one component holds every edge (the usual case)
        top, vector = _top_singular(n, n, sources, targets, weights)  # zero rows change nothing
        tops.append((top, np.arange(n), vector))
    else:
        alone = np.bincount(component)[component] == 1
        singles = np.flatnonzero(alone)
        rest = np.flatnonzero(~alone)
        order = rest[np.argsort(component[rest], kind="stable")]
        for edges in np.split(order, np.flatnonzero(np.diff(component[order])) + 1):
            if len(edges) == 0:
                continue
            rows, row_index = _compact(sources[edges], n)
            cols, col_index = _compact(targets[edges], n)
            top, vector = _top_singular(len(rows), len(cols), row_index, col_index, weights[edges])
            tops.append((top, rows, vector))
    largest = max([top for top, _, _ in tops] + weights[singles].tolist())
    floor = largest * (1.0 - HITS_TIE_RTOL)
    hub = np.zeros(n)
    for top, rows, vector in tops:
        if top >= floor:
            hub[rows] += vector.sum() * vector  # projection of the uniform vector
    tied_singles = singles[weights[singles] >= floor]
    hub[sources[tied_singles]] += 1.0
    adjacency = _adjacency(n, sources, targets, weights)
    authority = adjacency.T @ hub
    hub = adjacency @ authority  # the same direction; exactly W a, as nx.hits computes it
    return hub / hub.sum(), authority / authority.sum()


def undirected_edges(n: int, sources, targets, weights) -> tuple[np.ndarray, ...]:
    """The undirected community graph: ``(u, v, w)`` with ``u <= v``, ``w = W[u,v] + W[v,u]``
    (a self-loop keeps its weight once), ordered by ``(u, v)``."""
    directed = np.zeros((n, n))
    directed[sources, targets] = weights
    symmetric = np.triu(directed + directed.T, k=1)
    symmetric[np.arange(n), np.arange(n)] = directed.diagonal()
    u, v = np.nonzero(symmetric)
    return u.astype(np.int64), v.astype(np.int64), symmetric[u, v]


def renumber_by_first_appearance(labels: np.ndarray) -> np.ndarray:
    """Community ids 0, 1, 2, ... in the order their first token appears."""
    labels = np.asarray(labels)
    if labels.size == 0:
        return labels.astype(np.int64)
    unique, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty(len(unique), dtype=np.int64)
    rank[np.argsort(first)] = np.arange(len(unique))
    return rank[inverse.reshape(-1)]


def modularity(n: int, u, v, w, communities: np.ndarray, resolution: float = 1.0) -> float:
    """Weighted modularity as ``nx.community.modularity`` (undirected): sum over communities
    of ``L_c / m - resolution * (d_c / 2m)^2``; nan when the graph has no edge weight."""
    total = float(np.sum(w))
    if total <= 0:
        return float("nan")
    k = int(communities.max()) + 1 if n else 0
    degree = np.bincount(u, weights=w, minlength=n) + np.bincount(v, weights=w, minlength=n)
    inside = communities[u] == communities[v]
    internal = np.bincount(communities[u[inside]], weights=w[inside], minlength=k)
    community_degree = np.bincount(communities, weights=degree, minlength=k)
    return float(
        np.sum(internal) / total - resolution * np.sum((community_degree / (2 * total)) ** 2)
    )


def density(n: int, edge_count: int) -> float:
    """``nx.density`` of a DiGraph: m / (n (n - 1)); 0 for n <= 1."""
    return 0.0 if n <= 1 or edge_count == 0 else edge_count / (n * (n - 1))


def reciprocity(n: int, sources, targets) -> float:
    """``nx.overall_reciprocity``: 2 * (m - unordered pairs) / m; nan when there are no edges.
    An edge whose reverse is also an edge is reciprocated (a self-loop is its own reverse)."""
    m = len(sources)
    if m == 0:
        return float("nan")
    edge = np.zeros((n, n), dtype=bool)
    edge[sources, targets] = True
    pairs = np.count_nonzero(np.triu(edge | edge.T))
    return 2.0 * (m - pairs) / m


def analyze_graph(
    matrix: np.ndarray,
    rule: SparsifyRule = DEFAULT_RULE,
    *,
    resolution: float = 1.0,
    seed: int = 0,
) -> GraphResult:
    """Sparsify one view and compute every metric, the communities and summary numbers."""
    if not (np.isfinite(resolution) and resolution > 0):
        raise ValueError(f"resolution must be a positive number, got {resolution!r}")
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    started = clock

    def lap(step: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[step] = now - clock
        clock = now

    a = checked_view_matrix(matrix)
    n = a.shape[0]
    sources, targets, weights = sparsify_checked(a, rule)
    lengths = edge_lengths(weights)
    u, v, w = undirected_edges(n, sources, targets, weights)
    lap("sparsify")

    def communities_timed() -> tuple[np.ndarray, float]:
        begun = time.perf_counter()
        labels = kernels.louvain(n, u, v, w, resolution, int(seed))
        return labels, time.perf_counter() - begun

    # The C kernels release the GIL: Louvain and the shortest-path blocks run on two pool
    # threads while this thread computes the cheap centralities, so both cores stay busy
    # (and the window's thread is never held up by the kernels).
    with (
        kernels.one_blas_thread(),
        ThreadPoolExecutor(max_workers=2, thread_name_prefix="atlas-graph") as pool,
    ):
        louvain_running = pool.submit(communities_timed)
        paths_running = kernels.start_shortest_paths(n, sources, targets, lengths, pool)
        in_strength, out_strength = _strengths(n, sources, targets, weights)
        pagerank = _pagerank(n, sources, targets, weights)
        hub, authority = _hits(n, sources, targets, weights)
        lap("centrality")
        distances, betweenness = paths_running()
        closeness = _closeness_incoming(distances)
        lap("paths")
        labels, timings["communities"] = louvain_running.result()
    communities = renumber_by_first_appearance(labels)
    result_modularity = modularity(n, u, v, w, communities, resolution)
    result_density = density(n, len(sources))
    result_reciprocity = reciprocity(n, sources, targets)
    lap("summary")
    timings["total"] = time.perf_counter() - started
    metrics = dict(
        zip(
            METRIC_NAMES,
            (in_strength, out_strength, betweenness, closeness, pagerank, hub, authority),
            strict=True,
        )
    )
    return GraphResult(
        n=n,
        sources=sources,
        targets=targets,
        weights=weights,
        metrics=metrics,
        communities=communities,
        modularity=result_modularity,
        density=result_density,
        reciprocity=result_reciprocity,
        rule=rule,
        resolution=float(resolution),
        seed=int(seed),
        timings=timings,
        kernels=kernels.kernels_in_use(),
    )


def dense_betweenness(matrix: np.ndarray) -> np.ndarray:
    """Exact normalised betweenness on the complete graph of all positive entries.

    Equal to ``nx.betweenness_centrality(G, weight="length", normalized=True)`` where G has
    an edge i -> j of length ``-ln A[i, j]`` for every positive off-diagonal entry (the
    diagonal is not part of this graph: a self-loop never lies on a shortest path, and
    networkx would count a weight-1 one as a second path, see
    :func:`analysis.graph.kernels.zero_length_loops`). Uses the C kernel on two threads when built;
    without it, scipy's Floyd-Warshall finds the backbone (edges as short as the distance
    between their ends, the only ones on shortest paths) and igraph's Brandes runs on it.
    """
    a = checked_view_matrix(matrix)
    n = a.shape[0]
    if n < 3:
        return np.zeros(n)
    positive = a > 0
    positive[np.arange(n), np.arange(n)] = False
    sources, targets = np.nonzero(positive)
    if kernels._paths_core is not None:
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="atlas-graph") as pool:
            _, betweenness = kernels.shortest_paths(
                n, sources, targets, edge_lengths(a[sources, targets]), pool
            )
        return betweenness
    lengths = np.full((n, n), np.inf)
    lengths[positive] = np.maximum(edge_lengths(a[positive]), kernels.LENGTH_FLOOR)
    distances = csgraph.floyd_warshall(lengths, directed=True)
    lengths = lengths[sources, targets]
    backbone = kernels.backbone_mask(sources, targets, lengths, distances)
    if not backbone.any():
        return np.zeros(n)
    raw = kernels.igraph_betweenness(n, sources[backbone], targets[backbone], lengths[backbone])
    return raw / ((n - 1) * (n - 2))
