"""AttentionHeatmap: what it shows and what it emits (pytest-qt, offscreen)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QImage, QMouseEvent
from PySide6.QtWidgets import QApplication

from widgets.colormaps import SIGNED_COLORMAP
from widgets.heatmap import (
    COLORMAPS,
    EMPTY_HINT,
    LOG_FLOOR,
    NO_TOKENS_HINT,
    SIGNED_LOG_NOTE,
    AttentionHeatmap,
)

pytestmark = [
    pytest.mark.qt_log_level_fail("WARNING"),
    # the offscreen platform says this whenever a top-level window is shown
    pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints"),
]

WORDS = ["[CLS]", "the", "cat", "sat", "on", "the", "mat", "[SEP]"]


def _attention(t: int, seed: int = 0, causal: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.random((t, t)).astype(np.float32) ** 3
    if causal:
        a = np.tril(a)
    return a / a.sum(axis=1, keepdims=True)


@pytest.fixture
def heatmap(qtbot):
    w = AttentionHeatmap()
    qtbot.addWidget(w)
    w.resize(800, 700)
    w.show()
    qtbot.waitExposed(w)
    return w


def _settle():
    QApplication.processEvents()


def _move(view, pos: QPoint) -> None:
    """Deliver a plain mouse move (no button) to the graphics view's viewport."""
    vp = view.viewport()
    ev = QMouseEvent(
        QMouseEvent.Type.MouseMove,
        QPointF(pos),
        QPointF(vp.mapToGlobal(pos)),
        Qt.MouseButton.NoButton,
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(vp, ev)


def test_empty_state_shows_hint(heatmap):
    assert heatmap.is_empty()
    assert heatmap.current_matrix() is None
    hint = heatmap.findChild(type(heatmap._hint), "heatmapEmptyHint")
    assert hint.isVisible() and hint.text() == EMPTY_HINT
    assert not heatmap.graphics_view().isVisible()
    with pytest.raises(ValueError):
        heatmap.export_svg("/tmp/never.svg")


def test_image_equals_matrix_and_labels(heatmap):
    a = _attention(len(WORDS))
    heatmap.set_matrix(a, WORDS, WORDS, title="Layer 0 · head 1")
    _settle()
    assert not heatmap.is_empty()
    assert heatmap.graphics_view().isVisible()
    np.testing.assert_array_equal(heatmap.current_matrix(), a.astype(np.float32))
    img = heatmap.image_data()
    assert img.dtype == np.float32 and img.shape == a.shape
    np.testing.assert_array_equal(img, a)  # row-major: image row i is query i
    assert heatmap.levels() == pytest.approx((0.0, float(a.max())))
    assert heatmap.row_labels() == tuple(WORDS)
    assert heatmap.col_labels() == tuple(WORDS)
    left, bottom = heatmap.axes()
    # 8 tokens on ~600 px: every label is drawn, without index prefix
    assert left.visible_ticks() == list(range(8))
    assert bottom.visible_ticks() == list(range(8))
    assert heatmap._title_item.text == "Layer 0 · head 1"


def test_cross_attention_shape_and_bad_labels(heatmap):
    a = np.random.default_rng(1).random((3, 5)).astype(np.float32)
    heatmap.set_matrix(a, ["a", "b", "c"], list("vwxyz"))
    np.testing.assert_array_equal(heatmap.image_data(), a)
    (x0, x1), (y0, y1) = heatmap.view_range()
    assert (x0, x1) == pytest.approx((-0.5, 4.5), abs=1e-6)
    assert (min(y0, y1), max(y0, y1)) == pytest.approx((-0.5, 2.5), abs=1e-6)
    with pytest.raises(ValueError):
        heatmap.set_matrix(a, ["a", "b"], list("vwxyz"))


def test_masked_cells_are_marked_not_weak(heatmap):
    t = 6
    a = _attention(t, causal=True)
    masked = ~np.tril(np.ones((t, t), bool))
    heatmap.set_matrix(a, WORDS[:t], WORDS[:t], masked=masked)
    img = heatmap.image_data()
    assert np.isnan(img[masked]).all()  # transparent pixels over the hatched area
    np.testing.assert_array_equal(img[~masked], a[~masked])
    assert heatmap._masked_hatch.isVisible()
    assert "masked (causal)" in heatmap.cell_text(1, 4)
    assert "masked" not in heatmap.cell_text(4, 1)


def test_labels_thinned_without_overlap_at_512(heatmap):
    t = 512
    labels = [f"w{i}" for i in range(t)]
    heatmap.set_matrix(_attention(t), labels, labels)
    heatmap.grab()  # paints the axes
    for axis in heatmap.axes():
        ticks = axis.visible_ticks()
        geom = axis.geometry()
        length = geom.height() if axis.orientation == "left" else geom.width()
        px_per_cell = length / t
        gaps = np.diff(ticks) * px_per_cell
        assert 5 <= len(ticks) < t / 4
        assert gaps.min() >= axis.label_extent()  # neighbouring labels never overlap
        assert len(ticks) * axis.label_extent() <= length + axis.label_extent()
        assert axis.tick_step() in (10, 20, 50)
    # labels of long sequences carry their index
    assert heatmap.axes()[0]._texts[12] == "12 w12"


def test_labels_recomputed_on_zoom(heatmap):
    t = 512
    labels = [f"w{i}" for i in range(t)]
    heatmap.set_matrix(_attention(t), labels, labels)
    heatmap.grab()
    left = heatmap.axes()[0]
    step_full = left.tick_step()
    heatmap._vb.setRange(xRange=(100, 120), yRange=(100, 120), padding=0)
    heatmap.grab()
    assert left.tick_step() < step_full
    assert set(left.visible_ticks()) <= set(range(100, 121))
    heatmap.reset_view()
    heatmap.grab()
    assert left.tick_step() == step_full


def test_hover_tooltip_and_signal(heatmap, qtbot):
    a = np.full((8, 8), 0.01, np.float32)
    a[2, 1] = 0.231
    heatmap.set_matrix(a, WORDS, WORDS)
    _settle()
    pos = heatmap.cell_center_in_view(2, 1)
    with qtbot.waitSignal(heatmap.cell_hovered, timeout=1000) as blocker:
        _move(heatmap.graphics_view(), pos)
    assert blocker.args == [2, 1]
    text = heatmap.hover_text()
    assert text.splitlines()[0] == "cat -> the: 0.231"
    assert "query 2 -> key 1" in text


def test_click_cell_selects_query_token(heatmap, qtbot):
    heatmap.set_matrix(_attention(8), WORDS, WORDS)
    _settle()
    pos = heatmap.cell_center_in_view(5, 2)
    cells = []
    heatmap.cell_clicked.connect(lambda r, c: cells.append((r, c)))
    with qtbot.waitSignal(heatmap.token_selected, timeout=1000) as blocker:
        qtbot.mouseClick(heatmap.graphics_view().viewport(), Qt.MouseButton.LeftButton, pos=pos)
    assert blocker.args == [5]
    assert cells == [(5, 2)]
    assert heatmap.selected_token() == 5
    assert heatmap._row_rect.isVisible() and heatmap._col_rect.isVisible()
    assert heatmap._row_rect.rect().top() == pytest.approx(4.5)
    assert heatmap._col_rect.rect().left() == pytest.approx(4.5)


def test_click_axis_label_selects_token(heatmap, qtbot):
    heatmap.set_matrix(_attention(8), WORDS, WORDS)
    _settle()
    view = heatmap.graphics_view()
    left, bottom = heatmap.axes()
    cell = heatmap.cell_center_in_view(3, 6)
    # a point on the left axis at row 3, and on the bottom axis at column 6
    left_x = view.mapFromScene(left.sceneBoundingRect().center()).x()
    bottom_y = view.mapFromScene(bottom.sceneBoundingRect().center()).y()
    with qtbot.waitSignal(heatmap.token_selected, timeout=1000) as blocker:
        qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(left_x, cell.y()))
    assert blocker.args == [3]
    with qtbot.waitSignal(heatmap.token_selected, timeout=1000) as blocker:
        qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(cell.x(), bottom_y))
    assert blocker.args == [6]
    assert heatmap.selected_token() == 6


