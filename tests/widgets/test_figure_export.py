"""widgets.figure_export: one PNG/SVG path for the heatmap and the graph canvas."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PySide6.QtGui import QColor, QImage
from PySide6.QtWidgets import QApplication

from widgets import figure_export
from widgets.graph_canvas import GraphCanvas
from widgets.heatmap import AttentionHeatmap

pytestmark = [
    pytest.mark.qt_log_level_fail("WARNING"),
    pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints"),
]

WORDS = ["the", "cat", "sat", "on", "the", "mat"]


@pytest.fixture
def heatmap(qtbot):
    w = AttentionHeatmap()
    qtbot.addWidget(w)
    w.resize(700, 600)
    w.show()
    qtbot.waitExposed(w)
    a = np.random.default_rng(0).random((6, 6)).astype(np.float32)
    w.set_matrix(a / a.sum(1, keepdims=True), WORDS, WORDS, title="export")
    QApplication.processEvents()
    return w


@pytest.fixture
def canvas(qtbot):
    w = GraphCanvas()
    qtbot.addWidget(w)
    w.resize(700, 500)
    w.show()
    qtbot.waitExposed(w)
    w.set_graph(WORDS, np.array([0, 1, 2, 3, 4]), np.array([1, 2, 3, 4, 5]), np.array([0.9, 0.5, 0.3, 0.7, 0.2]))
    w.set_layout("circular")
    QApplication.processEvents()
    return w


@pytest.mark.parametrize("which", ["heatmap", "canvas"])
def test_both_widgets_write_both_formats(request, tmp_path, which):
    widget = request.getfixturevalue(which)
    png, svg = tmp_path / f"{which}.png", tmp_path / f"{which}.svg"
    widget.export_png(png, width=800)
    widget.export_svg(svg)
    image = QImage(str(png))
    assert not image.isNull() and image.width() == 800
    text = svg.read_text(encoding="utf-8")
    assert text.lstrip().startswith("<?xml") and "<svg" in text and "</svg>" in text
    assert "mat" in text  # token labels stay text


@pytest.mark.parametrize("which", ["heatmap", "canvas"])
def test_both_widgets_explain_unwritable_paths_alike(request, tmp_path, which):
    widget = request.getfixturevalue(which)
    missing = tmp_path / "no" / "such" / "g.png"
    with pytest.raises(OSError, match=r"Cannot write PNG .*folder .* does not exist"):
        widget.export_png(missing)
    with pytest.raises(OSError, match="Cannot write SVG .*does not exist"):
        widget.export_svg(tmp_path / "no" / "g.svg")
    with pytest.raises(OSError, match="it is a folder"):
        widget.export_png(tmp_path)
    assert not missing.parent.exists()


def test_check_writable(tmp_path):
    assert figure_export.check_writable(tmp_path / "ok.png", "PNG") == str(tmp_path / "ok.png")
    with pytest.raises(OSError) as info:
        figure_export.check_writable(tmp_path / "no" / "x.svg", "SVG")
    assert str(info.value).startswith("Cannot write SVG to ")  # no "[Errno 2]" prefix
    assert info.value.errno == 2
    if os.name == "posix" and os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        try:
            with pytest.raises(OSError, match="permission denied"):
                figure_export.check_writable(ro / "x.png", "PNG")
        finally:
            ro.chmod(0o700)


def test_png_width_dpi_and_background(canvas, tmp_path):
    path = tmp_path / "g.png"
    figure_export.export_png(canvas.view_box(), path, width=300, dpi=300, background="#ff0000")
    image = QImage(str(path))
    assert image.width() == 300
    assert image.dotsPerMeterX() == round(300 / 0.0254)
    assert QColor(image.pixel(1, 1)).name() == "#ff0000"  # a corner without graph
    with pytest.raises(ValueError):
        figure_export.export_png(canvas.view_box(), path, width=0)


def test_svg_fallback_and_pyqtgraph_path(canvas, tmp_path, monkeypatch):
    item = canvas.view_box()
    # Qt's own generator: what runs when pyqtgraph's exporter cannot parse Qt's paths
    data = figure_export.render_svg(item, background="#ffffff", title="T", description="D")
    assert b"<svg" in data and b"<title>T</title>" in data

    class Broken:
        def __init__(self, item):
            pass

        def parameters(self):
            return {}

        def export(self, toBytes=False):  # noqa: N803 (pyqtgraph API)
            raise ValueError("not enough values to unpack")  # pyqtgraph issue #3495

    monkeypatch.setattr(figure_export, "SVGExporter", Broken)
    figure_export.export_svg(item, tmp_path / "fallback.svg", title="fallback")
    assert "<title>fallback</title>" in (tmp_path / "fallback.svg").read_text(encoding="utf-8")

    class Works(Broken):
        def export(self, toBytes=False):  # noqa: N803
            return b"<svg>from pyqtgraph</svg>"

    monkeypatch.setattr(figure_export, "SVGExporter", Works)
    figure_export.export_svg(item, tmp_path / "pg.svg")
    assert (tmp_path / "pg.svg").read_bytes() == b"<svg>from pyqtgraph</svg>"
