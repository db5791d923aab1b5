"""HeadOverview: one mosaic of layer x head thumbnails; click and hover."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

from widgets.colormaps import MASKED_BACKGROUND
from widgets.head_grid import EMPTY_HINT, HeadOverview, format_head_tooltip

pytestmark = [
    pytest.mark.qt_log_level_fail("WARNING"),
    pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints"),
]

L, H, T = 6, 12, 8


def _thumbs(seed=0):
    rng = np.random.default_rng(seed)
    a = rng.random((L, H, T, T)).astype(np.float32)
    return a / a.sum(-1, keepdims=True)


def _stats():
    ent = np.arange(L * H, dtype=float).reshape(L, H) / 10
    return {
        "entropy": ent,
        "special_share": np.full((L, H), 0.25),
        "mean_distance": np.full((L, H), 3.5),
    }


@pytest.fixture
def grid(qtbot):
    w = HeadOverview()
    qtbot.addWidget(w)
    w.resize(700, 420)
    w.show()
    qtbot.waitExposed(w)
    return w


def test_empty_state(grid):
    assert grid.is_empty()
    hint = grid.findChild(type(grid._hint), "headOverviewEmptyHint")
    assert hint.isVisible() and hint.text() == EMPTY_HINT


def test_one_mosaic_image(grid):
    grid.set_heads(_thumbs(), _stats())
    QApplication.processEvents()
    assert grid.grid_shape() == (L, H)
    m = grid.mosaic()
    assert m.dtype == np.uint8 and m.ndim == 3 and m.shape[2] == 4
    gap = grid._gap
    assert m.shape[:2] == (L * (T + gap) - gap, H * (T + gap) - gap)
    # gaps are transparent, tiles opaque
    rows, cols = grid.tile_pixels(2, 5)
    assert (m[rows, cols, 3] == 255).all()
    assert (m[rows.stop : rows.stop + gap, cols, 3] == 0).all()
    # only one image item in the plot: no per-head widgets
    from pyqtgraph import ImageItem

    assert sum(isinstance(i, ImageItem) for i in grid._plot.items) == 1


def test_tile_brightest_where_head_attends_most(grid):
    th = np.zeros((L, H, T, T), np.float32)
    th[3, 7, 4, 1] = 1.0
    th[0, 0, 0, 0] = 0.5
    grid.set_heads(th)
    rows, cols = grid.tile_pixels(3, 7)
    tile = grid.mosaic()[rows, cols, :3].astype(int).sum(-1)
    assert np.unravel_index(tile.argmax(), tile.shape) == (4, 1)


def test_masked_tiles_are_neutral(grid):
    grid.set_heads(np.tril(_thumbs()), masked=True)
    rows, cols = grid.tile_pixels(1, 1)
    tile = grid.mosaic()[rows, cols]
    upper = np.triu(np.ones((T, T), bool), k=1)
    grey = (MASKED_BACKGROUND.red(), MASKED_BACKGROUND.green(), MASKED_BACKGROUND.blue())
    assert (tile[upper][:, :3] == grey).all()
    assert not (tile[~upper][:, :3] == grey).all(axis=1).any()


def test_click_tile_emits_layer_and_head(grid, qtbot):
    grid.set_heads(_thumbs(), _stats())
    QApplication.processEvents()
    pos = grid.tile_center_in_view(2, 5)
    with qtbot.waitSignal(grid.head_selected, timeout=1000) as blocker:
        qtbot.mouseClick(grid.graphics_view().viewport(), Qt.MouseButton.LeftButton, pos=pos)
    assert blocker.args == [2, 5]
    assert grid.current() == (2, 5)


def test_set_current_frames_tile_without_emitting(grid, qtbot):
    grid.set_heads(_thumbs())
    with qtbot.assertNotEmitted(grid.head_selected):
        grid.set_current(4, 11)
    assert grid._frame.isVisible()
    r = grid._frame.rect()
    assert (r.left(), r.top()) == (11, 4)
    grid.set_current(None)
    assert not grid._frame.isVisible()


def test_hover_tooltip_with_stats(grid, qtbot):
    grid.set_heads(_thumbs(), _stats())
    QApplication.processEvents()
    pos = grid.tile_center_in_view(3, 7)
    vp = grid.graphics_view().viewport()
    ev = QMouseEvent(
        QMouseEvent.Type.MouseMove,
        QPointF(pos),
        QPointF(vp.mapToGlobal(pos)),
        Qt.MouseButton.NoButton,
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
    )
    with qtbot.waitSignal(grid.head_hovered, timeout=1000) as blocker:
        QApplication.sendEvent(vp, ev)
    assert blocker.args == [3, 7]
    lines = grid.hover_text().splitlines()
    assert lines[0] == "Layer 3 · head 7"
    assert "entropy: 4.30 nats" in lines
    assert "attention to special tokens: 25.0 %" in lines
    assert "mean attention distance: 3.5 tokens" in lines


def test_tooltip_without_stats_and_bad_input(grid):
    assert format_head_tooltip(0, 1, None) == "Layer 0 · head 1"
    with pytest.raises(ValueError):
        grid.set_heads(np.zeros((2, 3, 4, 5)))
    with pytest.raises(ValueError):
        grid.set_heads(_thumbs(), {"entropy": np.zeros((2, 2))})


def test_colormap_is_honoured_on_screen_and_in_exports(grid, tmp_path):
    from widgets.colormaps import lookup_table

    th = np.zeros((L, H, T, T), np.float32)
    th[:, :, 0, 0] = 1.0  # every tile: one cell at its maximum, the rest 0
    grid.set_heads(th)
    rows, cols = grid.tile_pixels(1, 1)
    viridis_top = tuple(grid.mosaic()[rows, cols][0, 0, :3])
    grid.set_colormap("magma")
    assert grid.colormap() == "magma"
    magma = lookup_table("magma")
    tile = grid.mosaic()[rows, cols]
    assert tuple(tile[0, 0, :3]) == tuple(magma[-1, :3]) != viridis_top
    assert tuple(tile[1, 1, :3]) == tuple(magma[0, :3])
    svg = grid.export_figure(tmp_path / "heads.svg").read_text(encoding="utf-8")
    hexes = {f"#{r:02x}{g:02x}{b:02x}" for r, g, b in magma[[0, -1], :3]}
    assert all(h in svg for h in hexes) and "#fde725" not in svg  # magma's ends, not viridis' yellow


def test_head_table_lists_every_head_and_sorts_numerically(grid, qtbot):
    stats = _stats()
    stats["entropy"] = np.random.default_rng(3).random((L, H)) * 12  # values 0..12: text order != numeric
    grid.set_heads(_thumbs(), stats)
    table = grid.head_table()
    assert table.isVisible() and table.model().rowCount() == L * H
    rows = grid.head_table_rows()
    assert rows[0][:2] == (0, 0) and rows[-1][:2] == (L - 1, H - 1)  # layer then head order at first
    table.sortByColumn(2, Qt.SortOrder.DescendingOrder)
    values = [r[2] for r in grid.head_table_rows()]
    assert values == sorted(values, reverse=True)
    layer, head = grid.head_table_rows()[0][:2]
    assert stats["entropy"][layer, head] == max(values)
    headers = [table.model().headerData(c, Qt.Orientation.Horizontal) for c in range(table.model().columnCount())]
    assert headers == ["layer", "head", "entropy", "special %", "distance"]


def test_clicking_a_table_row_opens_that_head(grid, qtbot):
    grid.set_heads(_thumbs(), _stats())
    QApplication.processEvents()
    table = grid.head_table()
    index = table.model().index(2 * H + 5, 0)  # layer 2, head 5 in the initial order
    rect = table.visualRect(index)
    table.scrollTo(index)
    rect = table.visualRect(index)
    with qtbot.waitSignal(grid.head_selected, timeout=1000) as blocker:
        qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert blocker.args == [2, 5] and grid.current() == (2, 5)


def test_head_table_exports_csv(grid, tmp_path):
    import csv

    with pytest.raises(ValueError):
        grid.export_head_table_csv(tmp_path / "none.csv")
    stats = _stats()
    grid.set_heads(_thumbs(), stats)
    path = tmp_path / "heads.csv"
    grid.export_head_table_csv(path)
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["layer", "head", "entropy", "special_share", "mean_distance"]
    assert len(rows) == 1 + L * H
    assert rows[1 + 3 * H + 7][:2] == ["3", "7"]
    assert float(rows[1 + 3 * H + 7][2]) == pytest.approx(stats["entropy"][3, 7], rel=1e-6)  # 7 digits, as every file
    with pytest.raises(OSError, match="does not exist"):
        grid.export_head_table_csv(tmp_path / "no" / "heads.csv")


def test_tiles_fill_the_default_dock(qtbot):
    """At the Heads dock's default size in a 1600 x 1000 window (352 x 324 today), 6 x 12
    heads get at least 28 px per tile (tile and its gap), with the table under them."""
    w = HeadOverview()
    qtbot.addWidget(w)
    w.resize(352, 324)
    w.show()
    qtbot.waitExposed(w)
    rng = np.random.default_rng(0)
    w.set_heads(rng.random((6, 12, 32, 32)).astype(np.float32), _stats_for(6, 12))
    QApplication.processEvents()
    assert w.tile_pitch_px() >= 28
    assert w.head_table().isVisible() and w.head_table().height() >= 80
    w.resize(352, 600)  # more room: the tiles keep the width, the table gets the rest
    QApplication.processEvents()
    assert w.tile_pitch_px() >= 28 and w.head_table().height() > 300


def _stats_for(n_layers, n_heads):
    return {"entropy": np.ones((n_layers, n_heads)), "special_share": np.zeros((n_layers, n_heads)),
            "mean_distance": np.ones((n_layers, n_heads))}
