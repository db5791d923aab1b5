"""Attention flow (Abnar & Zuidema 2020): maximum flow through the layered attention graph.

The layered graph has nodes ``(l, t)`` for ``l = 0..L`` (``l = 0``: the input tokens, ``l``:
the output of transformer layer ``l - 1``) and an edge ``(l + 1, i) -> (l, j)`` with
capacity ``R_l[i, j]``, ``R = residual_augmented_layers(attentions)`` (``0.5 * mean_h A +
0.5 * I``, rows renormalised). The flow of query ``q`` at transformer layer ``layer``
(0-based, default the last) into input token ``j`` is the maximum-flow value from
``(layer + 1, q)`` to ``(0, j)``.

Implementation: one igraph network per query, built once; the input layer is replaced by a
single sink node whose incoming capacities are set to column ``j`` of ``R_0`` for sink
``j`` (the other input tokens are dead ends that cannot carry flow to ``j``), and only
nodes the query can reach are kept. igraph's push-relabel (C, float capacities) then runs
once per input token. The result equals ``nx.maximum_flow_value`` on the full layered
graph to float round-off.
"""

from __future__ import annotations

from collections.abc import Sequence

import igraph
import numpy as np

from analysis.attention.rollout import residual_augmented_layers
from analysis.progress import (
    CancelCheck,
    ProgressCallback,
    raise_if_cancelled,
    report_progress,
)


def _checked_layer(layer: int | None, count: int) -> int:
    layer = count - 1 if layer is None else layer
    if not (isinstance(layer, int | np.integer) and 0 <= layer < count):
        raise ValueError(f"layer must be in 0..{count - 1}, got {layer!r}")
    return int(layer)


def _checked_attentions(attentions: np.ndarray) -> np.ndarray:
    a = np.asarray(attentions)
    if a.ndim != 4 or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"attentions must be [layers, heads, T, T], got shape {a.shape}")
    return a


class _FlowNetwork:
    """The layered graph of one query, with one sink standing for "input token j"."""

    def __init__(self, layers: np.ndarray, query: int, layer: int) -> None:
        t = layers.shape[-1]
        self.last_layer = layers[0]
        # Node (l, i) for l = 1..layer is index (l - 1) * t + i; then source, then sink.
        self.source, self.sink = layer * t, layer * t + 1
        reachable = layers[layer][query] > 0
        edges = [
            np.column_stack(
                [np.full(reachable.sum(), self.source), (layer - 1) * t + np.flatnonzero(reachable)]
            )
        ]
        capacities = [layers[layer][query][reachable]]
        for level in range(layer - 1, 0, -1):  # edges (level + 1, i) -> (level, j)
            tails, heads = np.nonzero(reachable[:, None] & (layers[level] > 0))
            edges.append(np.column_stack([level * t + tails, (level - 1) * t + heads]))
            capacities.append(layers[level][tails, heads])
            reachable = np.zeros(t, dtype=bool)
            reachable[heads] = True
        self.feeders = np.flatnonzero(reachable)  # layer-1 nodes the query reaches
        edges.append(np.column_stack([self.feeders, np.full(len(self.feeders), self.sink)]))
        self.graph = igraph.Graph(
            n=layer * t + 2, edges=np.concatenate(edges).tolist(), directed=True
        )
        self.upper_capacities = np.concatenate(capacities).tolist()

    def flow_into(self, token: int) -> float:
        """Maximum flow from the query node to input token ``token``."""
        capacities = self.last_layer[self.feeders, token]
        if not capacities.any():
            return 0.0
        return float(
            self.graph.maxflow_value(
                self.source, self.sink, capacity=self.upper_capacities + capacities.tolist()
            )
        )


def attention_flow(
    attentions: np.ndarray,
    query: int,
    layer: int | None = None,
    *,
    progress: ProgressCallback | None = None,
    cancelled: CancelCheck | None = None,
) -> np.ndarray:
    """Flow ``[T]`` from query token ``query`` at ``layer`` into every input token.

    ``progress(fraction)`` is called after each input token and ``cancelled()`` checked
    before each; when it returns True, :class:`analysis.progress.Cancelled` is raised.
    """
    layers = residual_augmented_layers(_checked_attentions(attentions))
    layer = _checked_layer(layer, layers.shape[0])
    t = layers.shape[-1]
    if not (isinstance(query, int | np.integer) and 0 <= query < t):
        raise ValueError(f"query must be a token index in 0..{t - 1}, got {query!r}")
    raise_if_cancelled(cancelled, "attention flow")
    if layer == 0:  # a single edge from the query to each input token
        report_progress(progress, 1.0)
        return layers[0][query].copy()
    network = _FlowNetwork(layers, int(query), layer)
    flows = np.zeros(t)
    for token in range(t):
        raise_if_cancelled(cancelled, "attention flow")
        flows[token] = network.flow_into(token)
        report_progress(progress, (token + 1) / t)
    return flows


def attention_flow_matrix(
    attentions: np.ndarray,
    layer: int | None = None,
    queries: Sequence[int] | None = None,
    *,
    progress: ProgressCallback | None = None,
    cancelled: CancelCheck | None = None,
) -> np.ndarray:
    """Flow rows ``[len(queries), T]`` (default: every query token), for small ``T``."""
    a = _checked_attentions(attentions)
    t = a.shape[-1]
    queries = list(range(t)) if queries is None else [int(q) for q in queries]
    rows = np.zeros((len(queries), t))
    for row, query in enumerate(queries):

        def row_progress(fraction: float, row: int = row) -> None:
            report_progress(progress, (row + fraction) / max(len(queries), 1))

        rows[row] = attention_flow(
            a, query, layer, progress=row_progress if progress else None, cancelled=cancelled
        )
    return rows
