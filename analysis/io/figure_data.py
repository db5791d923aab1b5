"""Figures as data: the heatmap, head overview, token view and graph as shapes and texts.

A :class:`Figure` is a list of drawing primitives (:class:`Rect`, :class:`Line`,
:class:`Path`, :class:`Circle`, :class:`Text`, :class:`Image`) in one coordinate system
(figure units: CSS pixels, 1/96 inch, y down), laid out from a view's data: matrix
cells, token labels, node positions, edges, colours. No Qt here: the same figure is
written as SVG by :func:`to_svg` (this module), embedded in the HTML report
(:mod:`analysis.io.report`), and painted by Qt onto PNG and PDF
(:mod:`widgets.figure_export`), so the three formats show the same drawing.

What makes the SVG portable (it renders alike in browsers, Inkscape, librsvg/rsvg-convert,
pandoc and LaTeX pipelines): every shape is a plain element in figure units; the only
transform is ``rotate`` on vertical labels; no clip paths, no non-scaling strokes, no
symbol atlases; heatmap cells are ``<rect>`` elements (slightly overlapping, so no
renderer shows seams between them) up to :data:`MAX_VECTOR_CELLS` cells, beyond which
the cells are one embedded bitmap and the figure says so in a note.

Layouts measure their labels with a :class:`TextMetrics` (Qt's font metrics when drawn
by the widgets; :class:`ApproxMetrics`, a slightly generous estimate, for the report)
and size every margin from the widest label, so no label is ever cut.

Conventions as elsewhere: ``A[i, j]`` is how much query ``i`` attends to key ``j``;
heatmap rows are queries, columns keys; graph edge ``i -> j`` means "i attends to j"."""

from __future__ import annotations

from analysis.io.figures.base import (
    APPROX_METRICS,
    COLORBAR_LABELS,
    COLORMAP_NAMES,
    FONT_FAMILY,
    INDEX_LABELS_FROM,
    LOG_FLOOR,
    MAX_LABEL_CHARS,
    ApproxMetrics,
    Circle,
    Figure,
    Image,
    Line,
    Path,
    Rect,
    Text,
    TextMetrics,
    axis_labels,
    check_levels,
    colorbar_title,
    colorize,
    colormap_lut,
    format_weight,
    highlight_colors,
    nice_step,
    nice_ticks,
    value_levels,
)
from analysis.io.figures.graph import (
    BIN_ALPHAS,
    BIN_TARGET_OPACITY,
    BIN_WIDTHS,
    EDGE_BINS,
    GRAPH_COLORS,
    MAX_DRAWN_EDGES,
    community_colors,
    graph_figure,
)
from analysis.io.figures.heads import (
    format_head_stat,
    head_table,
    head_tooltip,
    heads_figure,
    write_head_table_csv,
)
from analysis.io.figures.heatmap import MAX_VECTOR_CELLS, heatmap_figure
from analysis.io.figures.svg import encode_png, to_svg
from analysis.io.figures.tokens import (
    SELECTED_TOKEN_COLOR,
    WEIGHT_RGB,
    token_colors,
    token_pieces,
    tokens_figure,
)
from analysis.options import COMMUNITY_PALETTE, NO_COMMUNITY_COLOR

__all__ = [
    "APPROX_METRICS",
    "ApproxMetrics",
    "BIN_ALPHAS",
    "BIN_TARGET_OPACITY",
    "BIN_WIDTHS",
    "COLORBAR_LABELS",
    "colorbar_title",
    "COLORMAP_NAMES",
    "COMMUNITY_PALETTE",
    "Circle",
    "EDGE_BINS",
    "FONT_FAMILY",
    "Figure",
    "GRAPH_COLORS",
    "INDEX_LABELS_FROM",
    "Image",
    "LOG_FLOOR",
    "Line",
    "MAX_DRAWN_EDGES",
    "MAX_LABEL_CHARS",
    "MAX_VECTOR_CELLS",
    "NO_COMMUNITY_COLOR",
    "Path",
    "Rect",
    "SELECTED_TOKEN_COLOR",
    "Text",
    "TextMetrics",
    "WEIGHT_RGB",
    "axis_labels",
    "check_levels",
    "colorize",
    "colormap_lut",
    "community_colors",
    "encode_png",
    "format_head_stat",
    "format_weight",
    "graph_figure",
    "head_table",
    "head_tooltip",
    "heads_figure",
    "heatmap_figure",
    "highlight_colors",
    "nice_step",
    "nice_ticks",
    "to_svg",
    "token_colors",
    "token_pieces",
    "tokens_figure",
    "value_levels",
    "write_head_table_csv",
]
