"""Attention flow (Abnar & Zuidema 2020): maximum flow through the layered attention graph.

The layered graph has nodes ``(l, t)`` for ``l = 0..L`` (``l = 0``: the input tokens, ``l``:
the output of transformer layer ``l - 1``) and an edge ``(l + 1, i) -> (l, j)`` with
capacity ``R_l[i, j]``, ``R = residual_augmented_layers(attentions)`` (``0.5 * mean_h A +
0.5 * I``, rows renormalised). The flow of query ``q`` at transformer layer ``layer``
(0-based, default the last) into input token ``j`` is the maximum-flow value from
``(layer + 1, q)`` to ``(0, j)``.

Flow *through* contributions: ``layers=`` gives the capacities ``R`` ``[L, T, T]`` directly
(:func:`analysis.attention.capacities.layer_capacities`: value norms with the residual
half added, ALTI and value zeroing as they are); they must be finite and non-negative with
rows that are distributions or all zero (``ValueError`` otherwise), as the residual-augmented
layers always are, and then everything below runs unchanged.

What is true of every result (and tested): ``0 <= flow[j] <= 1`` (the query's own edges
carry at most its row, which sums to 1), ``flow[j] <= sum_i R_0[i, j]`` over the layer-1
nodes the query reaches (the edges into ``(0, j)``), and ``flow[j] >= rollout[q, j]``
(rollout's proportional routing is one feasible flow). The flows of different tokens share
edges, so their sum is not bounded by 1.

Implementation: the C kernel ``analysis/attention/_flow.c`` (built by ``pip install -e .``)
builds the network of one query once and runs an exact Dinic max-flow per input token with
the GIL released, on two threads, in blocks of tokens between which ``progress`` is
reported and ``cancelled`` checked (a block takes about 20 ms). The result equals
``nx.maximum_flow_value`` on the full layered graph to float round-off. Without the kernel
the same network runs through igraph's push-relabel, once per input token (slower, and it
holds the GIL).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

import numpy as np

from analysis.attention.rollout import capacities_upto, source_size
from analysis.progress import (
    CancelCheck,
    ProgressCallback,
    raise_if_cancelled,
    report_progress,
)

try:  # C kernel, built by `pip install -e .` (see pyproject.toml); it releases the GIL
    from analysis.attention import _flow as _flow_core
except ImportError:  # installed without a C compiler: igraph below, slower
    _flow_core = None

FLOW_THREADS = 2  # threads computing blocks of input tokens at once
WORK_BYTES = 256 * 2**20  # flow matrices of all threads together at most (else fewer threads)
BLOCK_SECONDS = 0.02  # aimed-for duration of one block: progress and cancellation between blocks
MAX_BLOCK = 64  # input tokens per block at most


def flow_kernel_in_use() -> str:
    """Which implementation computes attention flow: "C" or "igraph fallback"."""
    return "C" if _flow_core is not None else "igraph fallback (C extension not built)"


def _checked_layer(layer: int | None, count: int) -> int:
    layer = count - 1 if layer is None else layer
    if isinstance(layer, bool) or not (isinstance(layer, int | np.integer) and 0 <= layer < count):
        raise ValueError(f"layer must be a layer index in 0..{count - 1}, got {layer!r}.")
    return int(layer)


def _checked_query(query: int, tokens: int) -> int:
    if isinstance(query, bool) or not (isinstance(query, int | np.integer) and 0 <= query < tokens):
        raise ValueError(f"query must be a token index in 0..{tokens - 1}, got {query!r}.")
    return int(query)


class _FlowNetwork:
    """igraph fallback: the layered graph of one query, one sink standing for "input token j".

    Node (l, i) for l = 1..layer is index (l - 1) * t + i; then the source and the sink. The
    input layer is replaced by the single sink, whose incoming capacities are column ``j`` of
    ``R_0`` for sink ``j`` (the other input tokens are dead ends that cannot carry flow to
    ``j``), and only nodes the query can reach are kept.
    """

    def __init__(self, layers: np.ndarray, query: int, layer: int) -> None:
        import igraph

        t = layers.shape[-1]
        self.last_layer = layers[0]
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


def _fallback_flows(layers, query, layer, progress, cancelled) -> np.ndarray:
    t = layers.shape[-1]
    network = _FlowNetwork(layers, query, layer)
    flows = np.zeros(t)
    for token in range(t):
        raise_if_cancelled(cancelled, "attention flow")
        flows[token] = network.flow_into(token)
        report_progress(progress, (token + 1) / t)
    return flows


def _kernel_flows(layers, query, layer, progress, cancelled) -> np.ndarray:
    """All input tokens through the C kernel: blocks of sinks on FLOW_THREADS threads.

    The calling thread hands out blocks (sized so one takes about BLOCK_SECONDS, from the
    time per token measured so far), reports progress when one finishes and checks
    ``cancelled`` before handing out the next; on cancellation it waits only for the blocks
    already running.
    """
    t = layers.shape[-1]
    network = _flow_core.Network(np.ascontiguousarray(layers[: layer + 1]), layer, query)
    flows = np.zeros(t)
    # each thread's flow matrices: (layer - 1) T^2 doubles, 8 MiB for MiniLM at 512 tokens,
    # 232 MiB for a 30-layer model at 1,024 (then one thread)
    lanes = max(1, min(FLOW_THREADS, t, WORK_BYTES // max(8 * network.work_size, 1)))
    works = [np.zeros(network.work_size) for _ in range(lanes)]
    seconds_per_token: list[float] = []

    def run(start: int, stop: int, work: np.ndarray) -> np.ndarray:
        began = time.perf_counter()
        out = np.empty(stop - start)
        network.max_flows(np.arange(start, stop, dtype=np.int64), out, work)
        flows[start:stop] = out
        seconds_per_token.append((time.perf_counter() - began) / (stop - start))
        return work

    def block_size() -> int:
        if not seconds_per_token:
            return 1
        per_token = max(float(np.median(seconds_per_token[-8:])), 1e-7)
        return int(min(MAX_BLOCK, max(1, math.floor(BLOCK_SECONDS / per_token))))

    done = 0
    start = 0
    with ThreadPoolExecutor(max_workers=lanes, thread_name_prefix="atlas-flow") as pool:
        running = {}
        while start < t or running:
            if start < t and works:
                raise_if_cancelled(cancelled, "attention flow")
            while start < t and works:
                stop = min(t, start + block_size())
                running[pool.submit(run, start, stop, works.pop())] = stop - start
                start = stop
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                done += running.pop(future)
                works.append(future.result())
                report_progress(progress, done / t)
    return flows


def _flows(layers: np.ndarray, query: int, layer: int, progress, cancelled) -> np.ndarray:
    raise_if_cancelled(cancelled, "attention flow")
    if layer == 0:  # a single edge from the query to each input token
        report_progress(progress, 1.0)
        return layers[0][query].copy()
    if _flow_core is None:
        return _fallback_flows(layers, query, layer, progress, cancelled)
    return _kernel_flows(layers, query, layer, progress, cancelled)


def attention_flow(
    attentions: np.ndarray | None = None,
    query: int | None = None,
    layer: int | None = None,
    *,
    layers: np.ndarray | None = None,
    progress: ProgressCallback | None = None,
    cancelled: CancelCheck | None = None,
) -> np.ndarray:
    """Attention flow from query token ``query`` at ``layer`` into every input token.

    Parameters
    ----------
    attentions : array ``[layers, heads, T, T]``, optional
        Self-attention weights, ``attentions[l, h, i, j]`` = how much query ``i`` attends to
        key ``j``; finite and non-negative (``ValueError`` otherwise). The capacities are
        the residual-augmented layers ``0.5 * mean_h A_l + 0.5 * I``.
    query : int
        The query token, ``0..T-1`` (required).
    layer : int, optional
        The transformer layer (0-based) whose output the query token is; default the last.
    layers : array ``[layers, T, T]``, optional
        Instead of ``attentions``: the capacities themselves, rows distributions (or all
        zero), e.g. :func:`analysis.attention.capacities.layer_capacities` through ALTI.
        Only layers ``0..layer`` are read.
    progress : callable, optional
        ``progress(fraction)``, called from this thread as blocks of input tokens finish.
    cancelled : callable, optional
        ``cancelled() -> bool``, checked before each block; when it returns True,
        :class:`analysis.progress.Cancelled` is raised (after the blocks already running,
        about 20 ms).

    Returns
    -------
    float64 array ``[T]``: the maximum flow from node ``(layer + 1, query)`` into each input
    token ``(0, j)`` of the layered graph whose capacities are the residual-augmented layers
    (or ``layers``; see the module docstring); each value lies in ``[0, 1]``.

    Raises
    ------
    ValueError
        Both or neither of ``attentions`` and ``layers``; bad shapes or values; ``layer``
        or ``query`` out of range.

    Examples
    --------
    >>> a = np.zeros((2, 1, 2, 2))
    >>> a[:, 0, :, 0] = 1.0  # every token attends to token 0
    >>> attention_flow(a, 1)  # R_1[1] = [0.5, 0.5]; R_0 = [[1, 0], [0.5, 0.5]]
    array([1. , 0.5])
    >>> attention_flow(layers=np.array([[[1.0, 0.0], [0.5, 0.5]]] * 2), query=1)
    array([1. , 0.5])

    References
    ----------
    Abnar & Zuidema, "Quantifying Attention Flow in Transformers", ACL 2020.
    """
    count, t = source_size(attentions, layers)
    layer = _checked_layer(layer, count)
    query = _checked_query(query, t)
    capacities = capacities_upto(attentions, layers, layer)  # checks the values it uses
    return _flows(capacities, query, layer, progress, cancelled)


def attention_flow_matrix(
    attentions: np.ndarray | None = None,
    layer: int | None = None,
    queries: Sequence[int] | None = None,
    *,
    layers: np.ndarray | None = None,
    progress: ProgressCallback | None = None,
    cancelled: CancelCheck | None = None,
) -> np.ndarray:
    """Flow rows for several query tokens: row ``r`` is ``attention_flow(attentions,
    queries[r], layer)`` (or of ``layers=``).

    Parameters
    ----------
    attentions : array ``[layers, heads, T, T]``, optional
        As for :func:`attention_flow`.
    layer : int, optional
        The transformer layer of the queries; default the last.
    queries : sequence of int, optional
        Query tokens; default every token ``0..T-1``.
    layers : array ``[layers, T, T]``, optional
        Instead of ``attentions``: the capacities, as for :func:`attention_flow`.
    progress, cancelled : callable, optional
        As for :func:`attention_flow`, over all rows together.

    Returns
    -------
    float64 array ``[len(queries), T]``.

    Examples
    --------
    >>> a = np.zeros((2, 1, 2, 2))
    >>> a[:, 0, :, 0] = 1.0
    >>> attention_flow_matrix(a)
    array([[1. , 0. ],
           [1. , 0.5]])
    """
    count, t = source_size(attentions, layers)
    layer = _checked_layer(layer, count)
    queries = list(range(t)) if queries is None else [_checked_query(q, t) for q in queries]
    capacities = capacities_upto(attentions, layers, layer)
    rows = np.zeros((len(queries), t))
    for row, query in enumerate(queries):

        def row_progress(fraction: float, row: int = row) -> None:
            report_progress(progress, (row + fraction) / max(len(queries), 1))

        rows[row] = _flows(capacities, query, layer, row_progress if progress else None, cancelled)
    return rows
