"""A view's graph as a networkx DiGraph, and GEXF / GraphML files for Gephi, Cytoscape, yEd.

Nodes are token indices ``0..n-1`` with attributes ``label`` (the token's display text),
every metric of :data:`analysis.graph.METRIC_NAMES` and ``community``; edges ``i -> j``
("i attends to j") carry ``weight = A[i, j]`` and ``length = -ln(weight)``. Graph
attributes: the sparsification rule (sentence), modularity, density, reciprocity,
resolution, seed. Values are plain Python floats/ints/strs so every writer accepts them.
"""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike

import networkx as nx

from analysis.graph.metrics import GraphResult
from analysis.options import METRIC_NAMES


def to_networkx(result: GraphResult, labels: Sequence[str]) -> nx.DiGraph:
    """The kept edges of ``result`` as an ``nx.DiGraph`` with node and edge attributes."""
    if len(labels) != result.n:
        raise ValueError(f"{len(labels)} labels for a graph of {result.n} tokens")
    graph = nx.DiGraph(
        rule=result.rule.describe(),
        modularity=float(result.modularity),
        density=float(result.density),
        reciprocity=float(result.reciprocity),
        resolution=float(result.resolution),
        seed=int(result.seed),
    )
    for node in range(result.n):
        attributes = {name: float(result.metrics[name][node]) for name in METRIC_NAMES}
        graph.add_node(
            node, label=str(labels[node]), community=int(result.communities[node]), **attributes
        )
    lengths = result.lengths
    for source, target, weight, length in zip(
        result.sources.tolist(),
        result.targets.tolist(),
        result.weights.tolist(),
        lengths.tolist(),
        strict=True,
    ):
        graph.add_edge(source, target, weight=weight, length=length)
    return graph


def write_gexf(result: GraphResult, labels: Sequence[str], path: str | PathLike) -> None:
    """Write the graph as GEXF 1.2 (Gephi)."""
    nx.write_gexf(to_networkx(result, labels), path)


def write_graphml(result: GraphResult, labels: Sequence[str], path: str | PathLike) -> None:
    """Write the graph as GraphML (Cytoscape, yEd, igraph)."""
    nx.write_graphml(to_networkx(result, labels), path)
