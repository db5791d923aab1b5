"""The head overview figure and the head table. No Qt (see analysis/io/figure_data.py)."""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping

import numpy as np

from analysis.io.figures.base import (
    APPROX_METRICS,
    AXIS_SIZE,
    BASELINE,
    FRAME_COLOR,
    LABEL_SIZE,
    MARGIN,
    MASKED_BACKGROUND,
    TEXT_COLOR,
    TICK_SIZE,
    Figure,
    Image,
    Rect,
    Text,
    TextMetrics,
    _colorbar,
    _hex_table,
    _notes,
    _title,
    colormap_lut,
    nice_step,
)
from analysis.io.figures.heatmap import (
    MAX_VECTOR_CELLS,
)
from analysis.io.numbers import format_number

# ----------------------------------------------------------------------------- head overview

HEAD_STAT_FORMATS = {
    "entropy": ("entropy", "nats", lambda v: f"{v:.2f}"),
    "special_share": ("attention to special tokens", "%", lambda v: f"{100 * v:.1f}"),
    "mean_distance": ("mean attention distance", "tokens", lambda v: f"{v:.1f}"),
}


def format_head_stat(name: str, value: float) -> str:
    """One statistic as the overview's tooltip writes it ("entropy: 2.31 nats")."""
    fmt = HEAD_STAT_FORMATS.get(name)
    if fmt is None:
        return f"{name.replace('_', ' ')}: {value:.3g}"
    label, unit, number = fmt
    return f"{label}: {number(value)} {unit}"


def head_tooltip(layer: int, head: int, stats: Mapping[str, np.ndarray] | None) -> str:
    """``"Layer 3 · head 7"`` and one line per statistic."""
    lines = [f"Layer {layer} · head {head}"]
    for key, values in (stats or {}).items():
        lines.append(format_head_stat(key, float(np.asarray(values)[layer, head])))
    return "\n".join(lines)


def _block_average(th: np.ndarray, size: int) -> np.ndarray:
    t = th.shape[-1]
    if size >= t:
        return th
    edges = np.floor(np.arange(size) * (t / size)).astype(np.intp)
    counts = np.diff(np.append(edges, t)).astype(np.float64)
    summed = np.add.reduceat(np.add.reduceat(th.astype(np.float64), edges, axis=-1), edges, axis=-2)
    return summed / (counts[:, None] * counts[None, :])