def test_select_token_programmatically_does_not_emit(heatmap, qtbot):
    heatmap.set_matrix(_attention(8), WORDS, WORDS)
    with qtbot.assertNotEmitted(heatmap.token_selected):
        heatmap.select_token(3)
        heatmap.select_token(None)
    assert heatmap.selected_token() is None
    assert not heatmap._row_rect.isVisible()
    heatmap.select_token(3)
    assert heatmap.axes()[0]._selected == 3  # its label is drawn in bold
    with pytest.raises(IndexError):
        heatmap.select_token(99)


def test_highlight_path(heatmap):
    heatmap.set_matrix(_attention(8), WORDS, WORDS)
    heatmap.highlight_path([7, 3, 0])
    assert heatmap.path_cells() == [(7, 3), (3, 0)]
    br = heatmap._path_item.path().boundingRect()
    # cells (row 7, col 3) and (row 3, col 0): x spans cols 0..3, y rows 3..7
    assert (br.left(), br.right()) == pytest.approx((-0.5, 3.5))
    assert (br.top(), br.bottom()) == pytest.approx((2.5, 7.5))
    heatmap.highlight_path([])
    assert heatmap.path_cells() == []
    assert heatmap._path_item.path().isEmpty()


def test_log_scale_changes_image_and_colorbar(heatmap):
    a = _attention(8)
    a[0, 0] = 0.0
    heatmap.set_matrix(a, WORDS, WORDS)
    heatmap.set_log_scale(True)
    img = heatmap.image_data()
    np.testing.assert_allclose(img, np.log10(np.maximum(a, LOG_FLOOR)), rtol=1e-6)
    assert img[0, 0] == pytest.approx(math.log10(LOG_FLOOR))
    assert heatmap.levels() == pytest.approx((math.log10(LOG_FLOOR), math.log10(a.max())))
    assert "log" in heatmap._colorbar.getAxis("left").labelText
    # hover text still reports the weight itself
    assert heatmap.cell_text(1, 2).split(": ")[1].startswith(f"{a[1, 2]:.3f}"[:4])
    heatmap.set_log_scale(False)
    np.testing.assert_array_equal(heatmap.image_data(), a)
    assert "log" not in heatmap._colorbar.getAxis("left").labelText


