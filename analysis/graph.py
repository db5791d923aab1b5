"""Attention as a graph: sparsification, centralities, communities, summary numbers.

Conventions (see README, "Conventions of meaning"):

- The input is a view matrix ``A`` ``[n, n]``: ``A[i, j]`` is how much query ``i`` attends
  to key ``j``; weights lie in ``[0, 1]`` and rows sum to about 1 (causal models: the upper
  triangle is exactly 0). Zero weights are never edges.
- Edge ``i -> j`` carries ``weight = A[i, j]`` ("i attends to j") and ``length = -ln(weight)``,
  so a shortest path is the most probable chain of attention.
- Communities: Louvain on the undirected graph whose edge ``{i, j}`` weighs
  ``W[i, j] + W[j, i]`` (``W`` = the kept edges; a kept self-loop weighs ``W[i, i]``, once),
  resolution adjustable, seeded.

Every metric is defined as networkx defines it on the same sparsified ``nx.DiGraph`` (the
reference the tests compare with). Shortest paths, betweenness and Louvain run in the C
kernels ``analysis/_paths.c`` and ``analysis/_louvain.c`` (built by ``pip install -e .``; they
release the GIL and run on two threads); without them, scipy and igraph compute the same
numbers more slowly. ``dense_betweenness`` is the exact betweenness of the complete graph of
all positive entries.
"""

from __future__ import annotations

import random
import time
import warnings
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import igraph
import numpy as np
import scipy.sparse as sps
from scipy.sparse import csgraph
from scipy.sparse.linalg import svds
from threadpoolctl import ThreadpoolController

try:  # C kernels, built by `pip install -e .` (see pyproject.toml); they release the GIL
    from analysis import _paths as _paths_core
except ImportError:  # installed without a C compiler: scipy + igraph below, slower
    _paths_core = None
try:
    from analysis import _louvain as _louvain_core
except ImportError:
    _louvain_core = None

SPARSIFY_MODES = ("coverage", "top_k", "threshold", "none")
METRIC_NAMES = (
    "in_strength",
    "out_strength",
    "betweenness",
    "closeness",
    "pagerank",
    "hub",
    "authority",
)
PAGERANK_ALPHA = 0.85
# Weights a little above 1 (float32 rounding of a one-hot row) are clipped to 1.
WEIGHT_SLACK = 1e-6
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


# --------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class SparsifyRule:
    """Which entries of a view matrix become graph edges.

    ``mode``:
      - ``"coverage"``: per query row, the strongest edges whose cumulative weight first
        reaches ``coverage`` of the row's total (the total over the row's candidate edges,
        i.e. without the diagonal when ``self_loops`` is False);
      - ``"top_k"``: the ``top_k`` strongest edges per row;
      - ``"threshold"``: every edge with weight >= ``min_weight``;
      - ``"none"``: every positive entry.
    Entries tied with the last kept one are all kept (the result never depends on column
    order), so a row may keep more than ``top_k`` edges when weights tie. ``min_weight`` is
    applied in every mode, after the per-row selection. Zero weights are never edges.
    """

    mode: str = "coverage"
    coverage: float = 0.9
    top_k: int = 5
    min_weight: float = 0.0
    self_loops: bool = False

    def __post_init__(self) -> None:
        if self.mode not in SPARSIFY_MODES:
            raise ValueError(f"unknown sparsify mode {self.mode!r}; use one of {SPARSIFY_MODES}")
        if not (isinstance(self.coverage, int | float) and 0.0 < self.coverage <= 1.0):
            raise ValueError(f"coverage must be in (0, 1], got {self.coverage!r}")
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int | np.integer):
            raise ValueError(f"top_k must be a whole number, got {self.top_k!r}")
        if self.top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {self.top_k}")
        if not (isinstance(self.min_weight, int | float) and 0.0 <= self.min_weight <= 1.0):
            raise ValueError(f"min_weight must be in [0, 1], got {self.min_weight!r}")
        if not isinstance(self.self_loops, bool | np.bool_):
            raise ValueError(f"self_loops must be True or False, got {self.self_loops!r}")

    def describe(self) -> str:
        """One human sentence, e.g. "per query, the strongest edges covering 90% of its attention; no self-loops"."""
        if self.mode == "coverage":
            text = f"per query, the strongest edges covering {self.coverage:.0%} of its attention"
        elif self.mode == "top_k":
            text = f"per query, its {self.top_k} strongest edge{'s' if self.top_k != 1 else ''}"
        elif self.mode == "threshold":
            text = f"every edge of weight at least {self.min_weight:g}"
        else:
            text = "every positive attention weight"
        if self.min_weight > 0 and self.mode != "threshold":
            text += f", only weights of at least {self.min_weight:g}"
        return text + ("; self-loops kept" if self.self_loops else "; no self-loops")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict of the fields."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SparsifyRule:
        """Inverse of :meth:`to_dict`; unknown keys are an error, missing keys take defaults."""
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown sparsify rule fields: {sorted(unknown)}")
        return cls(**dict(data))


