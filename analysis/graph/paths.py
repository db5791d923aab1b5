"""Routes of attention through one view's graph and through the layers.

Conventions (README, "Conventions of meaning"): edge ``i -> j`` carries ``A[i, j]`` ("i
attends to j") and has length ``-ln A[i, j]``. The most probable path minimises the total
length (maximises the product of weights); the widest path maximises its weakest weight
(the bottleneck), and among equally wide paths the most probable one is returned. Paths run
on the kept edges of ``rule`` (:func:`analysis.graph.sparsify`), or on every positive
off-diagonal entry when ``rule`` is None; self-loops never help a path.

``layered_route`` works on the layered graph of attention flow: node ``(l, t)`` is token
``t`` after ``l`` transformer layers (``l = 0``: the input tokens), edge ``(l + 1, i) ->
(l, j)`` has probability ``R_l[i, j]`` with ``R = residual_augmented_layers(attentions)``,
or, through contributions, the capacities given as ``layers=``
(:func:`analysis.attention.capacities.layer_capacities`).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import islice

import networkx as nx
import numpy as np
import scipy.sparse as sps
from scipy.sparse import csgraph

from analysis.attention.rollout import capacities_upto, source_size
from analysis.graph.rules import SparsifyRule, checked_view_matrix, edge_lengths, sparsify


@dataclass(frozen=True)
class PathResult:
    """A path ``source -> ... -> target`` in a view's graph (empty when there is none)."""

    source: int
    target: int
    nodes: tuple[int, ...]  # source first, target last; () when unreachable
    probability: float  # product of the edge weights (1.0 for source == target; 0.0: none)
    bottleneck: float  # the weakest edge weight (1.0 for source == target; 0.0: none)
    reason: str = ""  # why there is no path; "" when found

    @property
    def found(self) -> bool:
        return bool(self.nodes)

    @property
    def hops(self) -> int:
        return max(len(self.nodes) - 1, 0)

    @property
    def length(self) -> float:
        """``-ln(probability)`` (inf when there is no path)."""
        return float(-np.log(self.probability)) if self.probability > 0 else float("inf")


@dataclass(frozen=True)
class LayeredPathResult:
    """The most probable route from ``(layer + 1, query)`` down to ``(0, target)``."""

    query: int
    target: int
    layer: int  # 0-based transformer layer whose output the route starts from
    steps: tuple[tuple[int, int], ...]  # (layer index, token), top first; () when none
    probability: float  # product of the residual-augmented weights along the route
    reason: str = ""

    @property
    def found(self) -> bool:
        return bool(self.steps)

    @property
    def tokens(self) -> tuple[int, ...]:
        """The token visited at each level, top first."""
        return tuple(token for _, token in self.steps)


# --------------------------------------------------------------------------- helpers


def _path_edges(matrix: np.ndarray, rule: SparsifyRule | None):
    """``(a, sources, targets, weights)``: the checked matrix and the edges paths may use."""
    a = checked_view_matrix(matrix)
    if rule is None:
        sources, targets, weights = sparsify(a, SparsifyRule(mode="none"))
    else:
        sources, targets, weights = sparsify(a, rule)
    loops = sources == targets
    return a, sources[~loops], targets[~loops], weights[~loops]


def _check_token(token: int, n: int, what: str) -> int:
    if not (isinstance(token, int | np.integer) and 0 <= token < n):
        raise ValueError(f"{what} must be a token index in 0..{n - 1}, got {token!r}")
    return int(token)


def _path_from(a: np.ndarray, source: int, target: int, nodes) -> PathResult:
    nodes = tuple(int(node) for node in nodes)
    weights = a[list(nodes[:-1]), list(nodes[1:])]
    return PathResult(
        source=source,
        target=target,
        nodes=nodes,
        probability=float(np.prod(weights)) if len(weights) else 1.0,
        bottleneck=float(np.min(weights)) if len(weights) else 1.0,
    )


def _no_path(source: int, target: int, why: str) -> PathResult:
    return PathResult(source, target, (), 0.0, 0.0, reason=why)


def _shortest_nodes(n: int, sources, targets, lengths, source: int, target: int):
    """Nodes of one shortest path (lengths, scipy Dijkstra) or None when unreachable."""
    graph = sps.csr_matrix((lengths, (sources, targets)), shape=(n, n))
    distances, predecessors = csgraph.dijkstra(
        graph, directed=True, indices=source, return_predecessors=True
    )
    if not np.isfinite(distances[target]):
        return None
    nodes = [target]
    while nodes[-1] != source:
        nodes.append(int(predecessors[nodes[-1]]))
    return nodes[::-1]


def _reaches(n: int, sources, targets, source: int, target: int) -> bool:
    graph = sps.csr_matrix((np.ones(len(sources)), (sources, targets)), shape=(n, n))
    order = csgraph.breadth_first_order(graph, source, directed=True, return_predecessors=False)
    return bool(np.isin(target, order))


# --------------------------------------------------------------------------- paths


def most_probable_path(
    matrix: np.ndarray, source: int, target: int, rule: SparsifyRule | None = None
) -> PathResult:
    """The path maximising the product of attention weights (shortest in ``-ln w``)."""
    a, sources, targets, weights = _path_edges(matrix, rule)
    n = a.shape[0]
    source, target = _check_token(source, n, "source"), _check_token(target, n, "target")
    if source == target:
        return _path_from(a, source, target, [source])
    nodes = _shortest_nodes(n, sources, targets, edge_lengths(weights), source, target)
    if nodes is None:
        return _no_path(source, target, f"token {target} cannot be reached from token {source}")
    return _path_from(a, source, target, nodes)