def test_fixed_levels_and_colormaps(heatmap):
    heatmap.set_matrix(_attention(8), WORDS, WORDS)
    heatmap.set_levels((0.0, 1.0))
    assert heatmap.levels() == (0.0, 1.0)
    heatmap.set_levels(None)
    assert heatmap.levels()[1] == pytest.approx(float(heatmap.current_matrix().max()))
    assert {"viridis", "magma", "inferno", "cividis"} <= set(COLORMAPS)
    for name in COLORMAPS:
        heatmap.set_colormap(name)
        assert heatmap.colormap() == name
    with pytest.raises(ValueError):
        heatmap.set_colormap("jet")


def test_zoom_kept_on_head_switch_and_reset(heatmap):
    t = 64
    labels = [f"t{i}" for i in range(t)]
    heatmap.set_matrix(_attention(t, 0), labels, labels)
    heatmap._vb.setRange(xRange=(10, 20), yRange=(10, 20), padding=0)
    zoomed = heatmap.view_range()
    heatmap.set_matrix(_attention(t, 1), labels, labels)  # same tokens, another head
    assert heatmap.view_range()[0] == pytest.approx(zoomed[0])
    heatmap.reset_view()
    assert heatmap.view_range()[0] == pytest.approx((-0.5, t - 0.5))


