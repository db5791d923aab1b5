"""Figures shared by every view: portable SVG, PDF and PNG of the same drawing, clean by
default, labels never cut, and the command line's write_figures without a window.

How "the SVG looks like the PNG" is decided (:func:`_assert_looks_alike`): the PNG export
and the librsvg (``rsvg-convert``) or poppler (``pdftoppm``) rendering of the SVG/PDF, at
the same pixel size, are turned to greyscale and averaged down to 100 pixels wide (each
output pixel averages a block of about 10 x 10 to 20 x 20 pixels), and the absolute
difference must stay under a mean of 3 and a maximum of 50 grey levels (of 255). Measured
here on the heatmap, the graph and the head mosaic, renderings of the same figure by the
three rasterisers (Qt, cairo/Pango, poppler) differ by a mean of at most 1.2 and a maximum
of 31 levels (text hinting, antialiasing, a pixel of rounding at edges), while a missing or
garbled element moves a block by much more: a missing title or colour-bar title gave
maxima of 72-143, a missing label 131. (The defects users saw before, blurred cells,
white and cyan blocks, atlases squeezed into nodes, are larger still.)
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication

from analysis.io import figure_data as fd
from analysis.io.figures import base as fig_base
from analysis.io.figures import graph as fig_graph
from widgets import canvas_geometry as geo
from widgets import figure_export
from widgets.colormaps import COLORMAPS, SIGNED_COLORMAP, highlight_colors, lookup_table
from widgets.graph_canvas import GraphCanvas
from widgets.head_grid import HeadOverview
from widgets.heatmap import AttentionHeatmap
from widgets.token_view import TokenTextView

pytestmark = [
    pytest.mark.qt_log_level_fail("WARNING"),
    pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints"),
]

ROOT = Path(__file__).resolve().parents[2]
RSVG = shutil.which("rsvg-convert")
PDFTOPPM = shutil.which("pdftoppm")
PDFINFO = shutil.which("pdfinfo")
needs_rsvg = pytest.mark.skipif(
    RSVG is None, reason="rsvg-convert is not installed (Debian: apt-get install librsvg2-bin)")
needs_poppler = pytest.mark.skipif(
    PDFTOPPM is None or PDFINFO is None, reason="pdftoppm/pdfinfo are not installed (Debian: apt-get install poppler-utils)")
SVG_NS = "{http://www.w3.org/2000/svg}"

WORDS = ["[CLS]", "the", "cat", "sat", "on", "the", "mat", "[SEP]"]
MEAN_LIMIT = 3.0
MAX_LIMIT = 50.0


def _attention(n: int, seed: int = 0) -> np.ndarray:
    a = np.random.default_rng(seed).random((n, n)) ** 3
    return a / a.sum(1, keepdims=True)


# -- image helpers ----------------------------------------------------------------------------


def _gray(path, width: int = 100) -> np.ndarray:
    """A greyscale copy averaged down to ``width`` pixels (height keeps the aspect)."""
    image = QImage(str(path)).convertToFormat(QImage.Format.Format_Grayscale8)
    assert not image.isNull(), f"{path} could not be read as an image"
    height = max(1, round(image.height() * width / image.width()))
    small = image.scaled(width, height, Qt.AspectRatioMode.IgnoreAspectRatio,
                         Qt.TransformationMode.SmoothTransformation)
    raw = np.frombuffer(small.constBits(), np.uint8, small.bytesPerLine() * small.height())
    return raw.reshape(small.height(), small.bytesPerLine())[:, :width].astype(np.float64)


def _assert_looks_alike(png: Path, other: Path) -> None:
    """``other`` (a librsvg or poppler rendering) looks like the PNG export: greyscale at
    100 px wide, mean |difference| < 3 and max < 50 grey levels (see the module docstring
    for why these numbers)."""
    a, b = _gray(png), _gray(other)
    assert a.shape == b.shape, f"{other.name} is {b.shape}, the PNG {a.shape}"
    diff = np.abs(a - b)
    assert diff.mean() < MEAN_LIMIT and diff.max() < MAX_LIMIT, (
        f"{other.name} differs from {png.name}: mean {diff.mean():.2f}, max {diff.max():.0f} grey levels")


def _rsvg(svg: Path, out: Path, width: int, height: int) -> Path:
    subprocess.run([RSVG, "-w", str(width), "-h", str(height), "-b", "white", str(svg), "-o", str(out)],
                   check=True, capture_output=True, timeout=120)
    return out


def _pdftoppm(pdf: Path, out: Path, width: int, height: int) -> Path:
    stem = out.with_suffix("")
    subprocess.run([PDFTOPPM, "-png", "-singlefile", "-scale-to-x", str(width), "-scale-to-y", str(height),
                    str(pdf), str(stem)], check=True, capture_output=True, timeout=120)
    return stem.with_suffix(".png")


def _pixels(path) -> np.ndarray:
    image = QImage(str(path)).convertToFormat(QImage.Format.Format_RGB888)
    raw = np.frombuffer(image.constBits(), np.uint8, image.bytesPerLine() * image.height())
    return raw.reshape(image.height(), image.bytesPerLine())[:, : image.width() * 3].reshape(
        image.height(), image.width(), 3).astype(int)


def _has_color(path, hex_color: str, tolerance: int = 24, min_pixels: int = 4) -> bool:
    rgb = np.array([int(hex_color[k:k + 2], 16) for k in (1, 3, 5)])
    close = (np.abs(_pixels(path) - rgb) <= tolerance).all(axis=-1)
    return int(close.sum()) >= min_pixels


def _ink_box(path, background: int = 245) -> tuple[int, int, int, int, int, int]:
    """(left, top, right, bottom, width, height) of the pixels that are not background."""
    px = _pixels(path)
    ink = (px < background).any(axis=-1)
    ys, xs = np.nonzero(ink)
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max()), px.shape[1], px.shape[0]


def _svg_tree(path: Path) -> ET.Element:
    return ET.parse(path).getroot()  # raises if the SVG is not well-formed XML


# -- widgets ----------------------------------------------------------------------------------


def _show(qtbot, widget, w=700, h=560):
    qtbot.addWidget(widget)
    widget.resize(w, h)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def _heatmap(qtbot, kind: str = "plain") -> AttentionHeatmap:
    hm = _show(qtbot, AttentionHeatmap())
    n = len(WORDS)
    if kind == "signed":
        a = np.random.default_rng(1).normal(size=(n, n))
        hm.set_matrix(a, WORDS, WORDS, title="signed scores", signed=True)
    elif kind == "causal_log":
        a = np.tril(_attention(n, 2))
        hm.set_matrix(a / a.sum(1, keepdims=True), WORDS, WORDS, masked=np.triu(np.ones((n, n), bool), 1),
                      title="causal head, log scale")
        hm.set_log_scale(True)
    else:
        hm.set_matrix(_attention(n), WORDS, WORDS, title="layer 2 · head 5")
    QApplication.processEvents()
    return hm


def _canvas(qtbot, layout: str = "arc") -> GraphCanvas:
    c = _show(qtbot, GraphCanvas())
    a = _attention(len(WORDS), 3)
    s, t = np.nonzero(a > 0.12)
    c.set_graph(WORDS, s, t, a[s, t], metrics={"pagerank": a.sum(0) / len(WORDS), "betweenness": a.max(1)},
                communities=np.array([0, 0, 1, 1, 2, 2, 1, 0]))
    c.set_size_metric("pagerank")
    c.set_layout(layout)
    QApplication.processEvents()
    return c


def _heads(qtbot) -> HeadOverview:
    h = _show(qtbot, HeadOverview(), 700, 420)
    rng = np.random.default_rng(4)
    th = rng.random((3, 4, 8, 8)) ** 4
    stats = {"entropy": rng.random((3, 4)) * 2, "special_share": rng.random((3, 4)),
             "mean_distance": rng.random((3, 4)) * 4}
    h.set_heads(th / th.sum(-1, keepdims=True), stats)
    QApplication.processEvents()
    return h


TEXT = "The cat sat on the mat."
TOKEN_LABELS = ["[CLS]", "the", "cat", "sat", "on", "the", "mat", ".", "[SEP]"]
OFFSETS = np.array([(0, 0), (0, 3), (4, 7), (8, 11), (12, 14), (15, 18), (19, 22), (22, 23), (0, 0)])
SEGMENTS = np.array([-1, 0, 0, 0, 0, 0, 0, 0, -1])
SPECIAL = np.array([True] + [False] * 7 + [True])


def _tokens(qtbot) -> TokenTextView:
    v = _show(qtbot, TokenTextView(), 600, 240)
    v.set_tokens(TEXT, None, TOKEN_LABELS, OFFSETS, SEGMENTS, SPECIAL)
    v.set_weights(_attention(9, 5)[2], 2)
    return v


class _FigureView:
    """An attribution view's figure with the widgets' ``export_figure`` signature."""

    def __init__(self, make) -> None:
        self.make = make

    def export_figure(self, path, *, width=None, dpi=None, include_highlight=False, title=None):
        from widgets.figure_export import write_figure

        return write_figure(self.make(include_highlight), path, width=width, dpi=dpi)


def _attribution(kind: str):
    from analysis.io.figures.attribution import attribution_bars_figure, attribution_strip_figure
    from widgets.figure_export import figure_metrics

    labels = ["[CLS]", "the", "capital", "of", "france", "is", "paris", ".", "[SEP]"]
    scores = np.array([np.nan, 0.1, -0.8, 0.05, 1.2, 0.3, -0.4, 0.0, np.nan])
    if kind == "strip":
        return _FigureView(lambda highlight: attribution_strip_figure(
            labels, scores, title="Integrated Gradients · ' Paris'", notes=["f(x) = -0.52, f(baseline) = -9.1."],
            selected=4 if highlight else None, metrics=figure_metrics()))
    return _FigureView(lambda highlight: attribution_bars_figure(
        labels, scores, title="Integrated Gradients · ' Paris'", metrics=figure_metrics()))


FIGURES = {
    "attribution_strip": lambda qtbot: _attribution("strip"),
    "attribution_bars": lambda qtbot: _attribution("bars"),
    "heatmap": lambda qtbot: _heatmap(qtbot),
    "heatmap_signed": lambda qtbot: _heatmap(qtbot, "signed"),
    "heatmap_causal_log": lambda qtbot: _heatmap(qtbot, "causal_log"),
    "graph_arc": lambda qtbot: _canvas(qtbot, "arc"),
    "graph_circular": lambda qtbot: _canvas(qtbot, "circular"),
    "heads": _heads,
    "tokens": _tokens,
}


# -- SVG: vector, well-formed, portable -------------------------------------------------------


def test_heatmap_svg_cells_are_rects_and_nothing_unportable(qtbot, tmp_path):
    hm = _heatmap(qtbot, "causal_log")
    path = hm.export_figure(tmp_path / "h.svg")
    root = _svg_tree(path)
    cells = [r for r in root.iter(f"{SVG_NS}rect") if r.get("class") == "cell"]
    assert len(cells) == len(WORDS) ** 2
    assert not list(root.iter(f"{SVG_NS}image"))
    text = path.read_text(encoding="utf-8")
    for bad in ("clipPath", "clip-path", "vector-effect", "<use", "<pattern", "<symbol", "matrix("):
        assert bad not in text, f"{bad} in the SVG"
    transforms = re.findall(r'transform="([^"]*)"', text)
    assert transforms and all(t.startswith("rotate(") for t in transforms)  # only vertical labels turn
    texts = [t.text for t in root.iter(f"{SVG_NS}text")]
    assert {"query (attends)", "key (attended to)", "causal head, log scale"} <= set(texts)
    assert texts.count("cat") == 2 and texts.count("[SEP]") == 2  # every label, both axes
    assert "masked (causal)" in texts and "0.0001" in texts  # masked swatch; log ticks in real units
    titles = [c.find(f"{SVG_NS}title").text for c in cells]
    assert titles[1].startswith("[CLS] -> the: masked (causal)")
    assert re.match(r"the -> \[CLS\]: \d\.\d{3}", titles[len(WORDS)])


@pytest.mark.parametrize("name", list(FIGURES))
def test_every_figure_svg_parses_and_is_vector(qtbot, tmp_path, name):
    widget = FIGURES[name](qtbot)
    path = widget.export_figure(tmp_path / f"{name}.svg")
    root = _svg_tree(path)
    assert root.tag == f"{SVG_NS}svg" and root.get("viewBox", "").startswith("0 0 ")
    assert not list(root.iter(f"{SVG_NS}image"))
    assert "vector-effect" not in path.read_text(encoding="utf-8")
    if name.startswith("graph"):
        nodes = [c for c in root.iter(f"{SVG_NS}circle") if c.find(f"{SVG_NS}title") is not None]
        assert len(nodes) == len(WORDS)  # one circle per node: no marker atlas
        assert "Communities" in [t.text for t in root.iter(f"{SVG_NS}text")]
        assert "Node size: pagerank" in [t.text for t in root.iter(f"{SVG_NS}text")]


@needs_rsvg
@pytest.mark.parametrize("name", list(FIGURES))
def test_svg_renders_in_librsvg_like_the_png(qtbot, tmp_path, name):
    """rsvg-convert's rendering of the SVG matches the PNG export (thresholds: module
    docstring)."""
    widget = FIGURES[name](qtbot)
    png = widget.export_figure(tmp_path / f"{name}.png", dpi=192)
    svg = widget.export_figure(tmp_path / f"{name}.svg")
    image = QImage(str(png))
    rendered = _rsvg(svg, tmp_path / f"{name}.rsvg.png", image.width(), image.height())
    _assert_looks_alike(png, rendered)


@needs_poppler
@pytest.mark.parametrize("name", ["heatmap", "graph_circular", "heads", "tokens"])
def test_pdf_opens_and_renders_like_the_png(qtbot, tmp_path, name):
    widget = FIGURES[name](qtbot)
    png = widget.export_figure(tmp_path / f"{name}.png", dpi=192)
    pdf = widget.export_figure(tmp_path / f"{name}.pdf")
    assert pdf.read_bytes().startswith(b"%PDF")
    info = subprocess.run([PDFINFO, str(pdf)], capture_output=True, text=True, check=True).stdout
    assert re.search(r"Pages:\s+1\b", info)
    image = QImage(str(png))
    rendered = _pdftoppm(pdf, tmp_path / f"{name}.pdf.png", image.width(), image.height())
    _assert_looks_alike(png, rendered)


@needs_poppler
def test_png_and_pdf_sizes_follow_width_and_dpi(qtbot, tmp_path):
    hm = _heatmap(qtbot)
    fig = hm.figure()
    natural = QImage(str(hm.export_figure(tmp_path / "n.png")))
    assert (natural.width(), natural.height()) == (round(fig.width), round(fig.height))
    assert natural.dotsPerMeterX() == round(96 / 0.0254)
    at300 = QImage(str(hm.export_figure(tmp_path / "d.png", dpi=300)))
    assert at300.width() == round(fig.width * 300 / 96) and at300.dotsPerMeterX() == round(300 / 0.0254)
    wide = QImage(str(hm.export_figure(tmp_path / "w.png", width=1234, dpi=200)))
    assert wide.width() == 1234 and abs(wide.height() - 1234 * fig.height / fig.width) <= 1
    pdf = hm.export_figure(tmp_path / "w.pdf", width=1200, dpi=300)  # 4 inches = 288 pt wide
    info = subprocess.run([PDFINFO, str(pdf)], capture_output=True, text=True, check=True).stdout
    w_pt, h_pt = map(float, re.search(r"Page size:\s+([\d.]+) x ([\d.]+) pts", info).groups())
    assert w_pt == pytest.approx(288, abs=0.6) and h_pt == pytest.approx(288 * fig.height / fig.width, abs=0.6)
    svg = _svg_tree(hm.export_figure(tmp_path / "w.svg", width=800))
    assert float(svg.get("width")) == 800
    with pytest.raises(ValueError, match="width"):
        hm.export_figure(tmp_path / "z.png", width=0)
    with pytest.raises(ValueError, match="largest side"):
        hm.export_figure(tmp_path / "z.png", width=50000)


def test_export_format_comes_from_the_extension(qtbot, tmp_path):
    for widget in (_heatmap(qtbot), _canvas(qtbot), _heads(qtbot), _tokens(qtbot)):
        assert QImage(str(widget.export_figure(tmp_path / "f.png"))).width() > 100
        assert _svg_tree(widget.export_figure(tmp_path / "f.svg")) is not None
        assert widget.export_figure(tmp_path / "f.pdf").read_bytes()[:4] == b"%PDF"
        with pytest.raises(ValueError, match=r"\.png, \.svg or \.pdf"):
            widget.export_figure(tmp_path / "f.jpg")
        with pytest.raises(OSError, match="does not exist"):
            widget.export_figure(tmp_path / "no" / "f.pdf")


# -- clean by default -------------------------------------------------------------------------


def _check_highlight(widget, tmp_path, colors: list[str], pixel_colors: list[str]) -> None:
    clean_svg = widget.export_figure(tmp_path / "clean.svg").read_text(encoding="utf-8").lower()
    marked_svg = widget.export_figure(tmp_path / "marked.svg", include_highlight=True).read_text(encoding="utf-8").lower()
    for color in colors:
        assert color not in clean_svg, f"{color} in a clean export"
        assert color in marked_svg, f"{color} missing with include_highlight=True"
    clean_png = widget.export_figure(tmp_path / "clean.png", dpi=192)
    marked_png = widget.export_figure(tmp_path / "marked.png", dpi=192, include_highlight=True)
    for color in pixel_colors:
        assert not _has_color(clean_png, color), f"pixels of {color} in a clean export"
        assert _has_color(marked_png, color), f"no pixels of {color} with include_highlight=True"


def test_clean_heatmap_export_has_no_selection_or_path(qtbot, tmp_path):
    hm = _heatmap(qtbot)
    hm.select_token(3)
    hm.highlight_path([1, 3, 5])
    marks = highlight_colors("viridis")  # path cyan, selected label red, outline white
    _check_highlight(hm, tmp_path, [marks["path"], marks["label"]], [marks["path"], marks["label"]])
    # the widget keeps showing its selection: exporting changes nothing on screen
    assert hm.selected_token() == 3 and hm.path_cells() == [(1, 3), (3, 5)]


def test_clean_graph_export_has_no_path_source_target_or_selection(qtbot, tmp_path):
    c = _canvas(qtbot, "circular")
    c.set_source(1)
    c.set_target(6)
    c.select_token(3)
    c.highlight_path([1, 3, 6])
    svg_colors = [fd.GRAPH_COLORS[k] for k in ("path", "source", "target", "selected")]
    _check_highlight(c, tmp_path, svg_colors, [fd.GRAPH_COLORS["path"], fd.GRAPH_COLORS["target"]])
    assert c.highlighted_path() == [1, 3, 6]


def test_clean_head_overview_and_token_view_exports(qtbot, tmp_path):
    h = _heads(qtbot)
    h.set_current(1, 2)
    _check_highlight(h, tmp_path, ["#e62828"], ["#e62828"])
    v = _tokens(qtbot)
    clean = v.figure()
    marked = v.figure(include_highlight=True)
    assert fd.SELECTED_TOKEN_COLOR not in clean.colors() and fd.SELECTED_TOKEN_COLOR in marked.colors()
    assert clean.title == v.caption_text()  # what the colours mean stays, as the title


# -- labels are never cut ---------------------------------------------------------------------

LONG = ["[CLS]", "internationalisation", "Donaudampfschifffahrt", "x", "antidisestablishment", "é"] + [
    f"token{i}" for i in range(24)] + ["[SEP]"]


@pytest.mark.parametrize("which", ["heatmap", "graph_circular", "graph_arc"])
def test_labels_are_never_cut(qtbot, tmp_path, which):
    """The drawn ink (anything not white) keeps a margin inside the image, in the PNG and
    in librsvg's rendering: no label, title or legend runs off an edge."""
    n = len(LONG)
    if which == "heatmap":
        widget = _show(qtbot, AttentionHeatmap())
        widget.set_matrix(_attention(n), LONG, LONG, title="a heatmap whose title is rather long for its matrix")
    else:
        widget = _show(qtbot, GraphCanvas())
        a = _attention(n, 7)
        s, t = np.nonzero(a > np.sort(a, axis=1)[:, -3:-2])
        widget.set_graph(LONG, s, t, a[s, t], metrics={"pagerank": a.sum(0)}, communities=np.arange(n) % 4)
        widget.set_size_metric("pagerank")
        widget.set_layout(which.split("_")[1])
    png = widget.export_figure(tmp_path / "f.png")
    renders = [png]
    svg = widget.export_figure(tmp_path / "f.svg")
    text = svg.read_text(encoding="utf-8")
    if which == "heatmap":
        assert "1 internationalisat…" in text  # index prefixed from 24 tokens on, elided at 18 chars
    if RSVG:
        image = QImage(str(png))
        renders.append(_rsvg(svg, tmp_path / "f.rsvg.png", image.width(), image.height()))
    for path in renders:
        left, top, right, bottom, w, h = _ink_box(path)
        assert left >= 6 and top >= 6 and right <= w - 7 and bottom <= h - 7, (
            f"{path.name}: ink from ({left}, {top}) to ({right}, {bottom}) in {w} x {h}")


