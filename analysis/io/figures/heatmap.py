"""The heatmap figure. No Qt (see analysis/io/figure_data.py)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from analysis.io.figures.base import (
    APPROX_METRICS,
    AXIS_SIZE,
    BASELINE,
    FRAME_COLOR,
    LABEL_SIZE,
    LOG_FLOOR,
    MARGIN,
    MASKED_BACKGROUND,
    MASKED_HATCH,
    TEXT_COLOR,
    TICK_SIZE,
    Figure,
    Image,
    Path,
    Rect,
    Text,
    TextMetrics,
    _colorbar,
    _hex_table,
    _log_ticks,
    _notes,
    _stride_ticks,
    _title,
    axis_labels,
    check_levels,
    colorbar_title,
    colorize,
    colormap_lut,
    format_weight,
    highlight_colors,
    nice_ticks,
    value_levels,
)

# ----------------------------------------------------------------------------- heatmap

#: Heatmap cells written as vector rectangles at most (256 x 256); larger matrices are
#: drawn as one embedded bitmap (without smoothing) and the figure carries a note.
MAX_VECTOR_CELLS = 256 * 256
#: cells up to this count get a tooltip (SVG <title>: query, key, value)
MAX_CELL_TITLES = 128 * 128
HEAT_TARGET = 520.0  # figure units for the longer side of the matrix ...
HEAT_MAX_CELL = 40.0  # ... with cells no larger than this


def heatmap_figure(
    matrix: np.ndarray,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    *,
    masked: np.ndarray | None = None,
    title: str = "",
    signed: bool = False,
    levels: tuple[float, float] | None = None,
    log: bool = False,
    colormap: str = "viridis",
    lut: np.ndarray | None = None,
    metrics: TextMetrics | None = None,
    selected: int | None = None,
    path: Sequence[int] = (),
    colors: Mapping[str, str] | None = None,
    cell_titles: bool | None = None,
    max_vector_cells: int = MAX_VECTOR_CELLS,
    value_name: str | None = None,
) -> Figure:
    """The heatmap of ``matrix[R, C]`` (rows = queries, columns = keys) as a figure.

    Parameters
    ----------
    matrix, row_labels, col_labels : the values and the token labels of both axes.
    masked : bool ``[R, C]``: structurally absent cells (causal upper triangle), drawn
        light grey and hatched, never as weak attention; NaN cells count as masked.
    title : drawn at the top ("" for none).
    signed : values of any sign, coloured by the diverging "signed" map centred at 0
        with symmetric levels; the log scale does not apply to them.
    levels : colour range in value units (default: 0..max, or -m..m when signed).
    log : colour by ``log10(max(A, 1e-4))`` with a tick per power of ten.
    colormap, lut : the colour map's name and, optionally, its exact ``uint8 [n, 4]``
        table (the widgets pass pyqtgraph's); by default :func:`colormap_lut`.
    selected, path : selection marks, drawn only when given: the selected token's row
        and column outlined and its labels bold; the cells ``(path[k], path[k+1])``
        outlined with a line through their centres. A clean figure passes neither.
    cell_titles : give every cell a tooltip "q -> k: value" (default: up to
        ``MAX_CELL_TITLES`` cells).
    max_vector_cells : above this many cells (default 256 x 256 = 65,536) the cells are
        one embedded bitmap instead of ``<rect>`` elements, nearest-neighbour scaled,
        and a note in the figure (and in the SVG's description) says so.
    value_name : what the numbers are, for the colour bar's title ("ALTI rollout",
        "largest attention weight of the heads"; default "attention weight"), with the
        scale's note added (:func:`colorbar_title`).

    Returns
    -------
    Figure : matrix, axis titles, every shown label (thinned to a stride so none
    overlap, never cut), a colour bar with ticks, a "masked" swatch when cells are
    masked, notes.
    """
    metrics = metrics or APPROX_METRICS
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2:
        raise ValueError(f"matrix must be 2-D [queries, keys], got shape {m.shape}")
    n_rows, n_cols = m.shape
    if len(row_labels) != n_rows or len(col_labels) != n_cols:
        raise ValueError(f"{len(row_labels)} row labels and {len(col_labels)} column labels for a matrix of shape {m.shape}")
    if n_rows == 0 or n_cols == 0:
        raise ValueError("nothing to draw: the matrix has no rows or no columns")
    mask = np.isnan(m)
    if masked is not None:
        masked = np.asarray(masked, dtype=bool)
        if masked.shape != m.shape:
            raise ValueError(f"masked has shape {masked.shape}, matrix {m.shape}")
        mask = mask | masked
    cmap_name = "signed" if signed else colormap
    lut = colormap_lut(cmap_name) if lut is None else np.asarray(lut, dtype=np.uint8)
    colors = dict(colors or highlight_colors(cmap_name))
    lo, hi = value_levels(np.where(mask, np.nan, m), signed, check_levels(levels), None)
    use_log = log and not signed
    if use_log:
        data = np.log10(np.maximum(m, LOG_FLOOR))
        lo, hi = math.log10(max(lo, LOG_FLOOR)), math.log10(max(hi, LOG_FLOOR * 10))
        ticks = _log_ticks(lo, hi)
        scale = "log"
    else:
        data = m
        ticks = nice_ticks(lo, hi)
        scale = "signed" if signed else "linear"
    rows, cols = axis_labels(list(row_labels)), axis_labels(list(col_labels))
    raw_rows, raw_cols = [str(x) for x in row_labels], [str(x) for x in col_labels]
    path = [int(p) for p in path]
    sel = None if selected is None else int(selected)

    fig = Figure(0, 0, title=title or "attention heatmap",
                 description="Attention Atlas heatmap: rows = queries (attending), columns = keys (attended to)")
    s = min(HEAT_MAX_CELL, max(1.0, HEAT_TARGET / max(n_rows, n_cols)))
    mw, mh = n_cols * s, n_rows * s
    pitch = LABEL_SIZE * 1.3
    row_ticks = _stride_ticks(n_rows, s, pitch, sel)
    col_ticks = _stride_ticks(n_cols, s, pitch, sel)
    wr = max((metrics.width(rows[i], LABEL_SIZE, i == sel) for i in row_ticks), default=0.0)
    wc = max((metrics.width(cols[j], LABEL_SIZE, j == sel) for j in col_ticks), default=0.0)
    y_title, title_w = _title(fig, title, metrics)
    y_axis_title = "query (attends)"
    x_axis_title = "key (attended to)"
    x0 = MARGIN + AXIS_SIZE * 1.2 + 8 + wr + 4 + 4
    y0 = y_title + 4

    # cells
    if n_rows * n_cols <= max_vector_cells:
        hexes = np.array(_hex_table(lut))
        span = (hi - lo) or 1.0
        idx = np.clip(np.nan_to_num((data - lo) / span, nan=0.0) * (len(lut) - 1) + 0.5, 0, len(lut) - 1).astype(np.intp)
        titles = cell_titles if cell_titles is not None else n_rows * n_cols <= MAX_CELL_TITLES
        ov = min(0.6, 0.3 * s)
        for i in range(n_rows):
            y = y0 + i * s
            h = s + (ov if i < n_rows - 1 else 0.0)
            for j in range(n_cols):
                w = s + (ov if j < n_cols - 1 else 0.0)
                tip = None
                if titles:
                    value = "masked (causal)" if mask[i, j] else format_weight(float(m[i, j]))
                    tip = f"{raw_rows[i]} -> {raw_cols[j]}: {value}\nquery {i} -> key {j}"
                fill = MASKED_BACKGROUND if mask[i, j] else hexes[idx[i, j]]
                fig.items.append(Rect(x0 + j * s, y, w, h, fill=str(fill), title=tip, crisp=True, cls="cell"))
    else:
        rgba = colorize(np.where(mask, np.nan, data), lut, (lo, hi))
        rgba[mask] = (0xE2, 0xE2, 0xE2, 255)
        fig.items.append(Image(x0, y0, mw, mh, rgba))
        fig.notes.append(
            f"The {n_rows:,} x {n_cols:,} cells are one embedded bitmap: more than "
            f"{max_vector_cells:,} cells are not written as vector rectangles."
        )
    if mask.any() and s >= 5:  # hatching: "/" lines that run on across neighbouring cells
        cmds: list = []
        parts = 2 if s >= 14 else 1
        for i, j in zip(*np.nonzero(mask), strict=True):
            x, y = x0 + j * s, y0 + i * s
            for k in range(1, parts + 1):
                f = k / parts
                cmds += [("M", x, y + f * s), ("L", x + f * s, y)]
                if k < parts:
                    cmds += [("M", x + f * s, y + s), ("L", x + s, y + f * s)]
        fig.items.append(Path(tuple(cmds), stroke=MASKED_HATCH, width=0.8, cap="butt"))
    fig.items.append(Rect(x0, y0, mw, mh, stroke=FRAME_COLOR, stroke_width=0.8))

    # selection marks (only when asked for)
    if sel is not None:
        for rect in ([(x0, y0 + sel * s, mw, s)] if sel < n_rows else []) + (
            [(x0 + sel * s, y0, s, mh)] if sel < n_cols else []
        ):
            fig.items.append(Rect(*rect, fill=colors["outline"], fill_opacity=40 / 255,
                                  stroke=colors["outline"], stroke_width=1.5))
    cells = [(q, k) for q, k in zip(path[:-1], path[1:], strict=False) if 0 <= q < n_rows and 0 <= k < n_cols]
    for q, k in cells:
        fig.items.append(Rect(x0 + k * s, y0 + q * s, s, s, stroke=colors["path"], stroke_width=2.5))
    if len(cells) > 1:
        cmds = [("M", x0 + (cells[0][1] + 0.5) * s, y0 + (cells[0][0] + 0.5) * s)]
        cmds += [("L", x0 + (k + 0.5) * s, y0 + (q + 0.5) * s) for q, k in cells[1:]]
        fig.items.append(Path(tuple(cmds), stroke=colors["path"], width=1.5))

    # labels and ticks
    tick_cmds: list = []
    for i in row_ticks:
        yc = y0 + (i + 0.5) * s
        tick_cmds += [("M", x0 - 4, yc), ("L", x0, yc)]
        bold = i == sel
        fig.items.append(Text(x0 - 7, yc + BASELINE * LABEL_SIZE, rows[i], LABEL_SIZE,
                              colors["label"] if bold else TEXT_COLOR, anchor="end", bold=bold))
    for j in col_ticks:
        xc = x0 + (j + 0.5) * s
        tick_cmds += [("M", xc, y0 + mh), ("L", xc, y0 + mh + 4)]
        bold = j == sel
        fig.items.append(Text(xc + BASELINE * LABEL_SIZE, y0 + mh + 7, cols[j], LABEL_SIZE,
                              colors["label"] if bold else TEXT_COLOR, anchor="end", bold=bold, rotate=-90))
    if tick_cmds:
        fig.items.append(Path(tuple(tick_cmds), stroke=FRAME_COLOR, width=0.8, cap="butt"))

    # axis titles: centred on the matrix, moved inwards where the matrix is smaller
    ytw = metrics.width(y_axis_title, AXIS_SIZE)
    yc = max(y0 + mh / 2, y0 + ytw / 2)
    fig.items.append(Text(MARGIN + AXIS_SIZE * 0.85, yc, y_axis_title, AXIS_SIZE, TEXT_COLOR,
                          anchor="middle", rotate=-90))
    xtw = metrics.width(x_axis_title, AXIS_SIZE)
    x_axis_y = y0 + mh + 7 + wc + 8 + AXIS_SIZE
    xc = max(x0 + mw / 2, MARGIN + xtw / 2)
    fig.items.append(Text(xc, x_axis_y, x_axis_title, AXIS_SIZE, TEXT_COLOR, anchor="middle"))
    bottom = x_axis_y + AXIS_SIZE * 0.35

    # colour bar (at least 150 units tall so its ticks have room)
    bar_h = max(mh, 150.0)
    bar_items, right = _colorbar(x0 + mw + 22, y0, bar_h, lut, ticks, (lo, hi), colorbar_title(scale, value_name), metrics)
    fig.items.extend(bar_items)
    right = max(right, xc + xtw / 2)
    bar_bottom = y0 + bar_h
    if mask.any():
        sx, sy = x0 + mw + 22, bar_bottom + 12
        fig.items.append(Rect(sx, sy, 14, 14, fill=MASKED_BACKGROUND, stroke=FRAME_COLOR, stroke_width=0.8))
        fig.items.append(Path((("M", sx, sy + 14), ("L", sx + 14, sy), ("M", sx, sy + 7), ("L", sx + 7, sy),
                               ("M", sx + 7, sy + 14), ("L", sx + 14, sy + 7)), stroke=MASKED_HATCH, width=0.8))
        label = "masked (causal)"
        fig.items.append(Text(sx + 20, sy + 7 + BASELINE * TICK_SIZE, label, TICK_SIZE, TEXT_COLOR))
        right = max(right, sx + 20 + metrics.width(label, TICK_SIZE))
        bar_bottom = sy + 14
    bottom = max(bottom, bar_bottom, yc + ytw / 2)
    width = max(right, MARGIN + title_w) + MARGIN
    bottom = _notes(fig, bottom + 4, width - 2 * MARGIN, metrics)
    fig.width, fig.height = math.ceil(width), math.ceil(bottom + MARGIN)
    fig.meta = {"kind": "heatmap", "x0": x0, "y0": y0, "cell": s, "rows": n_rows, "cols": n_cols,
                "vector": n_rows * n_cols <= max_vector_cells, "levels": (lo, hi), "scale": scale}
    return fig


