"""The layered graph of attention across layers: the graph rollout and attention flow live in.

Node ``(l, t)`` is token ``t`` after ``l`` transformer layers: ``l = 0`` is the input
embeddings, ``l`` the output of transformer layer ``l - 1`` (0-based, as the layer box
counts), up to ``l = layer + 1`` for a view at ``layer``. Edge ``(l + 1, i) -> (l, j)``
carries ``R_l[i, j]`` with ``R = residual_augmented_layers(attentions)`` (``0.5 * mean_h A +
0.5 * I``, rows renormalised): "token i at level l + 1 draws on token j at level l". These
are the capacities of attention flow (``analysis.attention.flow``) and the probabilities of
``analysis.graph.paths.layered_route``; rollout is the sum over all routes of their products.
The graph *through* contributions takes ``layers=``, the capacities ``R`` themselves
(:func:`analysis.attention.capacities.layer_capacities`: value norms with the residual half
added, ALTI and value zeroing as they are), and is built by the same code.

Node ids are ``l * T + k`` where ``k`` is the token's position among the tokens shown (all
tokens by default, so ``k = t``): a graph is laid out level by level, token by token.

Each row ``R_l[i, :]`` is sparsified with the view graph's :class:`SparsifyRule`, except
that the diagonal is always a candidate: ``(l + 1, i) -> (l, i)`` is the residual route
between two different nodes, not a self-loop, and usually the strongest edge of its row.

Size: the graph has ``(layer + 2) * T`` nodes and up to ``(layer + 1) * T**2`` edges (1.5
million at 512 tokens and 6 layers with no sparsification). The graph canvas draws about
20,000 edges smoothly and gets slow beyond that, so :func:`layered_graph` takes
``max_edges``: when the rule keeps more, each node keeps only the rule's ``k = max_edges //
((layer + 1) * T)`` strongest outgoing edges (ties kept; ``capped_per_node`` is that k).
Building is vectorised per level: about 5 ms at 128 tokens and under 0.1 s at 512 tokens
with 6 layers (``benchmarks``-style numbers measured on the 2-core machine).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from analysis.attention.rollout import capacities_upto, source_size
from analysis.graph.rules import SparsifyRule, sparsify

CANVAS_EDGE_LIMIT = 20_000  # the graph canvas is slow beyond about this many edges


@dataclass(frozen=True)
class LayeredGraph:
    """Nodes ``(level, token)`` and the kept edges between consecutive levels."""

    num_layers_shown: int  # levels 0..num_layers_shown - 1 (= layer + 2)
    num_tokens: int  # tokens per level (T shown)
    node_layer: np.ndarray  # int64 [N]: level of each node (0 = input embeddings)
    node_token: np.ndarray  # int64 [N]: token index (in the attentions' T) of each node
    sources: np.ndarray  # int64 [m]: node at level l + 1
    targets: np.ndarray  # int64 [m]: node at level l
    weights: np.ndarray  # float64 [m]: R_l[source token, target token]
    rule: SparsifyRule = SparsifyRule()  # as applied (self_loops forced on)
    capped_per_node: int | None = None  # edges kept per node when max_edges capped the rule

    @property
    def layer(self) -> int:
        """The transformer layer (0-based) whose output is the top level."""
        return self.num_layers_shown - 2

    @property
    def num_nodes(self) -> int:
        return int(self.node_layer.shape[0])

    @property
    def tokens(self) -> np.ndarray:
        """The token indices shown on every level, in order."""
        return self.node_token[: self.num_tokens]


def layered_graph(
    attentions: np.ndarray | None = None,
    layer: int | None = None,
    rule: SparsifyRule | None = None,
    tokens: Sequence[int] | None = None,
    *,
    max_edges: int | None = None,
    layers: np.ndarray | None = None,
) -> LayeredGraph:
    """The layered graph of ``attentions`` ``[L, H, T, T]`` from the input up to ``layer``.

    Parameters
    ----------
    attentions : array ``[L, H, T, T]``, optional
        Raw attentions; the edge weights are ``R_l = 0.5 * mean_h A_l + 0.5 * I``, rows
        renormalised.
    layer : int, optional
        The transformer layer (0-based) whose output is the top level; default the last.
    rule : SparsifyRule, optional
        Which edges of each row to keep (the diagonal is always a candidate); default
        ``SparsifyRule()``.
    tokens : sequence of int, optional
        Restricts every level to those token positions (ascending, unique). The weights are
        *not* renormalised over the subset: an edge keeps the probability it has in the
        whole model, so a route's product of weights is the same as in
        :func:`analysis.graph.paths.layered_route`; the rule's coverage is taken of the
        subset's share of each row.
    max_edges : int, optional
        Cap on the edges kept (module docstring).
    layers : array ``[L, T, T]``, optional
        Instead of ``attentions``: the per-layer capacities as they are (rows distributions
        or all zero), e.g. :func:`analysis.attention.capacities.layer_capacities` through
        ALTI; only layers ``0..layer`` are read.

    Returns
    -------
    LayeredGraph

    Raises
    ------
    ValueError
        Both or neither of ``attentions`` and ``layers``; bad shapes or values; ``layer``,
        ``tokens`` or ``max_edges`` out of range.

    Examples
    --------
    >>> from analysis.graph.rules import SparsifyRule
    >>> g = layered_graph(layers=np.array([[[1.0, 0.0], [0.5, 0.5]]]), rule=SparsifyRule(mode="none"))
    >>> g.num_nodes, g.weights.tolist()
    (4, [1.0, 0.5, 0.5])
    """
    count, t = source_size(attentions, layers)
    layer = count - 1 if layer is None else layer
    if not (
        isinstance(layer, int | np.integer) and not isinstance(layer, bool) and 0 <= layer < count
    ):
        raise ValueError(f"layer must be in 0..{count - 1}, got {layer!r}")
    rule = SparsifyRule() if rule is None else rule
    if max_edges is not None and max_edges < 1:
        raise ValueError(f"max_edges must be at least 1, got {max_edges!r}")
    if tokens is None:
        shown = np.arange(t, dtype=np.int64)
    else:
        shown = np.asarray(tokens, dtype=np.int64).ravel()
        if shown.size and (shown.min() < 0 or shown.max() >= t):
            raise ValueError(f"tokens must be indices in 0..{t - 1}")
        if np.any(np.diff(shown) <= 0):
            raise ValueError("tokens must be ascending and unique")
    layer = int(layer)
    n = shown.shape[0]
    # Only the layers used (for attentions: head mean in float64 without a float64 copy of
    # every head).
    levels = capacities_upto(attentions, layers, layer)
    if tokens is not None:
        levels = levels[:, shown[:, None], shown[None, :]]
    applied = replace(rule, self_loops=True)
    kept = [sparsify(levels[level], applied) for level in range(layer + 1)]
    capped = None
    if max_edges is not None and sum(len(w) for _, _, w in kept) > max_edges:
        # Every rule keeps a strongest-first prefix of each row, so its intersection with
        # the row's top k is the rule's own k strongest edges (ties kept, as in top_k).
        capped = max(1, int(max_edges) // max((layer + 1) * n, 1))
        top = replace(applied, mode="top_k", top_k=capped)
        kept = [
            _intersection(edges, sparsify(levels[level], top), n)
            for level, edges in enumerate(kept)
        ]
    sources = np.concatenate([s + (level + 1) * n for level, (s, _, _) in enumerate(kept)])
    targets = np.concatenate([d + level * n for level, (_, d, _) in enumerate(kept)])
    weights = np.concatenate([w for _, _, w in kept])
    node_layer = np.repeat(np.arange(layer + 2, dtype=np.int64), n)
    node_token = np.tile(shown, layer + 2)
    return LayeredGraph(
        num_layers_shown=layer + 2,
        num_tokens=n,
        node_layer=node_layer,
        node_token=node_token,
        sources=sources.astype(np.int64),
        targets=targets.astype(np.int64),
        weights=weights.astype(np.float64),
        rule=applied,
        capped_per_node=capped,
    )


def _intersection(first, second, n: int):
    """The edges of ``first`` that ``second`` also keeps (both from :func:`sparsify`)."""
    mask = np.zeros((n, n), dtype=bool)
    mask[second[0], second[1]] = True
    keep = mask[first[0], first[1]]
    return first[0][keep], first[1][keep], first[2][keep]


def node_id(graph: LayeredGraph, level: int, token: int) -> int:
    """The node of ``token`` (an index in the attentions' T) at ``level``."""
    if not 0 <= level < graph.num_layers_shown:
        raise ValueError(f"level must be in 0..{graph.num_layers_shown - 1}, got {level}")
    position = np.searchsorted(graph.tokens, token)
    if position >= graph.num_tokens or graph.tokens[position] != token:
        raise ValueError(f"token {token} is not shown in this layered graph")
    return int(level) * graph.num_tokens + int(position)


def node_labels(graph: LayeredGraph, token_labels: Sequence[str]) -> list[str]:
    """``"L2 · cat"`` per node: the level, then the token's label."""
    return [
        f"L{level} · {token_labels[token]}"
        for level, token in zip(graph.node_layer.tolist(), graph.node_token.tolist(), strict=True)
    ]


def route_nodes(graph: LayeredGraph, steps: Sequence[tuple[int, int]]) -> list[int]:
    """Node ids of a route's ``(level, token)`` steps (``LayeredPathResult.steps``: the
    same levels, top first)."""
    return [node_id(graph, int(level), int(token)) for level, token in steps]