def test_double_click_resets_view(heatmap, qtbot):
    t = 32
    labels = [f"t{i}" for i in range(t)]
    heatmap.set_matrix(_attention(t), labels, labels)
    heatmap._vb.setRange(xRange=(10, 20), yRange=(10, 20), padding=0)
    _settle()
    pos = heatmap.cell_center_in_view(15, 15)
    vp = heatmap.graphics_view().viewport()
    # what a real double-click delivers: press, release, double-click, release
    qtbot.mouseClick(vp, Qt.MouseButton.LeftButton, pos=pos)
    qtbot.mouseDClick(vp, Qt.MouseButton.LeftButton, pos=pos)
    qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, pos=pos)
    _settle()
    assert heatmap.view_range()[0] == pytest.approx((-0.5, t - 0.5))


def test_export_png_width_and_dpi(heatmap, tmp_path):
    heatmap.set_matrix(_attention(8), WORDS, WORDS, title="export")
    _settle()
    path = tmp_path / "heat.png"
    heatmap.export_png(path, width=1200, dpi=300)
    img = QImage(str(path))
    assert not img.isNull()
    assert img.width() == 1200
    assert img.height() > 300
    assert img.dotsPerMeterX() == round(300 / 0.0254)
    heatmap.export_png(tmp_path / "default.png")
    assert QImage(str(tmp_path / "default.png")).width() > 100


def test_export_svg(heatmap, tmp_path):
    heatmap.set_matrix(_attention(8), WORDS, WORDS)
    _settle()
    path = tmp_path / "heat.svg"
    heatmap.export_svg(path)
    text = path.read_text(encoding="utf-8")
    assert "<svg" in text
    assert text.count('class="cell"') == 64 and "<image" not in text  # cells are vector rectangles
    assert "key (attended to)" in text  # axis titles are text


def test_export_to_unwritable_path_raises_oserror(heatmap, tmp_path):
    heatmap.set_matrix(_attention(8), WORDS, WORDS)
    _settle()
    missing = tmp_path / "no" / "such" / "dir" / "heat.png"
    with pytest.raises(OSError, match="Cannot write PNG"):
        heatmap.export_png(missing)
    with pytest.raises(OSError, match="Cannot write SVG"):
        heatmap.export_svg(tmp_path / "no" / "heat.svg")
    with pytest.raises(OSError):
        heatmap.export_png(tmp_path)  # a directory


def test_clear_returns_to_empty_state(heatmap):
    heatmap.set_matrix(_attention(8), WORDS, WORDS)
    heatmap.clear()
    assert heatmap.is_empty()
    assert heatmap.row_labels() == ()


def _hint(heatmap):
    return heatmap.findChild(type(heatmap._hint), "heatmapEmptyHint")


def test_signed_values_get_a_diverging_map_centred_at_zero(heatmap):
    rng = np.random.default_rng(4)
    scores = rng.normal(size=(8, 8)).astype(np.float32)
    scores[3, 5] = -2.5  # the largest magnitude is negative
    heatmap.set_matrix(scores, WORDS, WORDS, signed=True)
    m = float(np.abs(scores).max())
    assert heatmap.levels() == pytest.approx((-m, m))
    np.testing.assert_array_equal(heatmap.image_data(), scores)
    assert heatmap.is_signed() and heatmap.shown_colormap() == SIGNED_COLORMAP
    assert heatmap.colormap() == "viridis"  # the person's choice is kept for later
    lut = heatmap._colorbar.colorMap().getLookupTable(0.0, 1.0, 3, alpha=False, mode="byte")
    low, mid, high = (tuple(int(v) for v in row) for row in lut)
    assert low[2] > low[0] and high[0] > high[2]  # blue below zero, red above
    assert min(mid) > 200  # (near) white at zero
    assert "signed" in heatmap._colorbar.getAxis("left").labelText
    assert heatmap.cell_text(3, 5).split(": ")[1].startswith("-2.500")
    # an unsigned matrix afterwards: the chosen map and 0..max again
    a = _attention(8)
    heatmap.set_matrix(a, WORDS, WORDS)
    assert not heatmap.is_signed() and heatmap.shown_colormap() == "viridis"
    assert heatmap.levels() == pytest.approx((0.0, float(a.max())))


