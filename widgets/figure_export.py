"""Figure export shared by every view: PNG, SVG and PDF of one drawing.

Every view (heatmap, head overview, token view, graph canvas) describes its figure as
data (:class:`analysis.io.figure_data.Figure`: rectangles, paths, circles, texts laid
out from the view's cells, labels, node positions and colours, measured with Qt's font
metrics). :func:`write_figure` writes that one drawing in the format the file name asks
for:

* ``.png``: painted by :class:`QPainter` on a :class:`QImage` ``width`` pixels wide
  (default: the figure's natural size at ``dpi``/96), with ``dpi`` stored in the file;
* ``.svg``: written by :func:`analysis.io.figure_data.to_svg`: plain vector elements
  (heatmap cells as ``<rect>`` up to 256 x 256 cells), text as text, no clip paths, no
  non-scaling strokes, no symbol atlases, so librsvg, browsers and Inkscape agree;
* ``.pdf``: painted by :class:`QPainter` on a :class:`QPdfWriter` (vector, fonts
  embedded), the page exactly the figure's size (``width`` pixels at ``dpi``, default
  the natural size at 96 dpi).

Drawing needs a :class:`QGuiApplication` but no window: :func:`ensure_gui` starts an
offscreen one when none runs (the command line).

The older helpers :func:`export_png` and :func:`export_svg` render one item of a
pyqtgraph scene (a ViewBox, a GraphicsLayout) with :mod:`pyqtgraph.exporters`. Both first check
that the file can be written (:func:`check_writable`) and raise :class:`OSError` with
a sentence naming the file and the reason, so that a failed export never leaves the
person guessing. pyqtgraph 0.14's SVG exporter cannot parse the closed clip paths
("... Z") that Qt >= 6.9 writes (pyqtgraph issue #3495); where it fails the same scene
region is rendered by Qt's ``QSvgGenerator`` instead (text stays text, images are
embedded).
"""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path as FilePath

import numpy as np
from pyqtgraph.exporters import ImageExporter, SVGExporter
from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QMarginsF, QPointF, QRectF, QSizeF, Qt
from PySide6.QtGui import (
    QBrush,
    QColor,
    QFont,
    QFontDatabase,
    QFontMetricsF,
    QGuiApplication,
    QImage,
    QPageLayout,
    QPageSize,
    QPainter,
    QPainterPath,
    QPdfWriter,
    QPen,
    QPicture,
)
from PySide6.QtSvg import QSvgGenerator
from PySide6.QtWidgets import QGraphicsItem

from analysis.io import figure_data as fd

__all__ = [
    "FIGURE_FORMATS",
    "MAX_IMAGE_SIDE",
    "QtTextMetrics",
    "check_writable",
    "ensure_gui",
    "export_png",
    "export_svg",
    "figure_metrics",
    "figure_pixel_size",
    "paint_figure",
    "render_figure",
    "render_svg",
    "write_figure",
]

FIGURE_FORMATS = ("png", "svg", "pdf")
MAX_IMAGE_SIDE = 20000  # pixels: larger PNGs are refused with a message (memory)
_APP = None  # the offscreen application ensure_gui() started, kept alive


def _error(code: int | None, message: str) -> OSError:
    """An OSError whose text is just ``message`` (no "[Errno n]" prefix), with ``errno``."""
    exc = OSError(message)
    exc.errno = code
    return exc


