"""Graph budgets: ours vs plain networkx, one table.

(1) graph step for one head (sparsify + all metrics + communities), budget 0.1 s at 512;
(2) exact dense betweenness, budget 1 s at 512;
(3) attention flow for one query, 6 layers x 12 heads: budget 1 s at 128 tokens, 3 s at 512;
    beside the igraph implementation it replaced (the fallback without a C compiler) and
    networkx's Edmonds-Karp on the full layered graph where that finishes (32 tokens).

Synthetic attention, seeded: softmax of random logits (std ``sharpness``) with a few sink
columns ([CLS]/[SEP]-like, ~1/3 of the mass), a previous-token habit and some peaked rows.
networkx runs only where it finishes in reasonable time; elsewhere it is marked "skipped".
Run: ``.venv/bin/python benchmarks/bench_graph.py [--quick]`` (``--quick``: no igraph flow at
512 tokens, which takes about a minute).
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from pathlib import Path

import community as community_louvain
import networkx as nx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import analysis.attention.flow as flow_module  # noqa: E402
from analysis.attention.flow import attention_flow  # noqa: E402
from analysis.attention.rollout import residual_augmented_layers  # noqa: E402
from analysis.graph.metrics import analyze_graph, dense_betweenness  # noqa: E402
from analysis.graph.rules import SparsifyRule, sparsify


def synthetic_attention(n: int, seed: int = 0, sharpness: float = 2.0) -> np.ndarray:
    """One realistic-looking head ``[n, n]``: rows sum to 1."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, sharpness, (n, n))
    sinks = np.unique(np.r_[0, n - 1, rng.choice(n, 2, replace=False)])
    logits[:, sinks] += np.log(n) + sharpness**2 / 2 - 1.0 + rng.uniform(0.0, 1.0, sinks.size)
    logits[np.arange(1, n), np.arange(n - 1)] += 2.0 * sharpness  # previous token
    peaked = rng.choice(n, max(1, n // 8), replace=False)
    logits[peaked, rng.integers(0, n, peaked.size)] += np.log(n) + sharpness**2
    logits -= logits.max(axis=1, keepdims=True)
    weights = np.exp(logits)
    return weights / weights.sum(axis=1, keepdims=True)


def synthetic_attentions(layers: int, heads: int, n: int, seed: int = 0) -> np.ndarray:
    return np.stack(
        [
            np.stack([synthetic_attention(n, seed + 100 * layer + head) for head in range(heads)])
            for layer in range(layers)
        ]
    )


def timed(function, repeats: int = 1) -> float:
    """Median wall time in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def networkx_graph_step(matrix: np.ndarray, rule: SparsifyRule) -> None:
    """The same analysis written the plain networkx way (the reference definition)."""
    sources, targets, weights = sparsify(matrix, rule)
    graph = nx.DiGraph()
    graph.add_nodes_from(range(matrix.shape[0]))
    for s, t, w in zip(sources.tolist(), targets.tolist(), weights.tolist(), strict=True):
        graph.add_edge(s, t, weight=w, length=-math.log(w))
    dict(graph.in_degree(weight="weight"))
    dict(graph.out_degree(weight="weight"))
    nx.betweenness_centrality(graph, weight="length")
    nx.closeness_centrality(graph, distance="length")
    nx.pagerank(graph, weight="weight")
    nx.hits(graph)
    undirected = nx.Graph()
    undirected.add_nodes_from(graph)
    for s, t, w in graph.edges(data="weight"):
        old = undirected.get_edge_data(s, t, {"weight": 0.0})["weight"]
        undirected.add_edge(s, t, weight=old + w)
    partition = community_louvain.best_partition(undirected, random_state=0)
    community_louvain.modularity(partition, undirected)
    nx.density(graph)
    nx.overall_reciprocity(graph)


def networkx_dense_betweenness(matrix: np.ndarray) -> None:
    graph = nx.DiGraph()
    for i, j in zip(*np.nonzero(matrix > 0), strict=True):
        if i != j:
            graph.add_edge(int(i), int(j), length=-math.log(matrix[i, j]))
    nx.betweenness_centrality(graph, weight="length")


def networkx_flow(attentions: np.ndarray, query: int) -> np.ndarray:
    r = residual_augmented_layers(attentions)
    layers, tokens = r.shape[0], r.shape[-1]
    graph = nx.DiGraph()
    for level in range(layers):
        for i in range(tokens):
            for j in range(tokens):
                graph.add_edge((level + 1, i), (level, j), capacity=r[level, i, j])
    return np.array(
        [
            nx.maximum_flow_value(
                graph, (layers, query), (0, j), flow_func=nx.algorithms.flow.edmonds_karp
            )
            for j in range(tokens)
        ]
    )


def igraph_flow(attentions: np.ndarray, query: int) -> np.ndarray:
    """The implementation before the C kernel: igraph's push-relabel once per input token."""
    core, flow_module._flow_core = flow_module._flow_core, None
    try:
        return attention_flow(attentions, query)
    finally:
        flow_module._flow_core = core


def row(what: str, size: str, detail: str, ours: float, theirs: float | None, budget: str):
    reference = "skipped" if theirs is None else f"{theirs:9.3f} s"
    speedup = "" if theirs is None else f"{theirs / ours:8.0f}x"
    verdict = ""
    if budget:
        verdict = "ok" if ours <= float(budget) else "OVER"
    print(
        f"{what:<22} {size:>5} {detail:<26} {ours:9.4f} s {reference:>11} {speedup:>9}"
        f" {budget:>7} {verdict}"
    )


def main() -> None:
    rule = SparsifyRule()
    print(f"networkx {nx.__version__}; rule: {rule.describe()}; times are medians")
    print(
        f"{'step':<22} {'n':>5} {'input':<26} {'ours':>11} {'networkx':>11} {'speedup':>9}"
        f" {'budget':>7}"
    )
    for n in (128, 256, 512):
        for sharpness, label in ((2.0, "typical"), (1.5, "broad")):
            if label == "broad" and n != 512:
                continue
            matrix = synthetic_attention(n, seed=n, sharpness=sharpness)
            edges = len(sparsify(matrix, rule)[0])
            ours = timed(lambda m=matrix: analyze_graph(m, rule), repeats=7)
            theirs = timed(lambda m=matrix: networkx_graph_step(m, rule)) if n <= 256 else None
            budget = "0.1" if n == 512 else ""
            row(
                "(1) graph step, 1 head",
                str(n),
                f"{label}, {edges / n:.1f} edges/row",
                ours,
                theirs,
                budget,
            )
    for n in (128, 256, 512):
        matrix = synthetic_attention(n, seed=n)
        ours = timed(lambda m=matrix: dense_betweenness(m), repeats=3)
        theirs = timed(lambda m=matrix: networkx_dense_betweenness(m)) if n <= 128 else None
        row(
            "(2) dense betweenness",
            str(n),
            f"{n * (n - 1)} edges",
            ours,
            theirs,
            "1.0" if n == 512 else "",
        )
    print()
    print(f"attention flow, one query, 6 layers x 12 heads; kernel: {flow_module.flow_kernel_in_use()}")
    print(
        f"{'step':<22} {'n':>5} {'ours':>11} {'igraph':>11} {'networkx':>11} {'vs igraph':>9}"
        f" {'max |diff|':>10} {'budget':>7}"
    )
    quick = "--quick" in sys.argv
    for tokens in (32, 128, 256, 512):
        attentions = synthetic_attentions(6, 12, tokens, seed=tokens)
        query = tokens // 2
        flows = attention_flow(attentions, query)
        ours = timed(lambda a=attentions, q=query: attention_flow(a, q), repeats=3)
        before = theirs = None
        differences = []
        if not (quick and tokens > 256):
            started = time.perf_counter()
            differences.append(np.abs(igraph_flow(attentions, query) - flows).max())
            before = time.perf_counter() - started
        if tokens <= 32:
            started = time.perf_counter()
            differences.append(np.abs(networkx_flow(attentions, query) - flows).max())
            theirs = time.perf_counter() - started
        difference = max(differences) if differences else None
        budget = {128: "1.0", 512: "3.0"}.get(tokens, "")
        verdict = ("ok" if ours <= float(budget) else "OVER") if budget else ""
        cells = [f"{x:9.3f} s" if x is not None else "skipped" for x in (ours, before, theirs)]
        speedup = f"{before / ours:8.0f}x" if before is not None else ""
        diff = f"{difference:10.1e}" if difference is not None else ""
        print(
            f"{'(3) attention flow':<22} {tokens:>5} {cells[0]:>11} {cells[1]:>11} {cells[2]:>11}"
            f" {speedup:>9} {diff:>10} {budget:>7} {verdict}"
        )
    print(
        "skipped: networkx above 256 (graph step), above 128 (dense betweenness: ~68 s at 512"
        " per DESIGN.md) and above 32 (flow: ~n^3.7 growth); igraph flow at 512 with --quick."
    )


if __name__ == "__main__":
    main()