def test_signed_values_turn_the_log_scale_off_and_say_why(heatmap):
    scores = np.linspace(-1, 3, 64, dtype=np.float32).reshape(8, 8)
    heatmap.set_log_scale(True)
    heatmap.set_matrix(scores, WORDS, WORDS, signed=True)
    assert not heatmap.log_scale() and not heatmap.log_scale_available()
    np.testing.assert_array_equal(heatmap.image_data(), scores)  # linear, not log10
    assert heatmap.levels() == pytest.approx((-3.0, 3.0))
    assert heatmap.log_scale_note() == SIGNED_LOG_NOTE and "signed" in SIGNED_LOG_NOTE
    assert heatmap._colorbar.toolTip() == SIGNED_LOG_NOTE
    assert "log" not in heatmap._colorbar.getAxis("left").labelText
    heatmap.set_matrix(np.abs(scores), WORDS, WORDS)  # the request was remembered
    assert heatmap.log_scale() and heatmap.log_scale_note() == ""
    assert heatmap._colorbar.toolTip() == ""


def test_explicit_levels(heatmap):
    a = _attention(8)
    heatmap.set_matrix(a, WORDS, WORDS, levels=(0.0, 0.5))
    assert heatmap.levels() == (0.0, 0.5)
    heatmap.set_levels((0.0, 1.0))  # this matrix's own levels still win
    assert heatmap.levels() == (0.0, 0.5)
    heatmap.set_matrix(a, WORDS, WORDS)  # without: the common scale of set_levels
    assert heatmap.levels() == (0.0, 1.0)
    heatmap.set_matrix(a - 0.1, WORDS, WORDS, signed=True, levels=(-1.0, 2.0))
    assert heatmap.levels() == (-1.0, 2.0)
    for bad in ((1.0, 0.5), (0.0, float("nan"))):
        with pytest.raises(ValueError):
            heatmap.set_matrix(a, WORDS, WORDS, levels=bad)


def test_a_matrix_without_tokens_shows_the_empty_state(heatmap):
    """Emoji-only text with special tokens hidden leaves a view of no tokens: that used
    to raise ZeroDivisionError in set_matrix."""
    heatmap.set_matrix(_attention(8), WORDS, WORDS)
    heatmap.select_token(2)
    heatmap.set_matrix(np.zeros((0, 0), np.float32), [], [])
    assert heatmap.is_empty() and heatmap.current_matrix() is None
    assert _hint(heatmap).isVisible() and _hint(heatmap).text() == NO_TOKENS_HINT
    heatmap.set_matrix(np.zeros((0, 3), np.float32), [], ["a", "b", "c"], signed=True)
    assert heatmap.is_empty() and not heatmap.is_signed()
    heatmap.grab()
    heatmap.set_matrix(_attention(8), WORDS, WORDS)
    assert not heatmap.is_empty() and heatmap.graphics_view().isVisible()
    heatmap.clear()
    assert _hint(heatmap).text() == EMPTY_HINT


def test_all_zero_and_all_masked_matrices(heatmap):
    zeros = np.zeros((8, 8), np.float32)
    heatmap.set_matrix(zeros, WORDS, WORDS)
    assert heatmap.levels() == (0.0, 1.0)  # a readable colour bar, not 0..1e-12
    heatmap.set_matrix(zeros, WORDS, WORDS, signed=True)
    assert heatmap.levels() == (-1.0, 1.0)
    nan = np.full((8, 8), np.nan, np.float32)
    heatmap.set_matrix(nan, WORDS, WORDS)
    assert heatmap.levels() == (0.0, 1.0) and heatmap._masked_hatch.isVisible()
    heatmap.set_log_scale(True)
    heatmap.set_matrix(zeros, WORDS, WORDS)
    heatmap.grab()
    assert not heatmap.is_empty()


def test_widgets_do_not_import_torch():
    """The heatmap, head grid and token view stay free of torch/transformers."""
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys; import widgets.heatmap, widgets.head_grid, widgets.token_view; "
        "bad = [m for m in ('torch', 'transformers') if m in sys.modules]; "
        "assert not bad, bad"
    )
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True, timeout=60)
