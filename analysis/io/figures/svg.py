"""Figures as SVG: plain elements only (no clip paths, non-scaling strokes or atlases). No Qt (see analysis/io/figure_data.py)."""

from __future__ import annotations

import base64
import struct
import zlib

import numpy as np

from analysis.io.figures.base import (
    FONT_FAMILY,
    SVG_FONT_STACK,
    Circle,
    Figure,
    Image,
    Line,
    Path,
    Rect,
    Text,
    _clean_text,
)

# ----------------------------------------------------------------------------- SVG


def _n(v: float) -> str:
    """A coordinate with at most two decimals, no trailing zeros."""
    text = f"{float(v):.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _esc(text: str, quote: bool = False) -> str:
    text = _clean_text(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace('"', "&quot;") if quote else text


def _title_el(title: str | None) -> str:
    if not title:
        return ""
    return "<title>" + "&#10;".join(_esc(line) for line in str(title).split("\n")) + "</title>"


def _opacity(name: str, value: float) -> str:
    return f' {name}="{_n(value)}"' if value < 0.999 else ""


def _path_d(commands) -> str:
    out = []
    for c in commands:
        if c[0] == "Z":
            out.append("Z")
        else:
            out.append(c[0] + " ".join(_n(v) for v in c[1:]))
    return "".join(out)


def encode_png(rgba: np.ndarray) -> bytes:
    """PNG bytes of an RGBA ``uint8 [rows, cols, 4]`` image (no Qt, no Pillow)."""
    a = np.ascontiguousarray(rgba, dtype=np.uint8)
    h, w = a.shape[:2]
    raw = b"".join(b"\x00" + a[y].tobytes() for y in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def to_svg(fig: Figure, *, width: float | None = None, standalone: bool = True,
           css_class: str | None = None, font_family: str | None = None) -> str:
    """The figure as SVG text: plain elements in figure units (``viewBox``), text as
    ``<text>``, tooltips as ``<title>``, notes in ``<desc>``. ``width`` sets the
    ``width`` attribute (the height follows the aspect; default: the figure's size).
    ``standalone`` adds the XML declaration (off when inlined in HTML). ``font_family``
    (the family the layout was measured with) comes first in the font list."""
    scale = 1.0 if width is None else float(width) / fig.width
    out: list[str] = []
    if standalone:
        out.append('<?xml version="1.0" encoding="UTF-8"?>\n')
    cls = f' class="{_esc(css_class, True)}"' if css_class else ""
    out.append(
        f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" version="1.1"{cls} '
        f'width="{_n(fig.width * scale)}" height="{_n(fig.height * scale)}" viewBox="0 0 {_n(fig.width)} {_n(fig.height)}" '
        f'font-family="{_font_stack(font_family)}">\n'
    )
    if fig.title:
        out.append(f"<title>{_esc(fig.title)}</title>\n")
    desc = " ".join([fig.description, *fig.notes]).strip()
    if desc:
        out.append(f"<desc>{_esc(desc)}</desc>\n")
    for note in fig.notes:
        out.append(f"<!-- {_esc(note).replace('--', '- -')} -->\n")
    out.append(f'<rect x="0" y="0" width="{_n(fig.width)}" height="{_n(fig.height)}" fill="{fig.background}"/>\n')
    for item in fig.items:
        out.append(_svg_item(item))
    out.append("</svg>\n")
    return "".join(out)


def _font_stack(family: str | None) -> str:
    if not family or family == FONT_FAMILY:
        return SVG_FONT_STACK
    clean = family.replace("'", "").replace('"', "").replace("<", "").replace("&", "")
    return f"'{clean}', {SVG_FONT_STACK}"


def _svg_item(item) -> str:
    if isinstance(item, Rect):
        attrs = f'x="{_n(item.x)}" y="{_n(item.y)}" width="{_n(item.w)}" height="{_n(item.h)}"'
        if item.cls:
            attrs = f'class="{item.cls}" ' + attrs
        attrs += f' fill="{item.fill}"' + _opacity("fill-opacity", item.fill_opacity) if item.fill else ' fill="none"'
        if item.stroke and item.stroke_width > 0:
            attrs += f' stroke="{item.stroke}" stroke-width="{_n(item.stroke_width)}"'
            attrs += _opacity("stroke-opacity", item.stroke_opacity)
        title = _title_el(item.title)
        return f"<rect {attrs}>{title}</rect>\n" if title else f"<rect {attrs}/>\n"
    if isinstance(item, Text):
        attrs = f'x="{_n(item.x)}" y="{_n(item.y)}" font-size="{_n(item.size)}" fill="{item.color}"'
        if item.anchor != "start":
            attrs += f' text-anchor="{item.anchor}"'
        if item.bold:
            attrs += ' font-weight="bold"'
        if item.underline:
            attrs += ' text-decoration="underline"'
        if item.rotate:
            attrs += f' transform="rotate({_n(item.rotate)} {_n(item.x)} {_n(item.y)})"'
        return f'<text {attrs} xml:space="preserve">{_esc(item.text)}</text>\n'
    if isinstance(item, Path):
        attrs = f'd="{_path_d(item.commands)}"'
        attrs += f' fill="{item.fill}"' + _opacity("fill-opacity", item.fill_opacity) if item.fill else ' fill="none"'
        if item.stroke:
            attrs += (f' stroke="{item.stroke}" stroke-width="{_n(item.width)}" stroke-linecap="{item.cap}"'
                      ' stroke-linejoin="round"' + _opacity("stroke-opacity", item.opacity))
            if item.dash:
                attrs += f' stroke-dasharray="{" ".join(_n(v) for v in item.dash)}"'
        return f"<path {attrs}/>\n"
    if isinstance(item, Circle):
        attrs = f'cx="{_n(item.cx)}" cy="{_n(item.cy)}" r="{_n(item.r)}"'
        attrs += f' fill="{item.fill}"' if item.fill else ' fill="none"'
        if item.stroke and item.stroke_width > 0:
            attrs += f' stroke="{item.stroke}" stroke-width="{_n(item.stroke_width)}"'
            if item.dash:
                attrs += f' stroke-dasharray="{" ".join(_n(v) for v in item.dash)}"'
        title = _title_el(item.title)
        return f"<circle {attrs}>{title}</circle>\n" if title else f"<circle {attrs}/>\n"
    if isinstance(item, Line):
        return (f'<line x1="{_n(item.x1)}" y1="{_n(item.y1)}" x2="{_n(item.x2)}" y2="{_n(item.y2)}" '
                f'stroke="{item.stroke}" stroke-width="{_n(item.width)}"{_opacity("stroke-opacity", item.opacity)}/>\n')
    if isinstance(item, Image):
        rgba = np.asarray(item.rgba, dtype=np.uint8)
        rows, cols = rgba.shape[:2]
        # upsample (nearest) so viewers that smooth bitmaps blur only within a cell
        k = max(1, min(4, 2048 // max(rows, cols)))
        if k > 1:
            rgba = np.repeat(np.repeat(rgba, k, axis=0), k, axis=1)
        data = base64.b64encode(encode_png(rgba)).decode("ascii")
        return (f'<image x="{_n(item.x)}" y="{_n(item.y)}" width="{_n(item.w)}" height="{_n(item.h)}" '
                f'preserveAspectRatio="none" image-rendering="optimizeSpeed" style="image-rendering:pixelated" '
                f'xlink:href="data:image/png;base64,{data}"/>\n')
    raise TypeError(f"unknown figure item {type(item).__name__}")
