"""The figures of an analysis drawn from its data, with no widget on screen.

The command line (``attention-atlas analyze --figures png,svg,pdf``) and scripts call
:func:`write_figures`; it draws the same figures as the window's exports (the widgets'
``export_figure``) from a run, its view and the view's graph, in an offscreen Qt
application when none runs:

* ``heatmap.*``: the view's matrix (:func:`view_heatmap_figure`);
* ``graph.*``: the view's graph in the chosen layout (:func:`graph_figure`);
* ``heads.*``: every layer x head of the run's self-attention (:func:`heads_figure`).

Each is a clean figure: no selection, no path, no hover.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from analysis.io import figure_data as fd
from widgets import figure_export
from widgets.colormaps import SIGNED_COLORMAP, get_colormap, lookup_table

__all__ = [
    "FIGURE_NAMES",
    "graph_figure",
    "graph_positions",
    "heads_figure",
    "view_heatmap_figure",
    "write_figures",
]

FIGURE_NAMES = ("heatmap", "graph", "heads")
GRAPH_LAYOUTS = ("arc", "circular", "force")
DEFAULT_SIZE_METRIC = "pagerank"  # as the window's graph canvas


def view_heatmap_figure(view, *, colormap: str = "viridis", log: bool = False,
                        title: str | None = None) -> fd.Figure:
    """The heatmap figure of an :class:`~analysis.attention.views.AttentionView`
    (signed views on the diverging map centred at 0)."""
    from widgets.heatmap_axes import value_name

    signed = bool(getattr(view, "signed", False))
    shown = SIGNED_COLORMAP if signed else colormap
    spec = view.spec
    return fd.heatmap_figure(
        view.matrix, view.row_labels, view.col_labels, masked=view.masked,
        title=view.title if title is None else title, signed=signed, log=log, colormap=shown,
        lut=lookup_table(shown), metrics=figure_export.figure_metrics(),
        value_name=value_name(spec.kind, stack=spec.stack, signed=signed, through=spec.through),
    )


def graph_positions(graph, layout: str = "arc") -> np.ndarray:
    """Node positions ``[n, 2]`` of a graph result in ``layout`` ("arc", "circular" or
    "force"; the force layout is seeded by the graph's seed, so it is reproducible)."""
    from analysis.graph.layout import arc_layout, circular_layout, force_layout

    if layout == "arc":
        return arc_layout(graph.n)
    if layout == "circular":
        return circular_layout(graph.n)
    if layout == "force":
        return force_layout(graph.n, graph.sources, graph.targets, graph.weights, seed=int(getattr(graph, "seed", 0)))
    raise ValueError(f"unknown graph layout {layout!r}; choose one of {', '.join(GRAPH_LAYOUTS)}")


def graph_figure(graph, labels: Sequence[str], *, layout: str = "arc", positions: np.ndarray | None = None,
                 size_metric: str | None = DEFAULT_SIZE_METRIC, title: str = "",
                 weight_name: str = "attention weight", generated=None) -> fd.Figure:
    """The figure of a :class:`~analysis.graph.metrics.GraphResult` whose nodes are
    ``labels``: nodes coloured by community, sized by ``size_metric``; ``generated``
    (bool per node) rings a generation's answer tokens."""
    pos = graph_positions(graph, layout) if positions is None else positions
    metric = size_metric if size_metric in graph.metrics else None
    return fd.graph_figure(
        labels, graph.sources, graph.targets, graph.weights, pos, layout=layout,
        communities=graph.communities, size_values=graph.metrics[metric] if metric else None,
        size_metric=metric, metric_values=graph.metrics, title=title, weight_name=weight_name,
        metrics=figure_export.figure_metrics(), generated=generated,
    )


def heads_figure(run, *, colormap: str = "viridis", title: str | None = None,
                 thumbnails: np.ndarray | None = None, stats=None) -> fd.Figure:
    """The head overview of a run: its self-attention thumbnails per layer x head."""
    from analysis.attention.head_stats import head_thumbnails

    th = head_thumbnails(run.attentions, 16) if thumbnails is None else thumbnails
    return fd.heads_figure(
        th, colormap=colormap, lut=lookup_table(colormap), masked=bool(run.model.is_causal), stats=stats,
        title=f"{run.model.name} · heads (layer x head)" if title is None else title,
        metrics=figure_export.figure_metrics(),
    )


def _weight_name(view) -> str:
    kind = getattr(getattr(view, "spec", None), "kind", "head")
    if getattr(view, "signed", False):
        return "|value|"
    return "rollout weight" if kind in ("rollout", "flow") else "attention weight"


def write_figures(folder: str | os.PathLike, run, view, graph=None,
                  formats: Iterable[str] = ("png", "svg", "pdf"), *, colormap: str = "viridis",
                  graph_layout: str = "arc") -> list[Path]:
    """Write ``heatmap.<fmt>``, ``graph.<fmt>`` (when ``graph`` is given) and
    ``heads.<fmt>`` into ``folder`` for every format in ``formats`` ("png", "svg",
    "pdf"); returns the paths written. PNGs are the figures' natural size at 2x (192
    dpi), the graph is drawn in ``graph_layout`` ("arc", "circular" or "force") with
    nodes sized by PageRank. Works without a window (an offscreen Qt application is
    started when none runs). ``ValueError`` for an unknown format, colour map or
    layout, before anything is written; ``OSError`` when the folder cannot be written."""
    formats = [f.lower().lstrip(".") for f in formats]
    bad = [f for f in formats if f not in figure_export.FIGURE_FORMATS]
    if bad:
        raise ValueError(f"unknown figure format {bad[0]!r}; choose from {', '.join(figure_export.FIGURE_FORMATS)}")
    get_colormap(colormap)  # ValueError for unknown names
    if graph_layout not in GRAPH_LAYOUTS:
        raise ValueError(f"unknown graph layout {graph_layout!r}; choose one of {', '.join(GRAPH_LAYOUTS)}")
    folder = Path(folder)
    if not folder.is_dir():
        raise figure_export._error(2, f"Cannot write figures to {os.fspath(folder)!r}: the folder does not exist")
    figure_export.ensure_gui()
    figures = {"heatmap": view_heatmap_figure(view, colormap=colormap)}
    if graph is not None:
        from analysis.io.folder import view_generated

        generated = view_generated(run, view)
        figures["graph"] = graph_figure(graph, view.row_labels, layout=graph_layout,
                                        title=f"{view.title} · graph", weight_name=_weight_name(view),
                                        generated=None if generated is None else [bool(g) for g in generated])
    figures["heads"] = heads_figure(run, colormap=colormap)
    written = []
    for name, fig in figures.items():
        for fmt in dict.fromkeys(formats):
            path = folder / f"{name}.{fmt}"
            figure_export.write_figure(fig, path, dpi=192 if fmt == "png" else None, fmt=fmt)
            written.append(path)
    return written
