"""Draw the Attention Atlas icon: ``resources/icons/attention-atlas.{svg,png,ico,icns}``.

A 5x5 attention heatmap (rows are queries, columns are keys; a strong diagonal and a few
long-range links) on a dark rounded tile, with the attention graph drawn over it: tokens
as nodes, the strongest links as edges. The SVG is written from code (so the picture is
reviewable as text); the raster formats are rendered from that SVG with QtSvg offscreen.

    QT_QPA_PLATFORM=offscreen .venv/bin/python packaging/make_icon.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ICONS = Path(__file__).resolve().parent.parent / "resources" / "icons"
NAME = "attention-atlas"

# Attention-like weights (row = query, column = key), 0..1.
MATRIX = [
    [0.95, 0.20, 0.05, 0.10, 0.35],
    [0.55, 0.85, 0.10, 0.05, 0.15],
    [0.10, 0.60, 0.80, 0.15, 0.05],
    [0.35, 0.05, 0.50, 0.90, 0.10],
    [0.70, 0.10, 0.15, 0.45, 0.85],
]
# viridis-like stops
STOPS = [
    (0.0, (0x2A, 0x1F, 0x5C)),
    (0.35, (0x21, 0x6E, 0x8F)),
    (0.65, (0x27, 0xB0, 0x7F)),
    (1.0, (0xF5, 0xE0, 0x3A)),
]
CELL, GAP, ORIGIN = 32, 4, 42
# nodes sit on cell centres of the diagonal-ish tokens; edges are strong off-diagonal links
NODES = [(1, 1), (3, 0), (2, 3), (4, 4)]  # (col, row) in the grid
EDGES = [(0, 1, 5.0), (1, 2, 3.5), (0, 2, 2.5), (2, 3, 4.5), (0, 3, 3.0)]


def colour(value: float) -> str:
    for (p0, c0), (p1, c1) in zip(STOPS, STOPS[1:], strict=False):
        if value <= p1:
            t = (value - p0) / (p1 - p0)
            rgb = [round(a + (b - a) * t) for a, b in zip(c0, c1, strict=True)]
            return "#{:02x}{:02x}{:02x}".format(*rgb)
    return "#{:02x}{:02x}{:02x}".format(*STOPS[-1][1])


def centre(col: int, row: int) -> tuple[float, float]:
    return ORIGIN + col * (CELL + GAP) + CELL / 2, ORIGIN + row * (CELL + GAP) + CELL / 2


def svg_text() -> str:
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="256" height="256" viewBox="0 0 256 256">',
        "  <title>Attention Atlas</title>",
        "  <defs>",
        '    <linearGradient id="tile" x1="0" y1="0" x2="0" y2="1">',
        '      <stop offset="0" stop-color="#24304f"/>',
        '      <stop offset="1" stop-color="#0f1525"/>',
        "    </linearGradient>",
        "  </defs>",
        '  <rect x="8" y="8" width="240" height="240" rx="44" ry="44" fill="url(#tile)"/>',
        "  <g>",
    ]
    for row, values in enumerate(MATRIX):
        for col, value in enumerate(values):
            x, y = ORIGIN + col * (CELL + GAP), ORIGIN + row * (CELL + GAP)
            parts.append(
                f'    <rect x="{x}" y="{y}" width="{CELL}" height="{CELL}" rx="5" ry="5" fill="{colour(value)}"/>'
            )
    parts.append("  </g>")
    parts.append('  <g fill="none" stroke="#ffffff" stroke-linecap="round" stroke-opacity="0.92">')
    for a, b, width in EDGES:
        (x1, y1), (x2, y2) = centre(*NODES[a]), centre(*NODES[b])
        parts.append(
            f'    <line x1="{x1:g}" y1="{y1:g}" x2="{x2:g}" y2="{y2:g}" stroke-width="{width:g}"/>'
        )
    parts.append("  </g>")
    parts.append('  <g fill="#ffffff" stroke="#ff8a3d" stroke-width="5">')
    for col, row in NODES:
        x, y = centre(col, row)
        parts.append(f'    <circle cx="{x:g}" cy="{y:g}" r="11"/>')
    parts.append("  </g>")
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def render(svg: Path, size: int):
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"QtSvg cannot read {svg}")
    image = QImage(size, size, QImage.Format_ARGB32_Premultiplied)
    image.fill(Qt.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.Antialiasing)
    renderer.render(painter)
    painter.end()
    return image


def main() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtGui import QGuiApplication

    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])  # noqa: F841 (image plugins need it)
    ICONS.mkdir(parents=True, exist_ok=True)
    svg = ICONS / f"{NAME}.svg"
    svg.write_text(svg_text(), encoding="utf-8")
    written = [svg]
    png = ICONS / f"{NAME}.png"
    if not render(svg, 256).save(str(png), "PNG"):
        raise SystemExit(f"cannot write {png}")
    written.append(png)
    # Windows wants .ico, macOS .icns (PyInstaller's icon= on those systems). Qt's image plugins write both.
    for suffix, fmt, size in (("ico", "ICO", 256), ("icns", "ICNS", 512)):
        target = ICONS / f"{NAME}.{suffix}"
        if render(svg, size).save(str(target), fmt):
            written.append(target)
        else:
            print(f"note: this Qt has no {fmt} writer; {target.name} not written", file=sys.stderr)
    for path in written:
        print(f"wrote {path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