def widest_path(
    matrix: np.ndarray, source: int, target: int, rule: SparsifyRule | None = None
) -> PathResult:
    """The path whose weakest weight is largest; among those, the most probable.

    The best bottleneck is found by bisection over the distinct edge weights (is the target
    still reachable on edges at least that strong?), then the most probable path is taken on
    the edges of at least that weight.
    """
    a, sources, targets, weights = _path_edges(matrix, rule)
    n = a.shape[0]
    source, target = _check_token(source, n, "source"), _check_token(target, n, "target")
    if source == target:
        return _path_from(a, source, target, [source])
    levels = np.unique(weights)  # ascending
    if not levels.size or not _reaches(n, sources, targets, source, target):
        return _no_path(source, target, f"token {target} cannot be reached from token {source}")
    low, high = 0, len(levels) - 1  # levels[low] is always wide enough
    while low < high:
        middle = (low + high + 1) // 2
        strong = weights >= levels[middle]
        if _reaches(n, sources[strong], targets[strong], source, target):
            low = middle
        else:
            high = middle - 1
    strong = weights >= levels[low]
    nodes = _shortest_nodes(
        n, sources[strong], targets[strong], edge_lengths(weights[strong]), source, target
    )
    return _path_from(a, source, target, nodes)


def k_most_probable_paths(
    matrix: np.ndarray, source: int, target: int, k: int = 3, rule: SparsifyRule | None = None
) -> list[PathResult]:
    """Up to ``k`` loop-free paths, most probable first (Yen's algorithm, networkx)."""
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k must be a whole number >= 1, got {k!r}")
    a, sources, targets, weights = _path_edges(matrix, rule)
    n = a.shape[0]
    source, target = _check_token(source, n, "source"), _check_token(target, n, "target")
    if source == target:
        return [_path_from(a, source, target, [source])]
    graph = nx.DiGraph()
    graph.add_nodes_from(range(n))
    graph.add_weighted_edges_from(
        zip(sources.tolist(), targets.tolist(), edge_lengths(weights).tolist(), strict=True),
        weight="length",
    )
    try:
        paths = list(islice(nx.shortest_simple_paths(graph, source, target, "length"), int(k)))
    except nx.NetworkXNoPath:
        return []
    return [_path_from(a, source, target, nodes) for nodes in paths]


# --------------------------------------------------------------------------- layers


def layered_route(
    attentions: np.ndarray | None = None,
    query: int | None = None,
    target: int | None = None,
    layer: int | None = None,
    *,
    layers: np.ndarray | None = None,
) -> LayeredPathResult:
    """Most probable route from ``(layer + 1, query)`` to input token ``(0, target)``.

    Dynamic programming from the bottom up: ``best_l[i]`` = log-probability of the best
    route from ``(l, i)`` to ``(0, target)``; ``best_{l+1} = max_j (log R_l[i, j] + best_l[j])``.

    Parameters
    ----------
    attentions : array ``[L, H, T, T]``, optional
        Raw attentions: ``R_l = 0.5 * mean_h A_l + 0.5 * I``, rows renormalised.
    query, target : int
        The token at the top (after ``layer``) and the input token (both required).
    layer : int, optional
        The transformer layer (0-based) the route starts from; default the last.
    layers : array ``[L, T, T]``, optional
        Instead of ``attentions``: the per-layer capacities as they are (rows distributions
        or all zero), e.g. :func:`analysis.attention.capacities.layer_capacities` through
        value zeroing; only layers ``0..layer`` are read.

    Returns
    -------
    LayeredPathResult
        ``steps`` top first; ``probability`` the product of the ``R_l`` along the route;
        no steps (and a ``reason``) when every route has a zero weight.

    Examples
    --------
    >>> r = layered_route(layers=np.array([[[1.0, 0.0], [0.5, 0.5]]] * 2), query=1, target=0)
    >>> r.steps, r.probability
    (((2, 1), (1, 0), (0, 0)), 0.5)
    """
    count, t = source_size(attentions, layers)
    layer = count - 1 if layer is None else layer
    if isinstance(layer, bool) or not (isinstance(layer, int | np.integer) and 0 <= layer < count):
        raise ValueError(f"layer must be in 0..{count - 1}, got {layer!r}")
    query, target = _check_token(query, t, "query"), _check_token(target, t, "target")
    layer = int(layer)
    layers = capacities_upto(attentions, layers, layer)
    best = np.full(t, -np.inf)
    best[target] = 0.0
    choices = []
    with np.errstate(divide="ignore"):
        for level in range(layer + 1):
            scores = np.log(layers[level]) + best[None, :]
            choices.append(np.argmax(scores, axis=1))
            best = scores.max(axis=1)
    if not np.isfinite(best[query]):
        return LayeredPathResult(
            query,
            target,
            int(layer),
            (),
            0.0,
            reason=f"token {target} does not reach token {query} through the layers",
        )
    steps = [(layer + 1, query)]
    for level in range(layer, -1, -1):
        steps.append((level, int(choices[level][steps[-1][1]])))
    probability = float(
        np.prod(
            [
                layers[level][steps[layer - level][1], steps[layer - level + 1][1]]
                for level in range(layer, -1, -1)
            ]
        )
    )
    return LayeredPathResult(query, target, int(layer), tuple(steps), probability)
