"""Graph budgets: ours vs plain networkx, one table.

(1) graph step for one head (sparsify + all metrics + communities), budget 0.1 s at 512;
(2) exact dense betweenness, budget 1 s at 512;
(3) attention flow for one query, 6 layers, budget 1 s at 128 tokens.

Synthetic attention, seeded: softmax of random logits (std ``sharpness``) with a few sink
columns ([CLS]/[SEP]-like, ~1/3 of the mass), a previous-token habit and some peaked rows.
networkx runs only where it finishes in reasonable time; elsewhere it is marked "skipped".
Run: ``.venv/bin/python benchmarks/bench_graph.py``.
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


def networkx_flow(attentions: np.ndarray, query: int) -> None:
    r = residual_augmented_layers(attentions)
    layers, tokens = r.shape[0], r.shape[-1]
    graph = nx.DiGraph()
    for level in range(layers):
        for i in range(tokens):
            for j in range(tokens):
                graph.add_edge((level + 1, i), (level, j), capacity=r[level, i, j])
    for j in range(tokens):
        nx.maximum_flow_value(
            graph, (layers, query), (0, j), flow_func=nx.algorithms.flow.edmonds_karp
        )


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
    for tokens in (32, 64, 128):
        attentions = synthetic_attentions(6, 12, tokens, seed=tokens)
        query = tokens // 2
        ours = timed(lambda a=attentions, q=query: attention_flow(a, q), repeats=3)
        theirs = timed(lambda a=attentions, q=query: networkx_flow(a, q)) if tokens <= 32 else None
        row(
            "(3) attention flow",
            str(tokens),
            "6 layers x 12 heads, 1 query",
            ours,
            theirs,
            "1.0" if tokens == 128 else "",
        )
    print(
        "skipped: networkx above 256 (graph step), above 128 (dense betweenness: ~68 s at 512"
        " per DESIGN.md) and above 32 (flow: ~n^3.7 growth)."
    )


if __name__ == "__main__":
    main()