# --------------------------------------------------------------------------- inputs


def checked_view_matrix(matrix: np.ndarray) -> np.ndarray:
    """The matrix as float64 ``[n, n]`` with weights in ``[0, 1]``; ValueError otherwise."""
    a = np.asarray(matrix, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"a view matrix must be square [n, n], got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError("the view matrix contains NaN or infinite values")
    if a.size and a.min() < 0:
        raise ValueError(f"attention weights must be >= 0, found {a.min():g}")
    if a.size and a.max() > 1.0 + WEIGHT_SLACK:
        raise ValueError(
            f"attention weights must be <= 1 (path lengths are -ln(weight)), found {a.max():g}"
        )
    return np.minimum(a, 1.0)


def edge_lengths(weights: np.ndarray) -> np.ndarray:
    """``-ln(weight)`` for weights in ``(0, 1]``: the length of an edge on a path."""
    return np.maximum(-np.log(np.asarray(weights, dtype=np.float64)), 0.0)


# --------------------------------------------------------------------------- sparsify


def _row_cut_values(candidates: np.ndarray, rule: SparsifyRule) -> np.ndarray:
    """Per row, the smallest weight still kept by the rule's per-row selection."""
    n = candidates.shape[1]
    if rule.mode == "top_k":
        if rule.top_k >= n:
            return np.zeros(candidates.shape[0])
        return -np.partition(-candidates, rule.top_k - 1, axis=1)[:, rule.top_k - 1]
    descending = -np.sort(-candidates, axis=1)
    cumulative = np.cumsum(descending, axis=1)
    needed = rule.coverage * cumulative[:, -1:] * (1.0 - 1e-12)
    reached_at = np.minimum((cumulative < needed).sum(axis=1), n - 1)
    return descending[np.arange(candidates.shape[0]), reached_at]


def sparsify(
    matrix: np.ndarray, rule: SparsifyRule = SparsifyRule()
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Kept edges of a view matrix: ``(sources, targets, weights)``, row-major order.

    ``sources``/``targets`` are int64 token indices (edge ``source -> target`` = "source
    attends to target"), ``weights`` float64 ``A[source, target]``. See :class:`SparsifyRule`.
    """
    return _sparsify_checked(checked_view_matrix(matrix), rule)


def _sparsify_checked(a: np.ndarray, rule: SparsifyRule) -> tuple[np.ndarray, ...]:
    """:func:`sparsify` on a matrix already through :func:`checked_view_matrix`."""
    n = a.shape[0]
    keep = a > 0
    if not rule.self_loops:
        keep[np.arange(n), np.arange(n)] = False
    if (
        rule.mode in ("coverage", "top_k")
        and n
        and not (rule.mode == "coverage" and rule.coverage >= 1.0)
    ):
        candidates = np.where(keep, a, 0.0)
        keep &= candidates >= _row_cut_values(candidates, rule)[:, None]
    if rule.min_weight > 0:
        keep &= a >= rule.min_weight
    sources, targets = np.nonzero(keep)
    return sources.astype(np.int64), targets.astype(np.int64), a[sources, targets]


# --------------------------------------------------------------------------- result


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
    kernels: str = ""  # which implementation computed it (kernels_in_use())

    @property
    def lengths(self) -> np.ndarray:
        """``-ln(weight)`` per edge."""
        return edge_lengths(self.weights)


# --------------------------------------------------------------------------- metrics


def _strengths(n: int, sources, targets, weights) -> tuple[np.ndarray, np.ndarray]:
    """Weighted in- and out-degree (a self-loop counts in both), as ``G.in_degree(weight=)``."""
    incoming = np.bincount(targets, weights=weights, minlength=n).astype(np.float64)
    outgoing = np.bincount(sources, weights=weights, minlength=n).astype(np.float64)
    return incoming, outgoing


def _paths_csr(n: int, sources, targets, lengths, *, by_length: bool):
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


def _start_shortest_paths(
    n: int, sources, targets, lengths, pool: ThreadPoolExecutor | None = None
) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
    """Starts :func:`_shortest_paths` on ``pool``'s threads (the C kernel; the fallback runs
    at once in this thread) and returns the function that waits for ``(D, betweenness)``."""
    scale = 1.0 / ((n - 1) * (n - 2)) if n > 2 else 0.0
    if _paths_core is None:
        distances, predecessors = _scipy_distances(n, sources, targets, lengths)
        betweenness = _fallback_betweenness(n, sources, targets, lengths, distances, predecessors)
        return lambda: (distances, betweenness)
    # Every length > 0: rows sorted by length, so the kernel can stop scanning a row early.
    prune = bool(len(lengths)) and bool((lengths[sources != targets] > 0).all())
    indptr, indices, ordered = _paths_csr(n, sources, targets, lengths, by_length=prune)
    reach = np.empty(n, dtype=np.int64)
    _paths_core.reach_counts(indptr, indices, reach)
    distances = np.empty((n, n))
    bounds = np.linspace(0, n, PATH_CHUNKS + 1).astype(int)
    blocks = [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]
    partial = np.zeros((max(len(blocks), 1), n))

    def run(k: int) -> None:
        start, stop = blocks[k]
        _paths_core.brandes(
            indptr, indices, ordered, reach, start, stop, prune, distances[start:stop], partial[k]
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


def _shortest_paths(
    n: int, sources, targets, lengths, pool: ThreadPoolExecutor | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(D, betweenness)``: all-pairs shortest path lengths ``D[s, t]`` (inf when t is
    unreachable from s) and normalised directed betweenness, equal to
    ``nx.betweenness_centrality(G, weight="length")`` on the same graph.

    The C kernel (analysis/_paths.c) runs one Dijkstra + Brandes pass per source with
    networkx's path counting and exact float tie test; with every length > 0 it scans each
    row by increasing length and stops once no edge can reach a node within the largest
    distance still possible (exact). Without the kernel: scipy's Dijkstra and igraph's
    Brandes (:func:`_fallback_betweenness`), same results, several times slower.
    """
    return _start_shortest_paths(n, sources, targets, lengths, pool)()


# ---- fallback without the C kernel (scipy + igraph); same results, several times slower


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


def _backbone(sources, targets, lengths, distances) -> np.ndarray:
    """Mask of the edges that are themselves a shortest path between their ends. Only these
    can lie on any shortest path; the slack keeps every edge a tie tolerance could admit."""
    return (sources != targets) & (lengths <= distances[sources, targets] * (1.0 + BACKBONE_SLACK))


def _igraph_betweenness(n: int, sources, targets, lengths, from_sources=None) -> np.ndarray:
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
    """Normalised directed betweenness with lengths, as ``nx.betweenness_centrality``.

    Sources whose shortest paths are all unique use the vectorised tree accumulation;
    sources with tied shortest paths (and graphs with weight-1, length-0 edges) go to
    igraph's Brandes on the backbone. Ties: counted within 1e-10..1e-9 relative; networkx
    compares floats exactly, so they agree whenever tied paths sum to equal floats.
    """
    backbone = _backbone(sources, targets, lengths, distances)
    if n < 3 or not backbone.any():
        return np.zeros(n)
    sources, targets, lengths = sources[backbone], targets[backbone], lengths[backbone]
    if not (lengths > 0).all():
        return _igraph_betweenness(n, sources, targets, lengths) / ((n - 1) * (n - 2))
    tied = _sources_with_ties(distances, sources, targets, lengths)
    raw = _tree_betweenness(distances, predecessors, skip=tied)
    if tied.any():
        raw += _igraph_betweenness(n, sources, targets, lengths, np.flatnonzero(tied))
    return raw / ((n - 1) * (n - 2))


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


def _hits(n: int, sources, targets, weights) -> tuple[np.ndarray, np.ndarray]:
    """Weighted HITS as ``nx.hits(G)`` computes it (it uses the "weight" attribute):
    authority = top right singular vector of the weighted adjacency ``W``, hub = ``W @ a``,
    both normalised to sum 1. All zeros when there are no edges."""
    if n == 0 or len(weights) == 0:
        return np.zeros(n), np.zeros(n)
    adjacency = _adjacency(n, sources, targets, weights)
    if n <= 64:
        dense = adjacency if isinstance(adjacency, np.ndarray) else adjacency.toarray()
        _, _, vt = np.linalg.svd(dense)
    else:
        _, _, vt = svds(adjacency, k=1, tol=1e-12, v0=np.full(n, 1.0 / np.sqrt(n)))
    authority = vt[0].real.copy()
    hub = adjacency @ authority
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


def _louvain(n: int, u, v, w, resolution: float, seed: int) -> np.ndarray:
    """Louvain communities of the undirected graph ``(u, v, w)``: the C kernel when built
    (analysis/_louvain.c, GIL released), else igraph's multilevel; both seeded."""
    if len(w) == 0:
        return np.arange(n, dtype=np.int64)
    if _louvain_core is None:
        return _igraph_louvain(n, u, v, w, resolution, seed)
    between = u != v
    rows = np.concatenate([u, v[between]])
    cols = np.concatenate([v, u[between]])
    data = np.concatenate([w, w[between]])
    order = np.lexsort((cols, rows))
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    membership = np.empty(n, dtype=np.int64)
    _louvain_core.louvain(
        indptr,
        np.ascontiguousarray(cols[order], dtype=np.int64),
        np.ascontiguousarray(data[order], dtype=np.float64),
        float(resolution),
        int(seed) & 0xFFFFFFFFFFFFFFFF,
        membership,
    )
    return membership


def _igraph_louvain(n: int, u, v, w, resolution: float, seed: int) -> np.ndarray:
    """igraph's multilevel (Louvain) with its random generator seeded, then restored."""
    graph = igraph.Graph(n=n, edges=list(zip(u.tolist(), v.tolist(), strict=True)))
    igraph.set_random_number_generator(random.Random(seed))
    try:
        clustering = graph.community_multilevel(weights=w.tolist(), resolution=resolution)
    finally:
        igraph.set_random_number_generator(random)
    return np.asarray(clustering.membership, dtype=np.int64)


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


# --------------------------------------------------------------------------- analysis

_blas: ThreadpoolController | None = None


def _one_blas_thread():
    """Context in which numpy/scipy's BLAS (OpenBLAS) runs on one thread. Its idle threads
    spin while waiting for work, and on a 2-core machine they took the cores the graph
    step's own threads need: with them the real-head step took 0.07-0.11 s, without them
    0.04-0.09 s (benchmarks/bench_graph_real.py). The products here are small anyway."""
    global _blas
    if _blas is None:
        _blas = ThreadpoolController()
    return _blas.limit(limits=1, user_api="blas")



def analyze_graph(
    matrix: np.ndarray,
    rule: SparsifyRule = SparsifyRule(),
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
    sources, targets, weights = _sparsify_checked(a, rule)
    lengths = edge_lengths(weights)
    u, v, w = undirected_edges(n, sources, targets, weights)
    lap("sparsify")

    def communities_timed() -> tuple[np.ndarray, float]:
        begun = time.perf_counter()
        labels = _louvain(n, u, v, w, resolution, int(seed))
        return labels, time.perf_counter() - begun

    # The C kernels release the GIL: Louvain and the shortest-path blocks run on two pool
    # threads while this thread computes the cheap centralities, so both cores stay busy
    # (and the window's thread is never held up by the kernels).
    with (
        _one_blas_thread(),
        ThreadPoolExecutor(max_workers=2, thread_name_prefix="atlas-graph") as pool,
    ):
        louvain_running = pool.submit(communities_timed)
        paths_running = _start_shortest_paths(n, sources, targets, lengths, pool)
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
        kernels=kernels_in_use(),
    )


def dense_betweenness(matrix: np.ndarray) -> np.ndarray:
    """Exact normalised betweenness on the complete graph of all positive entries.

    Equal to ``nx.betweenness_centrality(G, weight="length", normalized=True)`` where G has
    an edge i -> j of length ``-ln A[i, j]`` for every positive entry (self-loops never lie
    on a shortest path and are ignored). Uses the C kernel on two threads when built;
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
    if _paths_core is not None:
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="atlas-graph") as pool:
            _, betweenness = _shortest_paths(
                n, sources, targets, edge_lengths(a[sources, targets]), pool
            )
        return betweenness
    lengths = np.full((n, n), np.inf)
    lengths[positive] = np.maximum(edge_lengths(a[positive]), LENGTH_FLOOR)
    distances = csgraph.floyd_warshall(lengths, directed=True)
    lengths = lengths[sources, targets]
    backbone = _backbone(sources, targets, lengths, distances)
    if not backbone.any():
        return np.zeros(n)
    raw = _igraph_betweenness(n, sources[backbone], targets[backbone], lengths[backbone])
    return raw / ((n - 1) * (n - 2))
