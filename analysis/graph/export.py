"""A view's graph as a networkx DiGraph, and GEXF / GraphML files for Gephi, Cytoscape, yEd.

Nodes are token indices ``0..n-1`` (the rows of ``tokens.csv``) with attributes ``label``
(the token's display text), ``index`` (the same token index, as a column Gephi shows),
every metric of :data:`analysis.options.METRIC_NAMES` and ``community``; edges ``i -> j``
("i attends to j") carry ``weight = A[i, j]`` and ``length = -ln(weight)``. Graph
attributes: the sparsification rule (``rule``, a sentence), modularity, density,
reciprocity, resolution, seed, and the run's facts when given (``model``, ``view``, the
view's description; ``created``, the date and time of writing).

The files add what a drawing needs:

- **GEXF 1.2** (:func:`write_gexf`): each node has ``viz:position`` (the given
  ``positions``, default :func:`analysis.graph.layout.arc_layout`, times
  :data:`POSITION_SCALE` so that neighbours are 40 units apart, y up),
  ``viz:color`` (its community's colour from ``palette``, default
  :data:`COMMUNITY_PALETTE`, the window's colours) and ``viz:size`` (``size_metric``,
  default PageRank, scaled linearly onto :data:`SIZE_RANGE` = 4..24; every node gets the
  middle when the metric is the same for all). GEXF has no graph-level attributes: the
  run's facts go into ``<meta>``: ``<creator>``, ``<description>`` (one ``key: value``
  line each: model, view, sparsification, modularity, communities, edges, created) and
  ``<keywords>``, and the view's description is the graph's ``name``.
- **GraphML** (:func:`write_graphml`): the same node attributes plus ``x``, ``y``,
  ``size`` and ``color`` (``#rrggbb``) as plain data, and every fact as a graph attribute.

Numbers in the files are cleaned as every Attention Atlas file's are
(:mod:`analysis.io.numbers`: 7 significant digits, no ``-0.0``); :func:`to_networkx` keeps
full float64 values for code that computes with them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from os import PathLike
from xml.etree.ElementTree import SubElement

import networkx as nx
import numpy as np

from analysis.graph.layout import arc_layout
from analysis.graph.metrics import GraphResult
from analysis.io.numbers import clean_number

# Tableau 10, then the lighter Tableau 20 partners: the window's community colours
# (widgets.canvas_geometry.COMMUNITY_PALETTE), so a Gephi drawing matches the window's.
from analysis.options import COMMUNITY_PALETTE, METRIC_NAMES, NO_COMMUNITY_COLOR  # noqa: F401  (re-exported)

SIZE_RANGE = (4.0, 24.0)  # node sizes in the files, smallest and largest metric value
POSITION_SCALE = 40.0  # layout units (about one per neighbour) -> file units
CREATOR = "Attention Atlas"


def to_networkx(
    result: GraphResult,
    labels: Sequence[str],
    *,
    meta: Mapping | None = None,
) -> nx.DiGraph:
    """The kept edges of ``result`` as an ``nx.DiGraph`` with node and edge attributes
    (full float64 values); ``meta`` adds graph attributes (None values are left out)."""
    return _graph(result, labels, meta, clean=False)


def graph_meta(result: GraphResult, *, model: str | None = None, view=None) -> dict:
    """The facts a graph file records: model, view (a description, from an
    ``AttentionView``, a ``ViewSpec`` or a string), sparsification, modularity,
    communities, edges, resolution, seed, created (local date and time, ISO 8601)."""
    return {
        key: value
        for key, value in {
            "model": model,
            "view": _view_description(view),
            "sparsification": result.rule.describe(),
            "modularity": float(result.modularity),
            "communities": int(len(set(np.asarray(result.communities).tolist()))),
            "edges": int(len(result.weights)),
            "resolution": float(result.resolution),
            "seed": int(result.seed),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }.items()
        if value is not None
    }


def node_positions(n: int, positions=None) -> np.ndarray:
    """float64 ``[n, 2]`` file positions: ``positions`` (default the arc layout) times
    :data:`POSITION_SCALE`."""
    pos = arc_layout(n) if positions is None else np.array(positions, dtype=np.float64)
    if pos.shape != (n, 2):
        raise ValueError(f"positions must have shape ({n}, 2), got {pos.shape}")
    if not np.isfinite(pos).all():
        raise ValueError("positions must be finite numbers")
    return pos * POSITION_SCALE


def node_colors(communities, palette: Sequence[str] | None = None) -> list[str]:
    """``#rrggbb`` per node: its community's palette entry (cycling); the neutral
    :data:`NO_COMMUNITY_COLOR` for a community below 0."""
    palette = tuple(palette or COMMUNITY_PALETTE)
    for colour in palette:
        _rgb(colour)  # checked before anything is written
    return [
        palette[int(c) % len(palette)] if int(c) >= 0 else NO_COMMUNITY_COLOR for c in communities
    ]


def node_sizes(values) -> np.ndarray:
    """``values`` scaled linearly onto :data:`SIZE_RANGE` (the middle when all are equal
    or none is finite; a non-finite value gets the smallest size)."""
    values = np.asarray(values, dtype=np.float64)
    low, high = SIZE_RANGE
    finite = np.isfinite(values)
    if not finite.any():
        return np.full(values.shape, (low + high) / 2)
    vmin, vmax = values[finite].min(), values[finite].max()
    if vmax - vmin <= 1e-12 * max(abs(vmax), 1.0):
        sizes = np.full(values.shape, (low + high) / 2)
    else:
        sizes = low + (high - low) * (values - vmin) / (vmax - vmin)
    return np.where(finite, sizes, low)


def write_gexf(
    result: GraphResult,
    labels: Sequence[str],
    path: str | PathLike,
    *,
    positions=None,
    palette: Sequence[str] | None = None,
    size_metric: str = "pagerank",
    model: str | None = None,
    view=None,
    meta: Mapping | None = None,
) -> None:
    """Write the graph as GEXF 1.2 (Gephi) with positions, colours, sizes and the run's
    facts (see the module doc). ``meta`` adds or replaces facts of :func:`graph_meta`."""
    facts = {**graph_meta(result, model=model, view=view), **dict(meta or {})}
    graph = _drawn_graph(result, labels, facts, positions, palette, size_metric)
    for _, data in graph.nodes(data=True):
        data["viz"] = {
            "position": {"x": data.pop("x"), "y": data.pop("y"), "z": 0.0},
            "color": {**dict(zip("rgb", _rgb(data.pop("color")), strict=True)), "a": 1.0},
            "size": data.pop("size"),
        }
    graph.graph = {"name": str(facts.get("view", ""))}  # GEXF keeps no other graph attributes
    writer = nx.readwrite.gexf.GEXFWriter(encoding="utf-8", prettyprint=True, version="1.2draft")
    meta_element = writer.xml.find("meta")
    meta_element.find("creator").text = CREATOR
    lines = [f"{key}: {_fact_text(value)}" for key, value in facts.items() if value is not None]
    description = SubElement(meta_element, "description")
    description.text = "\n".join(lines)
    keywords = SubElement(meta_element, "keywords")
    keywords.text = "attention, transformer, token graph"
    writer.add_graph(graph)
    writer.write(path)


def write_graphml(
    result: GraphResult,
    labels: Sequence[str],
    path: str | PathLike,
    *,
    positions=None,
    palette: Sequence[str] | None = None,
    size_metric: str = "pagerank",
    model: str | None = None,
    view=None,
    meta: Mapping | None = None,
) -> None:
    """Write the graph as GraphML (Cytoscape, yEd, igraph): the GEXF file's attributes,
    with ``x``, ``y``, ``size``, ``color`` as node data and the facts as graph data."""
    facts = {**graph_meta(result, model=model, view=view), **dict(meta or {})}
    graph = _drawn_graph(result, labels, facts, positions, palette, size_metric)
    nx.write_graphml(graph, path)


# --- helpers ---------------------------------------------------------------------------


def _graph(
    result: GraphResult, labels: Sequence[str], meta: Mapping | None, *, clean: bool
) -> nx.DiGraph:
    if len(labels) != result.n:
        raise ValueError(f"{len(labels)} labels for a graph of {result.n} tokens")
    number = clean_number if clean else _plain
    attributes = {
        "rule": result.rule.describe(),
        "modularity": float(result.modularity),
        "density": float(result.density),
        "reciprocity": float(result.reciprocity),
        "resolution": float(result.resolution),
        "seed": int(result.seed),
        **dict(meta or {}),
    }
    graph = nx.DiGraph(
        **{k: _graph_value(v, number) for k, v in attributes.items() if _keeps(v, finite=clean)}
    )
    for node in range(result.n):
        metrics = {name: number(result.metrics[name][node]) for name in METRIC_NAMES}
        graph.add_node(
            node,
            label=str(labels[node]),
            index=node,
            community=int(result.communities[node]),
            **metrics,
        )
    for source, target, weight, length in zip(
        result.sources.tolist(),
        result.targets.tolist(),
        result.weights.tolist(),
        result.lengths.tolist(),
        strict=True,
    ):
        graph.add_edge(source, target, weight=number(weight), length=number(length))
    return graph


def _drawn_graph(result, labels, facts, positions, palette, size_metric) -> nx.DiGraph:
    """The cleaned graph with ``x``, ``y``, ``size``, ``color`` on every node."""
    if size_metric not in result.metrics:
        raise ValueError(
            f"unknown size metric '{size_metric}'; choose one of {', '.join(result.metrics)}"
        )
    graph = _graph(result, labels, facts, clean=True)
    pos = node_positions(result.n, positions)
    colours = node_colors(result.communities, palette)
    sizes = node_sizes(result.metrics[size_metric])
    for node, data in graph.nodes(data=True):
        data["x"] = clean_number(pos[node, 0])
        data["y"] = clean_number(pos[node, 1])
        data["size"] = clean_number(sizes[node])
        data["color"] = colours[node]
    return graph


def _plain(value) -> float:
    return float(value)


def _keeps(value, *, finite: bool) -> bool:
    """None is never kept; NaN and infinities not in files (GraphML and Gephi read no NaN)."""
    if value is None:
        return False
    return not (finite and isinstance(value, (float, np.floating)) and not math.isfinite(value))


def _graph_value(value, number):
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float, np.integer, np.floating)):
        return number(value)
    return str(value)


def _fact_text(value) -> str:
    if isinstance(value, (float, np.floating)):
        return repr(clean_number(value))
    return " ".join(str(value).split())


def _view_description(view) -> str | None:
    if view is None or isinstance(view, str):
        return view
    spec = getattr(view, "spec", view)
    return spec.describe()


def _rgb(colour: str) -> tuple[int, int, int]:
    text = str(colour).strip()
    if len(text) != 7 or not text.startswith("#"):
        raise ValueError(f"colour '{colour}' is not #rrggbb")
    try:
        return int(text[1:3], 16), int(text[3:5], 16), int(text[5:7], 16)
    except ValueError as error:
        raise ValueError(f"colour '{colour}' is not #rrggbb") from error