def check_writable(path: str | os.PathLike, kind: str = "the file") -> str:
    """``path`` as a string if a file can be written there, else ``OSError``.

    The message says what is wrong: the folder does not exist, the path is a folder, or
    writing is not permitted (e.g. ``"Cannot write PNG to '/x/g.png': the folder '/x'
    does not exist"``)."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path)) or "."
    if not os.path.isdir(folder):
        raise _error(errno.ENOENT, f"Cannot write {kind} to {path!r}: the folder {folder!r} does not exist")
    if os.path.isdir(path):
        raise _error(errno.EISDIR, f"Cannot write {kind} to {path!r}: it is a folder")
    if not os.access(folder, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise _error(errno.EACCES, f"Cannot write {kind} to {path!r}: permission denied")
    return path


def _write(path: str, data: bytes, kind: str) -> None:
    try:
        with open(path, "wb") as fh:
            fh.write(data)
    except OSError as exc:
        raise _error(exc.errno, f"Cannot write {kind} to {path!r}: {exc.strerror or exc}") from exc


def _encode_png(image: QImage) -> bytes:
    data = QByteArray()
    buf = QBuffer(data)
    buf.open(QIODevice.OpenModeFlag.WriteOnly)
    ok = image.save(buf, "PNG")
    buf.close()
    return bytes(data.data()) if ok else b""


def export_png(item: QGraphicsItem, path: str | os.PathLike, width: int | None = None,
               dpi: float | None = None, background: QColor | str | None = None) -> None:
    """Write ``item`` as PNG: ``width`` pixels wide (height keeps the aspect; default:
    as on screen), ``dpi`` stored in the file (default: Qt's), on ``background``
    (default: the view's background). ``ValueError`` for a width under 1, ``OSError``
    when the file cannot be written."""
    if width is not None and width < 1:
        raise ValueError("width must be >= 1")
    path = check_writable(path, "PNG")
    exporter = ImageExporter(item)
    if width is not None:
        exporter.parameters()["width"] = int(width)
    if background is not None:
        exporter.parameters()["background"] = QColor(background)
    image = exporter.export(toBytes=True)
    if image is None or image.isNull():
        raise _error(None, f"Cannot write PNG to {path!r}: the figure could not be rendered")
    if dpi is not None:
        dpm = int(round(float(dpi) / 0.0254))
        image.setDotsPerMeterX(dpm)
        image.setDotsPerMeterY(dpm)
    data = _encode_png(image)
    if not data:
        raise _error(None, f"Cannot write PNG to {path!r}: the image could not be encoded")
    _write(path, data, "PNG")


def export_svg(item: QGraphicsItem, path: str | os.PathLike, *,
               background: QColor | str | None = None, title: str = "",
               description: str = "") -> None:
    """Write ``item`` as SVG on ``background`` (default: the view's background);
    ``title`` and ``description`` go into the file where Qt renders it. ``OSError``
    when the file cannot be written."""
    path = check_writable(path, "SVG")
    exporter = SVGExporter(item)
    if background is not None:
        exporter.parameters()["background"] = QColor(background)
    try:
        data = exporter.export(toBytes=True)
    except Exception:  # noqa: BLE001 - pyqtgraph/Qt incompatibility, see the module docstring
        data = render_svg(item, background=background, title=title, description=description)
    if not data:
        raise _error(None, f"Cannot write SVG to {path!r}: the figure could not be rendered")
    _write(path, data, "SVG")


def render_svg(item: QGraphicsItem, *, background: QColor | str | None = None,
               title: str = "", description: str = "") -> bytes:
    """The scene region under ``item`` as SVG bytes, rendered by ``QSvgGenerator``."""
    scene = item.scene()
    source = item.sceneBoundingRect()
    target = QRectF(0, 0, source.width(), source.height())
    if background is None:
        views = scene.views()
        fill = views[0].backgroundBrush() if views else QColor("white")
    else:
        fill = QColor(background)
    data = QByteArray()
    buf = QBuffer(data)
    buf.open(QIODevice.OpenModeFlag.WriteOnly)
    gen = QSvgGenerator()
    gen.setOutputDevice(buf)
    # items may replay QPictures recorded at the screen's DPI (axes): render at the same DPI
    gen.setResolution(QPicture().logicalDpiX())
    gen.setSize(source.size().toSize())
    gen.setViewBox(target)
    if title:
        gen.setTitle(title)
    if description:
        gen.setDescription(description)
    painter = QPainter()
    if not painter.begin(gen):
        return b""
    try:
        painter.fillRect(target, fill)
        scene.render(painter, target, source)
    finally:
        painter.end()
    buf.close()
    return bytes(data.data())


# -- figures as data -> PNG, SVG, PDF ------------------------------------------------------------


def ensure_gui() -> QGuiApplication:
    """The running Qt application, or a new offscreen one (drawing needs fonts, not a
    screen: the command line writes figures without a window)."""
    global _APP
    app = QGuiApplication.instance()
    if app is None:
        if sys.platform.startswith("linux") and not os.environ.get("QT_QPA_PLATFORM") and not (
            os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
        ):
            os.environ["QT_QPA_PLATFORM"] = "offscreen"
        _APP = app = QGuiApplication(sys.argv[:1] or ["attention-atlas"])
    return app


class QtTextMetrics:
    """Text widths from Qt's font metrics, for :mod:`analysis.io.figure_data` layouts.

    Figures use :data:`~analysis.io.figure_data.FONT_FAMILY` (DejaVu Sans) where it is
    installed, else the system's UI font; sizes are pixels (figure units)."""

    def __init__(self, family: str | None = None) -> None:
        ensure_gui()
        if family is None:
            family = fd.FONT_FAMILY if QFontDatabase.hasFamily(fd.FONT_FAMILY) else (
                QFontDatabase.systemFont(QFontDatabase.SystemFont.GeneralFont).family())
        self.family = family
        self._fonts: dict[tuple[int, bool, bool], QFont] = {}
        self._metrics: dict[tuple[int, bool], QFontMetricsF] = {}

    def font(self, size: float, bold: bool = False, underline: bool = False) -> QFont:
        key = (max(1, round(size)), bool(bold), bool(underline))
        font = self._fonts.get(key)
        if font is None:
            font = QFont(self.family)
            font.setPixelSize(key[0])
            font.setBold(key[1])
            font.setUnderline(key[2])
            font.setHintingPreference(QFont.HintingPreference.PreferNoHinting)
            font.setKerning(True)
            self._fonts[key] = font
        return font

    def width(self, text: str, size: float, bold: bool = False) -> float:
        key = (max(1, round(size)), bool(bold))
        fm = self._metrics.get(key)
        if fm is None:
            fm = self._metrics[key] = QFontMetricsF(self.font(size, bold))
        return fm.horizontalAdvance(text)


_METRICS: QtTextMetrics | None = None


def figure_metrics() -> QtTextMetrics:
    """The shared :class:`QtTextMetrics` (created on first use)."""
    global _METRICS
    if _METRICS is None:
        _METRICS = QtTextMetrics()
    return _METRICS


def _qcolor(name: str | None, opacity: float = 1.0) -> QColor:
    color = QColor(name or "#000000")
    color.setAlphaF(max(0.0, min(1.0, float(opacity))))
    return color


def _qpath(commands) -> QPainterPath:
    path = QPainterPath()
    for c in commands:
        op = c[0]
        if op == "M":
            path.moveTo(c[1], c[2])
        elif op == "L":
            path.lineTo(c[1], c[2])
        elif op == "Q":
            path.quadTo(c[1], c[2], c[3], c[4])
        elif op == "Z":
            path.closeSubpath()
    return path


_CAPS = {"round": Qt.PenCapStyle.RoundCap, "butt": Qt.PenCapStyle.FlatCap, "square": Qt.PenCapStyle.SquareCap}


def _pen(color: str, width: float, opacity: float = 1.0, *, cap: str = "butt", dash=None,
         join=Qt.PenJoinStyle.RoundJoin) -> QPen:
    pen = QPen(_qcolor(color, opacity), float(width))
    pen.setCosmetic(False)  # widths are figure units in every format
    pen.setCapStyle(_CAPS.get(cap, Qt.PenCapStyle.FlatCap))
    pen.setJoinStyle(join)
    if dash:
        pen.setDashPattern([max(d / max(width, 1e-6), 0.01) for d in dash])
    return pen


def paint_figure(painter: QPainter, fig: fd.Figure, scale: float = 1.0,
                 metrics: QtTextMetrics | None = None) -> None:
    """Paint ``fig`` with ``painter`` (figure units times ``scale`` = device units)."""
    metrics = metrics or figure_metrics()
    painter.save()
    try:
        painter.scale(scale, scale)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setRenderHint(QPainter.RenderHint.TextAntialiasing, True)
        painter.fillRect(QRectF(0, 0, fig.width, fig.height), QColor(fig.background))
        for item in fig.items:
            _paint_item(painter, item, metrics)
    finally:
        painter.restore()


def _paint_item(p: QPainter, item, metrics: QtTextMetrics) -> None:
    if isinstance(item, fd.Rect):
        rect = QRectF(item.x, item.y, item.w, item.h)
        if item.fill and item.fill_opacity > 0:
            p.setRenderHint(QPainter.RenderHint.Antialiasing, not item.crisp)
            p.fillRect(rect, _qcolor(item.fill, item.fill_opacity))
            p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        if item.stroke and item.stroke_width > 0:
            p.setPen(_pen(item.stroke, item.stroke_width, item.stroke_opacity, join=Qt.PenJoinStyle.MiterJoin))
            p.setBrush(Qt.BrushStyle.NoBrush)
            p.drawRect(rect)
    elif isinstance(item, fd.Text):
        font = metrics.font(item.size, item.bold, item.underline)
        p.setFont(font)
        p.setPen(QPen(QColor(item.color)))
        width = QFontMetricsF(font).horizontalAdvance(item.text)
        dx = {"start": 0.0, "middle": -width / 2, "end": -width}.get(item.anchor, 0.0)
        p.save()
        p.translate(item.x, item.y)
        if item.rotate:
            p.rotate(item.rotate)
        p.drawText(QPointF(dx, 0.0), item.text)
        p.restore()
    elif isinstance(item, fd.Path):
        path = _qpath(item.commands)
        p.setBrush(QBrush(_qcolor(item.fill, item.fill_opacity)) if item.fill else Qt.BrushStyle.NoBrush)
        if item.stroke:
            p.setPen(_pen(item.stroke, item.width, item.opacity, cap=item.cap, dash=item.dash))
        else:
            p.setPen(Qt.PenStyle.NoPen)
        p.drawPath(path)
    elif isinstance(item, fd.Circle):
        p.setBrush(QBrush(_qcolor(item.fill)) if item.fill else Qt.BrushStyle.NoBrush)
        if item.stroke and item.stroke_width > 0:
            p.setPen(_pen(item.stroke, item.stroke_width, dash=item.dash))
        else:
            p.setPen(Qt.PenStyle.NoPen)
        p.drawEllipse(QPointF(item.cx, item.cy), item.r, item.r)
    elif isinstance(item, fd.Line):
        p.setPen(_pen(item.stroke, item.width, item.opacity))
        p.drawLine(QPointF(item.x1, item.y1), QPointF(item.x2, item.y2))
    elif isinstance(item, fd.Image):
        rgba = np.ascontiguousarray(item.rgba, dtype=np.uint8)
        h, w = rgba.shape[:2]
        image = QImage(rgba.data, w, h, 4 * w, QImage.Format.Format_RGBA8888).copy()
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        p.drawImage(QRectF(item.x, item.y, item.w, item.h), image)
    else:
        raise TypeError(f"unknown figure item {type(item).__name__}")


def figure_pixel_size(fig: fd.Figure, width: int | None = None, dpi: float | None = None) -> tuple[int, int]:
    """PNG size of ``fig``: ``width`` pixels wide (height keeps the aspect), else the
    natural size scaled by ``dpi / 96``. ``ValueError`` for a width under 1 or a side
    above :data:`MAX_IMAGE_SIDE`."""
    if width is not None and int(width) < 1:
        raise ValueError("width must be >= 1")
    if dpi is not None and not float(dpi) > 0:
        raise ValueError("dpi must be > 0")
    out_w = int(width) if width is not None else max(1, round(fig.width * (float(dpi) if dpi else 96.0) / 96.0))
    out_h = max(1, round(fig.height * out_w / fig.width))
    if max(out_w, out_h) > MAX_IMAGE_SIDE:
        raise ValueError(f"the image would be {out_w} x {out_h} pixels; the largest side allowed is {MAX_IMAGE_SIDE}")
    return out_w, out_h


def render_figure(fig: fd.Figure, *, width: int | None = None, dpi: float | None = None) -> QImage:
    """``fig`` painted on an opaque :class:`QImage` (see :func:`figure_pixel_size`),
    ``dpi`` (default 96) stored as its resolution."""
    out_w, out_h = figure_pixel_size(fig, width, dpi)
    image = QImage(out_w, out_h, QImage.Format.Format_ARGB32)
    image.fill(QColor(fig.background))
    dpm = int(round(float(dpi or 96.0) / 0.0254))
    image.setDotsPerMeterX(dpm)
    image.setDotsPerMeterY(dpm)
    painter = QPainter(image)
    try:
        paint_figure(painter, fig, out_w / fig.width)
    finally:
        painter.end()
    return image


def _write_pdf(fig: fd.Figure, path: str, width: int | None, dpi: float | None) -> None:
    inches = (float(width) / float(dpi or 96.0)) if width is not None else fig.width / 96.0
    w_pt = inches * 72.0
    h_pt = w_pt * fig.height / fig.width
    writer = QPdfWriter(path)
    writer.setResolution(1200)
    writer.setPageSize(QPageSize(QSizeF(w_pt, h_pt), QPageSize.Unit.Point, "figure",
                                 QPageSize.SizeMatchPolicy.ExactMatch))
    writer.setPageMargins(QMarginsF(0, 0, 0, 0), QPageLayout.Unit.Point)
    writer.setTitle(fig.title)
    writer.setCreator("Attention Atlas")
    painter = QPainter()
    if not painter.begin(writer):
        raise _error(None, f"Cannot write PDF to {path!r}: the file could not be opened")
    try:
        paint_figure(painter, fig, writer.width() / fig.width)
    finally:
        painter.end()


def write_figure(fig: fd.Figure, path: str | os.PathLike, *, width: int | None = None,
                 dpi: float | None = None, fmt: str | None = None) -> FilePath:
    """Write ``fig`` as PNG, SVG or PDF, chosen by ``fmt`` or the file's extension.

    PNG: ``width`` pixels wide (default: natural size x ``dpi``/96), ``dpi`` (default
    96) stored in the file. SVG: vector elements in figure units; ``width`` sets its
    ``width`` attribute (the drawing does not depend on DPI). PDF: one page the size of
    the figure, ``width / dpi`` inches wide (default: the natural size at 96 dpi).
    ``ValueError`` for another format or a bad size, ``OSError`` (a sentence naming
    the file and the reason) when the file cannot be written."""
    kind = (fmt or os.path.splitext(os.fspath(path))[1].lstrip(".")).lower()
    if kind not in FIGURE_FORMATS:
        raise ValueError(f"cannot write a figure as {kind or 'a file without extension'!r}: "
                         f"use .png, .svg or .pdf")
    label = kind.upper()
    path = check_writable(path, label)
    metrics = figure_metrics()
    if kind == "png":
        image = render_figure(fig, width=width, dpi=dpi)
        data = _encode_png(image)
        if not data:
            raise _error(None, f"Cannot write PNG to {path!r}: the image could not be encoded")
        _write(path, data, "PNG")
    elif kind == "svg":
        if width is not None and int(width) < 1:
            raise ValueError("width must be >= 1")
        text = fd.to_svg(fig, width=width, font_family=metrics.family)
        _write(path, text.encode("utf-8"), "SVG")
    else:
        if width is not None and int(width) < 1:
            raise ValueError("width must be >= 1")
        _write_pdf(fig, path, width, dpi)
    return FilePath(path)