def test_graph_labels_do_not_overlap(qtbot):
    c = _canvas(qtbot, "circular")
    fig = c.figure()
    halos = [i for i in fig.items if isinstance(i, fd.Rect) and i.fill == "#ffffff" and i.fill_opacity == 0.85]
    assert len(halos) == len(WORDS)  # every label fits at this size
    for k, a in enumerate(halos):
        for b in halos[k + 1:]:
            assert not (a.x < b.x + b.w and b.x < a.x + a.w and a.y < b.y + b.h and b.y < a.y + a.h)


# -- signed values, big matrices, colours ---------------------------------------------------------


def test_signed_heatmap_figure_is_centred_at_zero(qtbot):
    hm = _show(qtbot, AttentionHeatmap())
    a = np.array([[-2.0, 0.0], [1.0, 2.0]])
    hm.set_matrix(a, ["a", "b"], ["c", "d"], signed=True)
    fig = hm.figure()
    cells = [i for i in fig.items if isinstance(i, fd.Rect) and i.cls == "cell"]
    lut = lookup_table(SIGNED_COLORMAP)
    assert cells[0].fill == fig_base._hex(lut[0]) and cells[3].fill == fig_base._hex(lut[-1])  # -2 blue end, +2 red end
    mid = np.array([int(cells[1].fill[k:k + 2], 16) for k in (1, 3, 5)])
    assert (mid > 225).all()  # 0 is (nearly) white
    texts = [i.text for i in fig.items if isinstance(i, fd.Text)]
    assert fd.COLORBAR_LABELS["signed"] in texts and "-2" in texts[-12:] + texts and "0" in texts


