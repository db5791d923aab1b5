"""The token view figure. No Qt (see analysis/io/figure_data.py)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from analysis.io.figures.base import (
    APPROX_METRICS,
    BASELINE,
    FRAME_COLOR,
    MARGIN,
    MUTED_COLOR,
    TEXT_COLOR,
    TICK_SIZE,
    Figure,
    Line,
    Rect,
    Text,
    TextMetrics,
    _clean_text,
    _hex,
    _notes,
    _title,
    format_weight,
)

# ----------------------------------------------------------------------------- token view

WEIGHT_RGB = (255, 140, 0)  # orange: readable under dark text at any intensity
SELECTED_TOKEN_COLOR = "#1e5ac8"
CHIP_COLOR = "#e4e4e4"


def token_pieces(text: str, pair: str | None, labels: Sequence[str], offsets: np.ndarray,
                 segment_ids: np.ndarray, special_mask: np.ndarray) -> list[tuple]:
    """The input text cut into what the token view draws, in reading order:
    ``("text", s)`` (text between tokens), ``("token", index, s, chip)`` (a token's span
    of the text, or its label as a chip for special tokens and tokens without a span),
    ``("pair",)`` (where the second text starts)."""
    texts = {0: text, 1: pair or ""}
    cursor = {0: 0, 1: 0}
    out: list[tuple] = []
    pair_started = False
    current = 0
    offsets = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)

    def flush(segment: int, upto: int | None = None) -> None:
        src = texts[segment]
        end = len(src) if upto is None else max(cursor[segment], min(upto, len(src)))
        if end > cursor[segment]:
            out.append(("text", src[cursor[segment]:end]))
            cursor[segment] = end

    def start_pair() -> None:
        nonlocal pair_started, current
        flush(0)
        out.append(("pair",))
        pair_started = True
        current = 1

    for i, label in enumerate(labels):
        seg = int(segment_ids[i])
        start, end = (int(x) for x in offsets[i])
        if special_mask[i] or seg < 0 or seg not in texts or end <= start:
            src = texts[current]
            if special_mask[i] and label and src.startswith(str(label), cursor[current]):
                cursor[current] += len(str(label))  # written out in the text too (a generation's
                # chat template): the chip stands for it, the text must not repeat it
            out.append(("token", i, str(label), True))
            continue
        if seg == 1 and not pair_started and pair is not None:
            start_pair()
        if seg != current:
            current = seg
        flush(seg, start)
        s = max(start, cursor[seg])
        e = min(end, len(texts[seg]))
        if e <= s:  # span already consumed (overlapping offsets): show the label
            out.append(("token", i, str(label), True))
            continue
        out.append(("token", i, texts[seg][s:e], False))
        cursor[seg] = e
    flush(0)
    if pair is not None:
        if not pair_started:
            start_pair()
        flush(1)
    return out


def token_colors(weights: np.ndarray | None, selected: int | None, n: int,
                 base: tuple[int, int, int] = (255, 255, 255)) -> list[str | None]:
    """Background of each token: ``base`` blended towards orange by
    ``(w / peak) ** 0.8``, ``peak`` = the largest weight of the *other* tokens (the
    strongest key is fully coloured even if the selected token attends mostly to itself)."""
    if weights is None:
        return [None] * n
    w = np.asarray(weights, dtype=np.float64)
    others = np.delete(w, selected) if selected is not None else w
    peak = float(others.max()) if others.size and others.max() > 0 else 1.0
    out = []
    for v in w:
        a = float(np.clip((v / peak) ** 0.8 if v > 0 else 0.0, 0.0, 1.0))
        out.append(_hex(tuple(round(b * (1 - a) + t * a) for b, t in zip(base, WEIGHT_RGB, strict=True))))
    return out


def tokens_figure(
    text: str,
    pair: str | None,
    labels: Sequence[str],
    offsets: np.ndarray,
    segment_ids: np.ndarray,
    special_mask: np.ndarray,
    weights: np.ndarray | None = None,
    selected: int | None = None,
    *,
    title: str = "",
    mark_selected: bool = False,
    metrics: TextMetrics | None = None,
    width: float = 720.0,
) -> Figure:
    """The token view: the text as typed, each token's span coloured by ``weights``
    (one row of attention; see :func:`token_colors`), special tokens as small chips, the
    pair after a rule, wrapped to ``width``; a legend bar from 0 to the strongest weight.
    ``mark_selected`` (a highlight) writes the selected token bold, underlined, in blue."""
    metrics = metrics or APPROX_METRICS
    n = len(labels)
    pieces = token_pieces(text, pair, labels, offsets, segment_ids, special_mask)
    colors = token_colors(weights, selected, n)
    fig = Figure(0, 0, title=title or "tokens", description="Attention Atlas token view")
    y_title, title_w = _title(fig, title, metrics)
    size, chip_size = 14, 11
    line_h = size * 1.75
    left = MARGIN
    right_limit = MARGIN + width
    # units: (kind, text, token, chip); kinds: word, space, newline, rule
    units: list[tuple] = []
    for piece in pieces:
        if piece[0] == "pair":
            units.append(("rule", "", -1, False))
        elif piece[0] == "text":
            for k, line in enumerate(piece[1].split("\n")):
                if k:
                    units.append(("newline", "", -1, False))
                for chunk in _split_spaces(line):
                    units.append(("space" if chunk.isspace() else "word", chunk, -1, False))
        else:
            _, i, s, chip = piece
            s = _clean_text(s)
            units.append(("word", s.strip() or s, i, chip))
    # greedy wrap over groups of units not separated by spaces
    x, y = left, y_title + 4
    max_x = left
    rules: list[int] = []

    def unit_width(u) -> float:
        kind, s, i, chip = u
        if kind == "space":
            return metrics.width(" ", size) * len(s)
        if chip:
            return metrics.width(s, chip_size) + 8 + 2
        return metrics.width(s, size, mark_selected and i == selected)

    k = 0
    while k < len(units):
        kind = units[k][0]
        if kind == "newline":
            x, y = left, y + line_h
            k += 1
            continue
        if kind == "rule":
            if x > left:
                y += line_h
            rules.append(len(fig.items))  # its right end is the text's, known once all is placed
            fig.items.append(Line(left, y + line_h * 0.45, right_limit, y + line_h * 0.45, stroke="#bcccdc", width=1))
            x, y = left, y + line_h
            k += 1
            continue
        if kind == "space":
            if x > left:
                x += unit_width(units[k])
            k += 1
            continue
        group_end = k
        while group_end < len(units) and units[group_end][0] == "word":
            group_end += 1
        group_w = sum(unit_width(u) for u in units[k:group_end])
        if x > left and x + group_w > right_limit:
            x, y = left, y + line_h
        for u in units[k:group_end]:
            _, s, i, chip = u
            w = unit_width(u)
            color = colors[i] if i >= 0 else None
            if chip:
                fig.items.append(Rect(x + 1, y + line_h * 0.22, w - 2, line_h * 0.62, fill=color or CHIP_COLOR,
                                      title=_token_title(labels, weights, i)))
                fig.items.append(Text(x + w / 2, y + line_h * 0.53 + BASELINE * chip_size, s, chip_size,
                                      TEXT_COLOR, anchor="middle"))
            else:
                if color is not None or i >= 0:
                    fig.items.append(Rect(x, y + line_h * 0.12, w, line_h * 0.8, fill=color or "#ffffff",
                                          fill_opacity=1.0 if color else 0.0, title=_token_title(labels, weights, i)))
                marked = mark_selected and i == selected and i >= 0
                fig.items.append(Text(x, y + line_h * 0.52 + BASELINE * size, s, size,
                                      SELECTED_TOKEN_COLOR if marked else TEXT_COLOR, bold=marked, underline=marked))
            x += w
            max_x = max(max_x, x)
        k = group_end
    y += line_h
    bottom = y
    if weights is not None:
        w = np.asarray(weights, dtype=np.float64)
        others = np.delete(w, selected) if selected is not None else w
        peak = float(others.max()) if others.size and others.max() > 0 else 1.0
        bar_y = bottom + 10
        slices = 48
        ramp = token_colors(np.linspace(0, peak, slices), None, slices)
        for q in range(slices):
            fig.items.append(Rect(left + q * (160 / slices), bar_y, 160 / slices + (0.5 if q < slices - 1 else 0),
                                  10, fill=ramp[q], crisp=True))
        fig.items.append(Rect(left, bar_y, 160, 10, stroke=FRAME_COLOR, stroke_width=0.8))
        fig.items.append(Text(left, bar_y + 10 + TICK_SIZE * 1.3, "0", TICK_SIZE, TEXT_COLOR))
        fig.items.append(Text(left + 160, bar_y + 10 + TICK_SIZE * 1.3, format_weight(peak), TICK_SIZE,
                              TEXT_COLOR, anchor="middle"))
        legend = "colour: weight, relative to the strongest other token"
        fig.items.append(Text(left + 160 + 24, bar_y + 5 + BASELINE * TICK_SIZE, legend, TICK_SIZE, MUTED_COLOR))
        max_x = max(max_x, left + 184 + metrics.width(legend, TICK_SIZE),
                    left + 160 + metrics.width(format_weight(peak), TICK_SIZE) / 2)
        bottom = bar_y + 10 + TICK_SIZE * 1.6
    width_total = max(max_x, MARGIN + title_w) + MARGIN
    for index in rules:
        fig.items[index] = replace(fig.items[index], x2=width_total - MARGIN)
    bottom = _notes(fig, bottom, width_total - 2 * MARGIN, metrics)
    fig.width, fig.height = math.ceil(width_total), math.ceil(bottom + MARGIN)
    return fig


def _split_spaces(s: str) -> list[str]:
    out: list[str] = []
    for ch in s:
        if out and out[-1][-1].isspace() == ch.isspace():
            out[-1] += ch
        else:
            out.append(ch)
    return out


def _token_title(labels: Sequence[str], weights: np.ndarray | None, i: int) -> str | None:
    if i < 0:
        return None
    if weights is None:
        return f"{i} {labels[i]}"
    return f"{labels[i]} · {format_weight(float(np.asarray(weights)[i]))}"


