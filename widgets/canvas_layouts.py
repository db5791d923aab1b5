"""Which layout the graph canvas draws, and the node positions it has for each (no Qt).

The canvas computes only the cheap layouts itself ("arc", "circular", "layered": O(n),
from :mod:`analysis.graph.layout`). The force layout is O(n^2 x iterations) and comes
only from outside: the app computes it in its worker and hands it in. Until it has, a
request for "force" is answered with the layout drawn so far (the arc if what was drawn
was another graph's force layout), and :attr:`CanvasLayouts.pending` is True.
"""

from __future__ import annotations

import numpy as np

from analysis.graph.layout import arc_layout, circular_layout, layered_layout
from widgets.canvas_geometry import check_positions, layer_ranks

__all__ = ["LAYOUTS", "LOCAL_LAYOUTS", "CanvasLayouts", "layered_row_gap"]

LAYOUTS = ("arc", "circular", "force", "layered")
#: layouts computed here (O(n)); the others are only handed in
LOCAL_LAYOUTS = ("arc", "circular", "layered")


def layered_row_gap(node_layer: np.ndarray, aspect: float | None) -> float | None:
    """The distance between the rows of the layered layout (one column = 1) at which the
    graph is ``aspect`` times as wide as it is high, at least one column apart; None
    (the layout's default) without an aspect or with a single row.

    Examples
    --------
    >>> layered_row_gap(np.repeat(np.arange(3), 41), 4.0)  # 41 columns, 3 rows, 4:1
    5.0
    """
    if aspect is None or not aspect > 0 or node_layer is None or len(node_layer) == 0:
        return None
    rows = len(np.unique(node_layer))
    columns = int(np.max(layer_ranks(node_layer))) + 1
    if rows < 2:
        return None
    return max(1.0, (columns - 1) / (rows - 1) / float(aspect))


class CanvasLayouts:
    """The requested layout, the one drawn and the positions known for the current graph."""

    def __init__(self):
        self.requested = "arc"
        self.drawn = "arc"
        #: width / height (pixels) the layered layout should fill; None: the layout's own
        #: proportions (rows 0.6 x the columns' width apart in all). Read when a graph's
        #: layered positions are first computed.
        self.layered_aspect: float | None = None
        self._n = 0
        self._node_layer: np.ndarray | None = None
        self._known: dict[str, np.ndarray] = {}

    @property
    def pending(self) -> bool:
        """True while the requested layout is waiting to be handed in."""
        return self._n > 0 and self.requested != self.drawn and self.requested not in LOCAL_LAYOUTS

    def new_graph(self, n: int, node_layer: np.ndarray | None,
                  positions: dict[str, np.ndarray] | None = None) -> None:
        """Forget the positions of the previous graph; keep those of ``positions`` that fit
        (a known kind, shape ``[n, 2]``, finite), ignore the rest."""
        self._n = int(n)
        self._node_layer = node_layer
        self._known = {}
        for kind, pos in (positions or {}).items():
            try:
                if kind in LAYOUTS:
                    self._known[kind] = check_positions(pos, self._n)
            except ValueError:
                continue

    def request(self, kind: str) -> None:
        if kind not in LAYOUTS:
            raise ValueError(f"unknown layout {kind!r}; expected one of {LAYOUTS}")
        self.requested = kind

    def give(self, kind: str, positions) -> bool:
        """Positions for ``kind`` (``ValueError`` if they do not fit); True if that changes
        what should be drawn (``kind`` is requested or drawn)."""
        if kind not in LAYOUTS:
            raise ValueError(f"unknown layout {kind!r}; expected one of {LAYOUTS}")
        self._known[kind] = check_positions(positions, self._n)
        return kind in (self.requested, self.drawn)

    def remember(self, positions: np.ndarray) -> None:
        """The drawn layout's positions changed (a node was dragged)."""
        self._known[self.drawn] = positions

    def positions(self) -> np.ndarray:
        """Positions to draw for the requested layout; sets :attr:`drawn` to their kind.

        "layered" without node layers falls back to the arc; a force layout not handed
        in yet to the layout drawn so far."""
        kind = self.requested
        if kind not in self._known and kind not in LOCAL_LAYOUTS:
            kind = self.drawn if self.drawn in LOCAL_LAYOUTS else "arc"
        if kind == "layered" and self._node_layer is None:
            kind = "arc"
        self.drawn = kind
        if kind not in self._known:
            if kind == "arc":
                pos = arc_layout(self._n)
            elif kind == "circular":
                pos = circular_layout(self._n)
            else:  # tokens of a layered graph are listed layer by layer
                pos = layered_layout(self._node_layer, layer_ranks(self._node_layer),
                                     row_gap=layered_row_gap(self._node_layer, self.layered_aspect))
            self._known[kind] = np.array(pos, dtype=np.float64)
        return self._known[kind]