def test_large_heatmap_is_one_bitmap_with_a_note(qtbot, tmp_path):
    n = 300
    a = _attention(n)
    labels = [f"t{i}" for i in range(n)]
    fig = fd.heatmap_figure(a, labels, labels, metrics=figure_export.figure_metrics())
    assert fig.count(fd.Image) == 1 and not [i for i in fig.items if isinstance(i, fd.Rect) and i.cls == "cell"]
    assert fig.notes and "300 x 300 cells are one embedded bitmap" in fig.notes[0]
    path = tmp_path / "big.svg"
    figure_export.write_figure(fig, path)
    text = path.read_text(encoding="utf-8")
    assert text.count("<image") == 1 and "embedded bitmap" in text.split("<rect", 1)[0]  # in <desc>
    assert 'image-rendering="optimizeSpeed"' in text
    edge = fd.heatmap_figure(np.ones((256, 256)) / 256, ["x"] * 256, ["x"] * 256, cell_titles=False)
    assert edge.count(fd.Image) == 0 and sum(isinstance(i, fd.Rect) and i.cls == "cell" for i in edge.items) == 256 * 256
    if RSVG:
        _rsvg(path, tmp_path / "big.png", 600, round(600 * fig.height / fig.width))


def test_colormap_stops_match_the_widgets_maps():
    for name in [*COLORMAPS, SIGNED_COLORMAP]:
        ours = fd.colormap_lut(name).astype(int)
        theirs = lookup_table(name).astype(int)
        assert np.abs(ours - theirs).max() <= 4, name
        assert fd.highlight_colors(name) == highlight_colors(name)


