"""PNG and SVG export of a pyqtgraph item, shared by the heatmap and the graph canvas.

:func:`export_png` and :func:`export_svg` render one item of a scene (a ViewBox, a
GraphicsLayout) with :mod:`pyqtgraph.exporters` and write the file. Both first check
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

from pyqtgraph.exporters import ImageExporter, SVGExporter
from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QRectF
from PySide6.QtGui import QColor, QImage, QPainter, QPicture
from PySide6.QtSvg import QSvgGenerator
from PySide6.QtWidgets import QGraphicsItem

__all__ = ["check_writable", "export_png", "export_svg", "render_svg"]


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
