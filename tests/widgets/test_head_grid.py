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