def test_graph_drawing_rules_are_the_canvas_rules():
    """The figure and the canvas draw with one set of rules (analysis.graph.drawing), not copies."""
    from analysis.graph import drawing

    for name in ("EDGE_BINS", "MAX_DRAWN_EDGES", "BIN_WIDTHS", "BIN_ALPHAS", "BIN_TARGET_OPACITY", "node_sizes",
                 "weight_bins", "drawn_edge_mask", "community_colors", "finite_weights", "format_number"):
        assert getattr(fig_graph, name) is getattr(drawing, name) is getattr(geo, name), name
    assert fd.COMMUNITY_PALETTE is geo.COMMUNITY_PALETTE and fd.NO_COMMUNITY_COLOR is geo.NO_COMMUNITY_COLOR


# -- the command line's figures, without a window ---------------------------------------------

_SCRIPT = r"""
import sys
import numpy as np
from PySide6.QtGui import QGuiApplication
assert QGuiApplication.instance() is None
from tests.analysis.fake_runs import make_run
from analysis.attention.views import ViewSpec, make_view
from analysis.api import build_graph
from widgets.figures import write_figures
rng = np.random.default_rng(0)
a = rng.random((2, 3, 6, 6)) ** 3
a /= a.sum(-1, keepdims=True)
run = make_run(a, text="a b c d", tokens=["[CLS]", "a", "b", "c", "d", "[SEP]"],
               offsets=[(0, 0), (0, 1), (2, 3), (4, 5), (6, 7), (0, 0)], word_ids=[None, 0, 1, 2, 3, None],
               special=[True, False, False, False, False, True])
view = make_view(run, ViewSpec(kind="head", layer=1, head=2))
graph = build_graph(view, mode="top_k", top_k=2)
for p in write_figures(sys.argv[1], run, view, graph, colormap="magma", graph_layout=sys.argv[2]):
    print(p.name)
"""


