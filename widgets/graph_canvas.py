"""Interactive node-link view of an attention graph.

:class:`GraphCanvas` draws tokens as nodes and attention as directed edges
(``i -> j`` with weight ``A[i, j]``: "token i attends to token j") in a pyqtgraph
ViewBox.  It shows state and reports what the person did; it runs no model and no
graph algorithm: metrics, communities and paths arrive as plain arrays.  Layouts:
the cheap ones ("arc", "circular", "layered"; O(n)) come from
:mod:`analysis.graph.layout`, called here; the force layout (O(n^2 x iterations)) is
never computed on this thread: it is handed in by the app, computed in its worker
(``set_graph(..., positions={"force": pos})``, ``set_layout("force", pos)`` or
:meth:`GraphCanvas.set_positions`).  Until it arrives the canvas keeps drawing what it
drew and says "Laying out…".

Edge weights may be any non-negative values (attention, flow, value norms); widths,
opacities and the choice of drawn edges are relative to the strongest edge.  Drawing is
batched so that 512 tokens with ~25k edges stay interactive: one path item per weight
bin (never one per edge), at most ``MAX_DRAWN_EDGES`` edges (the strongest), only
``THICK_EDGE_BUDGET`` of them wider than one pixel, arrowheads rebuilt only on zoom,
labels thinned on screen so none overlap (hovered, selected, source, target and path
nodes always get theirs).  Exports are drawn from the graph's data, not from the scene
(:meth:`GraphCanvas.figure`, :mod:`analysis.io.figure_data`).  The decisions are in :mod:`widgets.canvas_geometry`, the
items in :mod:`widgets.canvas_items`, the toolbar and hints in
:mod:`widgets.canvas_chrome`, the layout state in :mod:`widgets.canvas_layouts`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets
from PySide6.QtCore import Qt, Signal

from analysis.io import figure_data as fd
from analysis.io.figures.graph import layered_column_text
from widgets import canvas_chrome as chrome
from widgets import canvas_geometry as geometry
from widgets import figure_export
from widgets.canvas_chrome import EMPTY_HINT, LAYING_OUT_HINT, NO_EDGES_HINT
from widgets.canvas_geometry import (
    COMMUNITY_PALETTE,
    EDGE_BINS,
    MAX_DRAWN_EDGES,
    THICK_EDGE_BUDGET,
    drawn_edge_mask,
    weight_bins,
)
from widgets.canvas_items import BACKGROUND, Decoration, EdgeLayer, LabelLayer, NodeItem
from widgets.canvas_layouts import LAYOUTS, LOCAL_LAYOUTS, CanvasLayouts

__all__ = [
    "COMMUNITY_PALETTE",
    "EDGE_BINS",
    "EMPTY_HINT",
    "LAYING_OUT_HINT",
    "MAX_DRAWN_EDGES",
    "NO_EDGES_HINT",
    "THICK_EDGE_BUDGET",
    "GraphCanvas",
    "drawn_edge_mask",
    "weight_bins",
]


class GraphCanvas(QtWidgets.QWidget):
    """Node-link view of one attention graph.

    Signals
    -------
    node_hovered(int): token under the mouse, -1 when the mouse leaves the nodes.
    source_selected(int): plain click on a node (it becomes the path source).
    target_selected(int): shift-click on a node (it becomes the path target).
    token_selected(int): plain click on a node (to link with the heatmap).
    layout_changed(str): the person picked a layout in the toolbar (for "force" without
        positions the app answers with :meth:`set_positions`).
    size_metric_changed(str): the person picked a size metric ("" = uniform).
    """

    LAYOUTS = LAYOUTS
    #: layouts the canvas computes itself (O(n)); the others only come from outside
    LOCAL_LAYOUTS = LOCAL_LAYOUTS

    node_hovered = Signal(int)
    source_selected = Signal(int)
    target_selected = Signal(int)
    token_selected = Signal(int)
    layout_changed = Signal(str)
    size_metric_changed = Signal(str)

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        # graph state
        self._labels: list[str] = []
        self._display: list[str] = []
        self._src = np.zeros(0, dtype=np.int64)
        self._dst = np.zeros(0, dtype=np.int64)
        self._w = np.zeros(0, dtype=np.float64)  # |weight|, non-finite as 0
        self._drawn = np.zeros(0, dtype=bool)
        self._bins = np.zeros(0, dtype=np.int64)
        self._strength = np.zeros(0, dtype=np.float64)
        self._metrics: dict[str, np.ndarray] = {}
        self._communities: np.ndarray | None = None
        self._node_layer: np.ndarray | None = None
        self._generated: np.ndarray | None = None  # bool [n]: a generation's tokens, None without one
        self._layered_available = False  # the app can build a graph across layers on request
        self._pos = np.zeros((0, 2), dtype=np.float64)
        self._sizes = np.zeros(0, dtype=np.float64)
        self._label_priority = np.zeros(0, dtype=np.int64)
        self._layouts = CanvasLayouts()  # requested and drawn layout, known positions
        self._edges_pending = False  # set_graph(edges_later=True) until draw_pending_edges()
        self._brushes: dict[int, QtGui.QBrush] = {}  # node fill per colour (see _refresh_nodes)
        self._node_pen = pg.mkPen(QtGui.QColor(255, 255, 255), width=1.2)
        self._size_metric: str | None = None  # requested
        self._source: int | None = None
        self._target: int | None = None
        self._selected: int | None = None
        self._hovered = -1
        self._path_nodes: list[int] = []
        self._pen_px = None  # pixel size the edge opacities were chosen for
        self._empty_hint = EMPTY_HINT  # the hint without nodes (clear() may say why)

        self._toolbar = chrome.CanvasToolbar(self.LAYOUTS)
        self._layout_combo = self._toolbar.layout_combo  # tests pick layouts through it

        # plot
        self._glw = pg.GraphicsLayoutWidget()
        self._glw.setBackground(BACKGROUND)
        self._glw.setAntialiasing(True)
        self._glw.ci.setContentsMargins(2, 2, 2, 2)
        self._vb = self._glw.addViewBox()
        self._vb.setAspectLocked(True)
        self._vb.setMenuEnabled(False)
        self._vb.setDefaultPadding(0.04)
        self._vb.border = None  # a NoPen border still emits a path the SVG exporter chokes on

        self._edge_layer = EdgeLayer(self._vb)
        self._edge_items = self._edge_layer.edge_items  # the weight bins' batches (tests)
        self._path_item = self._edge_layer.path_item  # the highlighted path's line (tests)
        self._nodes = NodeItem(self)
        self._nodes.setZValue(50)
        self._vb.addItem(self._nodes)
        self._rings = Decoration()
        self._rings.setZValue(51)
        self._vb.addItem(self._rings, ignoreBounds=True)
        self._generated_rings = Decoration()  # a generation's tokens: an orange ring
        self._generated_rings.setZValue(50.5)
        self._vb.addItem(self._generated_rings, ignoreBounds=True)
        self._label_layer = LabelLayer(self)
        self._label_layer.setZValue(60)
        self._vb.addItem(self._label_layer, ignoreBounds=True)

        self._hint = chrome.HintOverlay(self._glw)
        self._note = QtWidgets.QLabel()
        self._note.setStyleSheet("color: #52606d;")
        self._note.setWordWrap(True)

        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self._toolbar)
        layout.addWidget(self._glw, 1)
        layout.addWidget(self._note)

        self._toolbar.layout_picked.connect(self._on_layout_picked)
        self._toolbar.size_picked.connect(self._on_size_picked)
        self._toolbar.fit_clicked.connect(self.reset_view)
        self._vb.sigTransformChanged.connect(self._on_view_transform_changed)

        self._update_layout_combo()
        self._update_legend()
        self._update_hint()
        self._update_note()

    # ------------------------------------------------------------------ public API

    def set_graph(
        self,
        labels: Sequence[str],
        sources: np.ndarray,
        targets: np.ndarray,
        weights: np.ndarray,
        *,
        metrics: dict[str, np.ndarray] | None = None,
        communities: np.ndarray | None = None,
        node_layer: np.ndarray | None = None,
        positions: dict[str, np.ndarray] | None = None,
        edges_later: bool = False,
    ) -> None:
        """Show a graph: ``labels[i]`` is token i; edge k is ``sources[k] -> targets[k]``
        with ``weights[k]`` (any non-negative values; drawn relative to the strongest).
        Keeps the current layout kind and size metric; clears the highlighted path (it
        belonged to the previous graph) and keeps source, target and selection where they
        are still valid token indices.  ``positions`` maps a layout kind to ``[n, 2]``
        coordinates computed elsewhere (the app's worker lays out the force graph there,
        so this thread does not; entries of another shape are ignored).  With
        ``edges_later`` the nodes are shown now and the edges when
        :meth:`draw_pending_edges` is called (the window does that on the next turn of its
        event loop, so no single turn takes long)."""
        labels = [str(t) for t in labels]
        n = len(labels)
        if n:
            self._empty_hint = EMPTY_HINT
        s, t, w, clean_metrics, communities, node_layer = geometry.check_graph(
            n, sources, targets, weights, metrics, communities, node_layer
        )

        self._labels = labels
        self._display = [geometry.display_label(x) for x in labels]
        self._label_layer.forget_widths()
        self._src, self._dst, self._w = s, t, geometry.finite_weights(w)
        self._bins = weight_bins(self._w)
        self._metrics = clean_metrics
        self._communities = communities
        self._node_layer = node_layer
        self._layouts.new_graph(n, node_layer, positions)
        self._path_nodes = []
        self._hovered = -1
        self._generated = None
        self._toolbar.show_generated(False)
        for attr in ("_source", "_target", "_selected"):
            v = getattr(self, attr)
            if v is not None and v >= n:
                setattr(self, attr, None)

        self._drawn = drawn_edge_mask(s, t, self._w)
        strength = np.bincount(s, weights=self._w, minlength=n) + np.bincount(
            t, weights=self._w, minlength=n
        )
        self._strength = strength[:n] if n else np.zeros(0)

        self._update_size_combo()
        self._update_layout_combo()
        self._layouts.layered_aspect = self._layered_aspect()
        self._pos = self._layouts.positions()
        self._update_sizes()
        self._refresh_all(edges=not edges_later)
        self._update_hint()
        self._update_note()
        self._update_legend()
        self.reset_view()

    def set_generated(self, generated: Sequence[bool] | np.ndarray | None) -> None:
        """Mark a generation's tokens: ``generated[i]`` True for a node that stands for a
        generated token (the model's answer), None (or no True) for none. They get an orange
        ring and label, as on the heatmap's axes, and the toolbar a legend entry
        "generated". ``set_graph`` clears it (the binding marks the new graph's tokens)."""
        if generated is None:
            mask = None
        else:
            mask = np.asarray(generated, dtype=bool).ravel()
            if mask.shape != (len(self._labels),):
                raise ValueError(f"generated must have one value per node ({len(self._labels)}), got {mask.shape[0]}")
            if not mask.any():
                mask = None
        if mask is None and self._generated is None:
            return
        if mask is not None and self._generated is not None and np.array_equal(mask, self._generated):
            return
        self._generated = mask
        self._refresh_rings()
        self._toolbar.show_generated(mask is not None)

    def generated_nodes(self) -> list[int]:
        """The nodes marked as generated tokens."""
        return [] if self._generated is None else np.flatnonzero(self._generated).tolist()

    def generated_ring_positions(self) -> np.ndarray:
        """``[k, 2]`` data coordinates of the orange rings drawn now (tests)."""
        points = self._generated_rings.points()
        return np.array([[p.pos().x(), p.pos().y()] for p in points], dtype=np.float64).reshape(-1, 2)

    def generated_legend_text(self) -> str:
        """The toolbar's "generated" legend entry while generated tokens are shown, else ""."""
        return self._toolbar.generated_legend_text()

    def label_rects(self) -> list[tuple[float, float, float, float]]:
        """Rectangles (left, top, right, bottom; viewport pixels) of the labels the last
        paint drew, in the order of :meth:`visible_labels`."""
        return list(self._label_layer.drawn_rects)

    def label_roles(self) -> list[str]:
        """What each label of the last paint names, in the order of :meth:`visible_labels`:
        "node" (its own label), or in the layered layout "column" (a token, written once
        under its column) or "row" (a level, "L2")."""
        return list(self._label_layer.drawn_roles)

    def draw_pending_edges(self) -> None:
        """Draw the edges that ``set_graph(..., edges_later=True)`` left out (no-op otherwise)."""
        if self._edges_pending:
            self._edges_pending = False
            self._refresh_edges()
            self._refresh_path()

    def edges_pending(self) -> bool:
        return self._edges_pending

    def clear(self, hint: str | None = None) -> None:
        """Back to the empty state; ``hint`` says why (default: analyse a text)."""
        self._empty_hint = hint or EMPTY_HINT
        self.set_graph([], np.zeros(0), np.zeros(0), np.zeros(0))

    def set_layout(self, kind: str, positions: np.ndarray | None = None) -> None:
        """Switch the layout: one of ``LAYOUTS``.  ``positions`` (``[n, 2]``) may carry
        a layout computed elsewhere (as :meth:`set_positions`).  "layered" needs
        ``node_layer``; without it the arc layout is shown and a note says why.  "force"
        is never computed here: without positions the canvas keeps drawing what it drew,
        says "Laying out…" and :meth:`layout_kind` tells what is drawn, until
        :meth:`set_positions` brings them."""
        if positions is not None:
            self._layouts.give(kind, positions)  # ValueError: unknown kind, wrong shape
        self._layouts.request(kind)  # ValueError for unknown kinds
        self._apply_layout()

    def set_positions(self, kind: str, positions: np.ndarray) -> None:
        """Hand in node positions ``[n, 2]`` for layout ``kind`` (e.g. the force layout the
        app computed in its worker).  Drawn at once if ``kind`` is the layout asked for
        (or the one drawn); otherwise kept until it is chosen.  Emits nothing."""
        if self._layouts.give(kind, positions):
            self._apply_layout()

    def layout_pending(self) -> bool:
        """True while the layout asked for ("force") has not been handed in yet."""
        return self._layouts.pending

    def set_layered_available(self, available: bool) -> None:
        """Let the person pick "layered" in the toolbar even though the graph shown has no
        ``node_layer``: the app answers ``layout_changed("layered")`` with a graph across
        layers (rollout / flow views)."""
        self._layered_available = bool(available)
        self._update_layout_combo()

    def layout_kind(self) -> str:
        """The layout actually drawn (may differ from the requested one, see set_layout)."""
        return self._layouts.drawn

    def set_size_metric(self, name: str | None) -> None:
        """Size nodes by metric ``name`` (area grows with the value, min-max scaled to
        7..26 px), or uniformly for None.  A name the current graph lacks is remembered
        and used once a graph has it; meanwhile nodes are uniform."""
        self._size_metric = name or None
        self._update_size_combo()
        self._update_sizes()
        self._refresh_nodes()
        self._rebuild_arrows(force=True)
        self._label_layer.update()

    def size_metric(self) -> str | None:
        """The metric that sizes the nodes now (None when uniform)."""
        if self._size_metric is not None and self._size_metric in self._metrics:
            return self._size_metric
        return None

    def set_source(self, index: int | None) -> None:
        index = self._check_index(index)
        if index != self._source:  # unchanged: nothing to repaint (a repaint of a broad graph costs ~50 ms)
            self._source = index
            self._refresh_rings()
            self._update_legend()

    def set_target(self, index: int | None) -> None:
        index = self._check_index(index)
        if index != self._target:
            self._target = index
            self._refresh_rings()
            self._update_legend()

    def select_token(self, index: int | None) -> None:
        """Mark a token as selected (e.g. from the heatmap or the table); no signal."""
        index = self._check_index(index)
        if index != self._selected:
            self._selected = index
            self._refresh_rings()

    def source(self) -> int | None:
        return self._source

    def target(self) -> int | None:
        return self._target

    def selected_token(self) -> int | None:
        return self._selected

    def highlight_path(self, nodes: Sequence[int]) -> None:
        """Draw the path ``nodes[0] -> nodes[1] -> ...`` thick on top; ``[]`` clears."""
        nodes = [int(i) for i in nodes]
        n = len(self._labels)
        for i in nodes:
            if not 0 <= i < n:
                raise ValueError(f"path node {i} is not a token index in [0, {n})")
        if nodes == list(self._path_nodes):
            return
        self._path_nodes = nodes
        self._refresh_path()
        self._refresh_rings()
        self._label_layer.update()

    def highlighted_path(self) -> list[int]:
        return list(self._path_nodes)

    def highlighted_edges(self) -> list[tuple[int, int]]:
        """The (source, target) pairs drawn as the highlighted path."""
        p = self._path_nodes
        return [(p[k], p[k + 1]) for k in range(len(p) - 1)]

    def reset_view(self) -> None:
        """Zoom and pan so the whole graph is visible (in the layered layout with room for
        the token labels under the lowest row and the level names left of the rows)."""
        if not self._pos.shape[0]:
            self._vb.setRange(xRange=(-1, 1), yRange=(-1, 1), padding=0)
            return
        if self.layout_kind() != "layered" or self._node_layer is None:
            self._vb.autoRange(padding=0.05)
            return
        rect = self._vb.rect()  # the view box's size in pixels
        width, height = rect.width(), rect.height()
        left, bottom, pad = self.layered_margins()
        (x0, y0), (x1, y1) = self._pos.min(axis=0), self._pos.max(axis=0)
        if width <= left + pad + 20 or height <= bottom + pad + 20:
            self._vb.autoRange(padding=0.05)
            return
        scale = min((width - left - pad) / max(x1 - x0, 1e-9), (height - bottom - pad) / max(y1 - y0, 1e-9))
        self._vb.setRange(xRange=(x0 - left / scale, x1 + pad / scale),
                          yRange=(y0 - bottom / scale, y1 + pad / scale), padding=0)

    def _layered_aspect(self) -> float | None:
        """Width / height of the room the layered layout has on the canvas now (its
        margins left out); None while the canvas has no size yet."""
        if self._node_layer is None or not self.isVisible():
            return None
        rect = self._vb.rect()
        left, bottom, pad = self.layered_margins()
        width, height = rect.width() - left - pad, rect.height() - bottom - pad
        return width / height if width > 40 and height > 40 else None

    def layered_margins(self) -> tuple[float, float, float]:
        """Pixels kept free in the layered layout: left (the level names), bottom (the token
        labels under the lowest row: as long as the longest, at most 30% of the canvas's
        height and 110 px; longer labels are elided) and around the rest."""
        font = QtGui.QFont(self.font())
        font.setPixelSize(LabelLayer.FONT_PX)
        metrics = QtGui.QFontMetricsF(font)
        longest = max((metrics.horizontalAdvance(layered_column_text(t)) for t in self._display), default=0.0)
        node = float(self._sizes.max(initial=0.0)) / 2
        room = min(longest + 8.0, 0.3 * self._vb.rect().height(), 110.0)
        top_level = int(np.max(self._node_layer)) if self._node_layer is not None and len(self._node_layer) else 0
        left = metrics.horizontalAdvance(f"L{top_level}") + 22.0 + metrics.height() / 2
        return left, room + 6.0 + node, 12.0 + node

    def figure(self, *, include_highlight: bool = False, title: str | None = None):
        """The graph as a figure (:class:`analysis.io.figure_data.Figure`) in the layout
        drawn, from the canvas's data (not its scene): the drawn edges, nodes coloured by
        community and sized by the size metric, labels placed without overlap and never
        cut, and a legend (communities, node-size metric, edge widths). Clean by default:
        no path, source, target, selection or hover; ``include_highlight`` keeps them.
        ``title`` defaults to "Attention graph" ("" for none)."""
        metric = self.size_metric()
        hl = include_highlight
        return fd.graph_figure(
            self._labels, self._src, self._dst, self._w, self._pos, layout=self.layout_kind(),
            communities=self._communities, size_values=self._metrics[metric] if metric else None,
            size_metric=metric, metric_values=self._metrics,
            title="Attention graph" if title is None else title,
            path=self._path_nodes if hl else (), source=self._source if hl else None,
            target=self._target if hl else None, selected=self._selected if hl else None,
            weight_name="weight", metrics=figure_export.figure_metrics(),
            generated=self._generated, node_layer=self._node_layer if self.layout_kind() == "layered" else None,
        )

    def export_figure(self, path, *, width: int | None = None, dpi: float | None = None,
                      include_highlight: bool = False, title: str | None = None, fmt: str | None = None):
        """Write :meth:`figure` as PNG, SVG or PDF by the extension (or ``fmt``); see
        :func:`widgets.figure_export.write_figure`. Returns the path; ``OSError`` naming
        the reason when the file cannot be written."""
        fig = self.figure(include_highlight=include_highlight, title=title)
        return figure_export.write_figure(fig, path, width=width, dpi=dpi, fmt=fmt)

    def export_png(self, path, *, width: int | None = None, dpi: float | None = None) -> None:
        """Write the clean graph figure as PNG (``width`` pixels wide; default: its natural
        size at ``dpi``, 96 unless given); ``OSError`` naming the reason when the file
        cannot be written."""
        self.export_figure(path, width=width, dpi=dpi, fmt="png")

    def export_svg(self, path) -> None:
        """Write the clean graph figure as SVG; ``OSError`` naming the reason when it
        cannot be written."""
        self.export_figure(path, fmt="svg")

    # accessors (tests, app)
    def node_positions(self) -> np.ndarray:
        return self._pos.copy()

    def node_sizes(self) -> np.ndarray:
        """Node diameters in pixels."""
        return self._sizes.copy()

    def node_colors(self) -> list[str]:
        return [c.name() for c in self._node_qcolors()]

    def drawn_edge_count(self) -> int:
        """Edges drawn on the canvas (self-loops and, past MAX_DRAWN_EDGES, the weakest left out)."""
        return int(np.count_nonzero(self._drawn))

    def edge_count(self) -> int:
        return int(self._src.shape[0])

    def edge_bins(self) -> np.ndarray:
        """Weight bin (0 = weakest) of each edge."""
        return self._bins.copy()

    def edge_bin_counts(self) -> list[int]:
        """Edges per drawn batch (one path item per weight bin)."""
        return [item.n_items for item in self._edge_items]

    def edge_bin_pens(self) -> list[QtGui.QPen]:
        return [item.pen() for item in self._edge_items]

    def labels(self) -> list[str]:
        return list(self._labels)

    def visible_labels(self) -> list[int]:
        """Token indices whose label the last paint drew."""
        return list(self._label_layer.drawn)

    def hint_text(self) -> str:
        return self._hint.text() if not self._hint.isHidden() else ""

    def legend_text(self) -> str:
        return self._toolbar.legend_plain

    def node_tooltip(self, index: int) -> str:
        i = int(index)
        lines = [f"{self._display[i]} (#{i})"]
        if self._communities is not None:
            lines.append(f"community {int(self._communities[i])}")
        for name, values in self._metrics.items():
            lines.append(f"{name} {geometry.format_number(values[i])}")
        return "\n".join(lines)

    def view_box(self) -> pg.ViewBox:
        return self._vb

    def graphics_view(self) -> pg.GraphicsView:
        return self._glw

    def node_viewport_pos(self, index: int) -> QtCore.QPoint:
        """Where node ``index`` is drawn, in the graphics view's viewport coordinates
        (for tests that click or drag it)."""
        x, y = self._pos[int(index)]
        scene = self._vb.mapViewToScene(QtCore.QPointF(float(x), float(y)))
        return self._glw.mapFromScene(scene)

    # ------------------------------------------------------------------ handlers

    def _on_layout_picked(self, kind: str) -> None:
        if kind == self._layouts.requested:
            return
        self.set_layout(kind)
        self.layout_changed.emit(kind)

    def _on_size_picked(self, name: str) -> None:
        if (name or None) == self.size_metric():
            return
        self.set_size_metric(name or None)
        self.size_metric_changed.emit(name)

    def _on_node_hover(self, index: int) -> None:
        if index == self._hovered:
            return
        self._hovered = index
        self._nodes.setToolTip(self.node_tooltip(index) if index >= 0 else "")
        self._label_layer.update()
        self.node_hovered.emit(index)

    def _on_node_clicked(self, index: int, modifiers) -> None:
        if modifiers & Qt.KeyboardModifier.ShiftModifier:
            self.set_target(index)
            self.target_selected.emit(index)
        else:
            self.set_source(index)
            self._selected = index
            self._refresh_rings()
            self.source_selected.emit(index)
            self.token_selected.emit(index)

    def _on_node_dragged(self, index: int, pos: np.ndarray, finished: bool) -> None:
        self._pos[index] = pos
        self._layouts.remember(self._pos)
        self._refresh_all()

    def _on_view_transform_changed(self, *args) -> None:
        px = self._pixel_size()
        if px is not None and (self._pen_px is None or abs(px / self._pen_px - 1.0) > 0.05):
            self._pen_px = px
            self._edge_layer.update_pens(self._pos, px)
        self._rebuild_arrows()

    # ------------------------------------------------------------------ internals

    def _check_index(self, index):
        if index is None:
            return None
        i = int(index)
        if not 0 <= i < len(self._labels):
            raise ValueError(f"token index {i} out of range [0, {len(self._labels)})")
        return i

    def _node_at(self, pos: QtCore.QPointF) -> int:
        """Index of the node drawn under ``pos`` (view coordinates), nearest first; -1."""
        px = self._pixel_size()
        if px is None:
            return -1
        return geometry.nearest_node(self._pos, pos.x(), pos.y(), px, self._sizes)

    def _pixel_size(self) -> float | None:
        """Data units per screen pixel (aspect is locked, so one number)."""
        try:
            px, py = self._vb.viewPixelSize()
        except Exception:
            return None
        if not (px > 0 and math.isfinite(px)):
            return None
        return float(px)

    def _apply_layout(self) -> None:
        """Draw the layout asked for (or what stands in for it) and fit it in view."""
        self._update_layout_combo()
        self._pos = self._layouts.positions()
        self._refresh_all()
        self._update_hint()
        self._update_note()
        self.reset_view()

    def _update_sizes(self) -> None:
        name = self.size_metric()
        self._sizes = geometry.node_sizes(self._metrics[name] if name is not None else None, len(self._labels))
        # label priority: by the size metric, else by attention strength
        self._label_priority = geometry.label_priority(self._metrics[name] if name is not None else self._strength)

    def _brush_for(self, color: QtGui.QColor) -> QtGui.QBrush:
        key = color.rgba()
        brush = self._brushes.get(key)
        if brush is None:
            brush = self._brushes[key] = pg.mkBrush(color)
        return brush

    def _node_qcolors(self) -> list[QtGui.QColor]:
        return [QtGui.QColor(c) for c in geometry.community_colors(self._communities, len(self._labels))]

    def _forced_labels(self) -> list[int]:
        forced = []
        for i in (self._hovered, self._source, self._target, self._selected, *self._path_nodes):
            if i is not None and i >= 0 and i not in forced:
                forced.append(i)
        return forced

    def _refresh_all(self, edges: bool = True) -> None:
        """Redraw everything; with ``edges`` False the edges wait for draw_pending_edges()
        (any later full redraw, e.g. a layout change, draws them too)."""
        self._edges_pending = not edges
        self._refresh_edges()
        self._refresh_nodes()
        self._refresh_path()
        self._refresh_rings()
        self._label_layer.prepareGeometryChange()
        self._label_layer.update()

    def _kept_edges(self) -> np.ndarray:
        """The edges to draw now: none while they are pending (set_graph(edges_later=True))."""
        return np.zeros_like(self._drawn) if self._edges_pending else self._drawn

    def _refresh_edges(self) -> None:
        arc = self._layouts.drawn == "arc"
        self._edge_layer.draw_edges(self._pos, self._src, self._dst, self._bins, self._kept_edges(), arc)
        self._edge_layer.update_pens(self._pos, self._pixel_size())
        self._rebuild_arrows(force=True)

    def _rebuild_arrows(self, force: bool = False) -> None:
        redrawn = self._edge_layer.draw_arrows(
            self._pos, self._src, self._dst, self._w, self._bins, self._kept_edges(), self._sizes,
            self._layouts.drawn == "arc", self._pixel_size(), force,
        )
        if redrawn and self._path_nodes:  # the path's arrowheads follow the zoom too
            self._refresh_path()

    def _refresh_path(self) -> None:
        self._edge_layer.draw_path(
            self._pos, self._sizes, self.highlighted_edges(), self._layouts.drawn == "arc", self._pixel_size()
        )

    def _refresh_nodes(self) -> None:
        if not self._labels:
            self._nodes.setData(x=[], y=[])
            return
        # One brush object per colour and one pen, reused: pyqtgraph's symbol atlas keys
        # symbols by object identity, so fresh brushes re-rendered all 512 symbols (~40 ms)
        # on every refresh and grew the atlas without bound.
        self._nodes.setData(
            x=self._pos[:, 0],
            y=self._pos[:, 1],
            size=self._sizes,
            brush=[self._brush_for(c) for c in self._node_qcolors()],
            pen=self._node_pen,
            symbol="o",
        )

    def _refresh_rings(self) -> None:
        self._rings.set_rings(self._pos, self._sizes, self._path_nodes, self._selected, self._source, self._target)
        self._generated_rings.set_generated(self._pos, self._sizes, self._generated)
        self._label_layer.update()

    def _update_hint(self) -> None:
        text = chrome.hint_for(len(self._labels), self._src.shape[0], self.layout_pending(), self._empty_hint)
        self._hint.show_text(text, at_top=bool(self._labels))

    def _update_note(self) -> None:
        note = chrome.note_for(
            layered_missing=self._layouts.requested == "layered" and self._node_layer is None,
            has_edges=bool(self._labels) and self._src.shape[0] > 0,
            arc=self._layouts.drawn == "arc",
            drawn=self.drawn_edge_count(),
            total=int(np.count_nonzero(self._src != self._dst)),
        )
        self._note.setText(note)
        self._note.setVisible(bool(note))

    def _update_legend(self) -> None:
        def name(i):
            return f"{self._display[i]} (#{i})" if i is not None else None

        self._toolbar.show_ends(name(self._source), name(self._target), bool(self._labels))

    def _update_layout_combo(self) -> None:
        requested = self._layouts.requested
        layered = self._node_layer is not None or requested == "layered" or self._layered_available
        self._toolbar.show_layout(requested, layered)

    def _update_size_combo(self) -> None:
        self._toolbar.show_metrics(list(self._metrics), self.size_metric())