def heads_figure(
    thumbnails: np.ndarray,
    *,
    colormap: str = "viridis",
    lut: np.ndarray | None = None,
    masked: bool = False,
    stats: Mapping[str, np.ndarray] | None = None,
    current: tuple[int, int] | None = None,
    title: str = "Heads: layer x head",
    metrics: TextMetrics | None = None,
    tile_titles: bool = True,
    max_vector_cells: int = MAX_VECTOR_CELLS,
    bitmap: bool = False,
) -> Figure:
    """The head overview: every layer (rows, 0 at the top) x head (columns) as a tile.

    Each tile is a thumbnail of that head's ``A[query, key]``, coloured from 0 to the
    tile's own maximum (the overview shows the *shape* of each head's pattern), drawn as
    vector cells: thumbnails are block-averaged to at most 16 x 16 cells per tile and to
    ``max_vector_cells`` cells in all. ``masked`` greys the upper triangle (causal
    models). ``current`` (a highlight, only when given) frames one tile in red. Tiles
    carry a tooltip (layer, head and ``stats``) unless ``tile_titles`` is False.
    ``bitmap`` draws each tile as a small embedded image of up to 32 x 32 cells instead
    (compact, for the HTML report; not for print).
    """
    metrics = metrics or APPROX_METRICS
    th = np.asarray(thumbnails, dtype=np.float64)
    if th.ndim != 4 or th.shape[2] != th.shape[3]:
        raise ValueError(f"thumbnails must be [layers, heads, t, t], got {th.shape}")
    n_layers, n_heads, t, _ = th.shape
    if n_layers == 0 or n_heads == 0 or t == 0:
        raise ValueError("nothing to draw: there are no heads")
    lut = colormap_lut(colormap) if lut is None else np.asarray(lut, dtype=np.uint8)
    per_tile = max(1, math.isqrt(max(1, max_vector_cells // (n_layers * n_heads))))
    tf = min(t, 32) if bitmap else min(t, 16, per_tile)
    small = _block_average(th, tf)
    peak = small.reshape(n_layers, n_heads, -1).max(axis=-1)
    norm = small / np.where(peak > 0, peak, 1.0)[..., None, None]
    hexes = np.array(_hex_table(lut))
    idx = np.clip(norm * (len(lut) - 1) + 0.5, 0, len(lut) - 1).astype(np.intp)
    upper = np.triu(np.ones((tf, tf), bool), k=1) if masked else np.zeros((tf, tf), bool)

    fig = Figure(0, 0, title=title or "head overview",
                 description="Attention Atlas head overview: rows = layers, columns = heads; "
                             "each tile coloured from 0 to its own maximum")
    y_title, title_w = _title(fig, title, metrics)
    tile = min(48.0, max(10.0, min(560.0 / n_heads, 720.0 / n_layers)))
    gap = max(2.0, round(tile * 0.08))
    pitch = tile + gap
    layer_w = metrics.width(str(n_layers - 1), LABEL_SIZE)
    x0 = MARGIN + AXIS_SIZE * 1.2 + 8 + layer_w + 6
    y0 = y_title + AXIS_SIZE * 1.3 + 4 + LABEL_SIZE * 1.3
    head_step = nice_step((metrics.width(str(n_heads - 1), LABEL_SIZE) + 6) / pitch)
    layer_step = nice_step(LABEL_SIZE * 1.3 / pitch)
    cell = tile / tf
    ov = min(0.6, 0.3 * cell)
    for layer in range(n_layers):
        for head in range(n_heads):
            tx, ty = x0 + head * pitch, y0 + layer * pitch
            if bitmap:
                rgba = lut[idx[layer, head]].copy()
                rgba[upper] = (0xE2, 0xE2, 0xE2, 255)
                fig.items.append(Image(tx, ty, tile, tile, rgba))
            for i in range(tf if not bitmap else 0):
                h = cell + (ov if i < tf - 1 else 0.0)
                for j in range(tf):
                    w = cell + (ov if j < tf - 1 else 0.0)
                    fill = MASKED_BACKGROUND if upper[i, j] else str(hexes[idx[layer, head, i, j]])
                    fig.items.append(Rect(tx + j * cell, ty + i * cell, w, h, fill=fill, crisp=True))
            if tile_titles:
                fig.items.append(Rect(tx, ty, tile, tile, fill="#ffffff", fill_opacity=0.0,
                                      title=head_tooltip(layer, head, stats), cls="tile"))
    grid_w = n_heads * pitch - gap
    grid_h = n_layers * pitch - gap
    for head in range(0, n_heads, head_step):
        fig.items.append(Text(x0 + head * pitch + tile / 2, y0 - 5, str(head), LABEL_SIZE, TEXT_COLOR, anchor="middle"))
    for layer in range(0, n_layers, layer_step):
        fig.items.append(Text(x0 - 6, y0 + layer * pitch + tile / 2 + BASELINE * LABEL_SIZE, str(layer),
                              LABEL_SIZE, TEXT_COLOR, anchor="end"))
    head_title_w = metrics.width("head", AXIS_SIZE)
    fig.items.append(Text(x0 + max(grid_w, head_title_w) / 2, y_title + AXIS_SIZE, "head", AXIS_SIZE,
                          TEXT_COLOR, anchor="middle"))
    layer_title_w = metrics.width("layer", AXIS_SIZE)
    yc = y0 + max(grid_h, layer_title_w) / 2
    fig.items.append(Text(MARGIN + AXIS_SIZE * 0.85, yc, "layer", AXIS_SIZE, TEXT_COLOR, anchor="middle", rotate=-90))
    if current is not None:
        layer, head = int(current[0]), int(current[1])
        if 0 <= layer < n_layers and 0 <= head < n_heads:
            fig.items.append(Rect(x0 + head * pitch - 1.5, y0 + layer * pitch - 1.5, tile + 3, tile + 3,
                                  stroke="#e62828", stroke_width=2.5))
    bar_h = max(min(grid_h, 220.0), 120.0)
    bar_items, right = _colorbar(x0 + grid_w + 22, y0, bar_h, lut, [(0.0, "0"), (1.0, "max")], (0.0, 1.0),
                                 "each head: 0 to its maximum", metrics)
    fig.items.extend(bar_items)
    bottom = max(y0 + grid_h, y0 + bar_h, yc + layer_title_w / 2)
    if masked:
        sx, sy = x0 + grid_w + 22, y0 + bar_h + 12
        fig.items.append(Rect(sx, sy, 14, 14, fill=MASKED_BACKGROUND, stroke=FRAME_COLOR, stroke_width=0.8))
        fig.items.append(Text(sx + 20, sy + 7 + BASELINE * TICK_SIZE, "masked (causal)", TICK_SIZE, TEXT_COLOR))
        right = max(right, sx + 20 + metrics.width("masked (causal)", TICK_SIZE))
        bottom = max(bottom, sy + 14)
    width = max(right, MARGIN + title_w) + MARGIN
    bottom = _notes(fig, bottom + 4, width - 2 * MARGIN, metrics)
    fig.width, fig.height = math.ceil(width), math.ceil(bottom + MARGIN)
    fig.meta = {"kind": "heads", "x0": x0, "y0": y0, "pitch": pitch, "tile": tile, "layers": n_layers,
                "heads": n_heads, "cells_per_tile": tf}
    return fig


def head_table(stats: Mapping[str, np.ndarray]) -> tuple[list[str], list[list]]:
    """Every head's statistics as a table: header ``["layer", "head", *names]`` and one
    row ``[layer, head, value, ...]`` per head, in layer then head order."""
    names = list(stats)
    if not names:
        return ["layer", "head"], []
    arrays = [np.asarray(stats[k], dtype=np.float64) for k in names]
    shape = arrays[0].shape
    for k, a in zip(names, arrays, strict=True):
        if a.shape != shape or a.ndim != 2:
            raise ValueError(f"stat {k!r} has shape {a.shape}, expected {shape} [layers, heads]")
    rows = [[layer, head, *(float(a[layer, head]) for a in arrays)]
            for layer in range(shape[0]) for head in range(shape[1])]
    return ["layer", "head", *names], rows


def write_head_table_csv(path: str | os.PathLike, stats: Mapping[str, np.ndarray]) -> None:
    """Write :func:`head_table` as CSV (``layer,head,entropy,special_share,...``; values
    as every file writes them, :func:`analysis.io.numbers.format_number`; entropy in nats,
    special_share 0..1, mean_distance in tokens)."""
    header, rows = head_table(stats)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for row in rows:
            writer.writerow([row[0], row[1], *(format_number(v) for v in row[2:])])