@pytest.mark.parametrize("layout", ["arc", "force"])
def test_write_figures_offscreen_without_a_window(tmp_path, layout):
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY")}
    done = subprocess.run([sys.executable, "-c", _SCRIPT, str(tmp_path), layout], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    names = done.stdout.split()
    assert names == [f"{f}.{x}" for f in ("heatmap", "graph", "heads") for x in ("png", "svg", "pdf")]
    for name in names:
        path = tmp_path / name
        if name.endswith(".png"):
            assert QImage(str(path)).width() > 200
        elif name.endswith(".svg"):
            root = _svg_tree(path)
            assert not list(root.iter(f"{SVG_NS}image"))
        else:
            assert path.read_bytes().startswith(b"%PDF")
    heads_svg = (tmp_path / "heads.svg").read_text(encoding="utf-8")
    magma_top = fig_base._hex(lookup_table("magma")[-1])
    assert magma_top in heads_svg and "#fde725" not in heads_svg  # the chosen map, not viridis


def test_write_figures_refuses_bad_options_before_writing(tmp_path):
    from widgets.figures import write_figures

    with pytest.raises(ValueError, match="format"):
        write_figures(tmp_path, None, None, None, formats=("png", "gif"))
    with pytest.raises(ValueError, match="colour map"):
        write_figures(tmp_path, None, None, None, colormap="rainbow")
    with pytest.raises(ValueError, match="layout"):
        write_figures(tmp_path, None, None, None, graph_layout="spiral")
    assert not list(tmp_path.iterdir())


def test_headless_figures_name_the_views_numbers_and_ring_generated_tokens(qtbot, tmp_path):
    """``analyze --figures``: the heatmap's colour bar says what the numbers are (not
    "attention weight" for every view) and a generation's answer is ringed in the graph."""
    from dataclasses import replace

    from analysis.attention.views import ViewSpec, make_view
    from analysis.graph.metrics import analyze_graph
    from analysis.io.figures.graph import GENERATED_COLOR
    from tests.analysis.fake_runs import word_run
    from widgets.figures import write_figures

    run = replace(word_run(layers=2, heads=2), prompt_length=3)
    view = make_view(run, ViewSpec(kind="max", layer=1))
    graph = analyze_graph(view.matrix)
    written = write_figures(tmp_path, run, view, graph, formats=("svg",))
    heatmap = (tmp_path / "heatmap.svg").read_text(encoding="utf-8")
    assert "largest attention weight of the heads" in heatmap
    svg = (tmp_path / "graph.svg").read_text(encoding="utf-8")
    assert GENERATED_COLOR in svg and ">generated<" in svg
    assert {p.name for p in written} == {"heatmap.svg", "graph.svg", "heads.svg"}
