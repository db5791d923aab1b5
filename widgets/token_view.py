"""The input text with each token's span coloured by the attention the selected token
pays it (one row of ``A``: ``weights[j] = A[selected, j]``).

Tokens are drawn *in the original text* using their character offsets, so spacing and
punctuation look as typed; special tokens ([CLS], [SEP], <s>, ...) appear as small
chips where they sit in the sequence; a pair (second text) comes below the first after a
separator. Background intensity is ``weight / max(weight over the other tokens)``: the
row is relative, so the strongest key is always fully coloured, and the tooltip gives the
exact weight. Every token is an anchor ``tok:<index>``; clicking it emits
``token_selected(index)``. The text is cut into tokens and the text between them by
:func:`analysis.io.figure_data.token_pieces`, which the exported figure
(:meth:`TokenTextView.figure`) and the HTML report use too.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np
from PySide6.QtCore import QPoint, QUrl, Signal
from PySide6.QtGui import QColor, QPalette, QTextCursor
from PySide6.QtWidgets import QLabel, QTextBrowser, QVBoxLayout, QWidget

from analysis.io import figure_data as fd
from widgets import figure_export
from widgets.empty_state import hint_label, hint_stack

__all__ = ["TokenTextView", "EMPTY_HINT", "ANCHOR_PREFIX"]

EMPTY_HINT = "Type a text and press Ctrl+Enter: its tokens appear here, coloured by attention"
SELECT_HINT = "Click a token (here, in the heatmap or in the graph) to colour the text by the attention it pays."
ANCHOR_PREFIX = "tok:"
WEIGHT_COLOR = QColor(*fd.WEIGHT_RGB)  # orange: readable under black text at any intensity
SELECTED_COLOR = QColor(30, 90, 200)
GENERATED_COLOR = "#bf5b00"  # generated tokens (a generation's answer)


def _text_html(s: str) -> str:
    return html.escape(s).replace("\n", "<br/>")


class TokenTextView(QWidget):
    """Tokens of the input text, coloured by one row of attention.

    Signals
    -------
    token_selected(int)
        The person clicked token ``index``.
    token_hovered(int)
        The mouse entered token ``index`` (-1 when it leaves the tokens).
    """

    token_selected = Signal(int)
    token_hovered = Signal(int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._text = ""
        self._pair: str | None = None
        self._generated_from: int | None = None  # first generated token (a generation's answer)
        self._labels: tuple[str, ...] = ()
        self._offsets = np.zeros((0, 2), np.int64)
        self._segments = np.zeros(0, np.int64)
        self._special = np.zeros(0, bool)
        self._weights: np.ndarray | None = None
        self._selected: int | None = None
        self._html = ""

        self._hint = hint_label(EMPTY_HINT, "tokenViewEmptyHint")

        self._browser = QTextBrowser()
        self._browser.setObjectName("tokenViewBrowser")
        self._browser.setOpenLinks(False)
        self._browser.setOpenExternalLinks(False)
        self._browser.anchorClicked.connect(self._on_anchor_clicked)
        self._browser.highlighted.connect(self._on_highlighted)
        font = self._browser.font()
        font.setPointSizeF(font.pointSizeF() * 1.2)
        self._browser.setFont(font)

        self._caption = QLabel(SELECT_HINT)
        self._caption.setObjectName("tokenViewCaption")
        self._caption.setStyleSheet("color: palette(dark);")
        self._page = QWidget()
        page_layout = QVBoxLayout(self._page)
        page_layout.setContentsMargins(0, 0, 0, 0)
        page_layout.setSpacing(2)
        page_layout.addWidget(self._caption)
        page_layout.addWidget(self._browser, 1)

        self._stack = hint_stack(self, self._hint, self._page)

    # -- data ------------------------------------------------------------------------------
    def set_tokens(
        self,
        text: str,
        pair: str | None,
        labels: Sequence[str],
        offsets: np.ndarray,
        segment_ids: np.ndarray,
        special_mask: np.ndarray,
    ) -> None:
        """The tokens of a run: ``offsets [T, 2]`` are character spans in their segment's
        text (segment 0 = ``text``, 1 = ``pair``, -1 = special token). Clears weights."""
        t = len(labels)
        offsets = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
        segment_ids = np.asarray(segment_ids, dtype=np.int64).reshape(-1)
        special_mask = np.asarray(special_mask, dtype=bool).reshape(-1)
        if not (len(offsets) == len(segment_ids) == len(special_mask) == t):
            raise ValueError(
                f"{t} labels, {len(offsets)} offsets, {len(segment_ids)} segment ids and "
                f"{len(special_mask)} special flags: they must all be the same length"
            )
        self._text, self._pair = text, pair
        self._labels = tuple(map(str, labels))
        self._offsets, self._segments, self._special = offsets, segment_ids, special_mask
        self._weights = None
        self._selected = None
        self._generated_from = None
        self._rebuild()
        self._stack.setCurrentWidget(self._page)

    def set_weights(self, weights: np.ndarray | None, selected: int | None) -> None:
        """Colour token ``j`` by ``weights[j]`` (the selected token's row of attention);
        ``selected`` is outlined (bold, underlined). ``None`` weights clear the colours."""
        if weights is not None:
            weights = np.asarray(weights, dtype=np.float64).reshape(-1)
            if len(weights) != len(self._labels):
                raise ValueError(f"{len(weights)} weights for {len(self._labels)} tokens")
        if selected is not None and not 0 <= int(selected) < len(self._labels):
            raise IndexError(f"token {selected} out of range")
        selected = None if selected is None else int(selected)
        unchanged = selected == self._selected and (
            (weights is None and self._weights is None)
            or (weights is not None and self._weights is not None and np.array_equal(weights, self._weights))
        )
        if unchanged:
            return  # rebuilding the HTML of 512 tokens costs ~15 ms: only when something changed
        self._weights = weights
        self._selected = selected
        self._caption.setText(self.caption_text())
        self._rebuild()

    def set_generated_from(self, index: int | None) -> None:
        """Mark the tokens from ``index`` on as generated (a divider and a tint); None: none."""
        if index != self._generated_from:
            self._generated_from = index
            if self._labels:
                self._rebuild()

    def clear(self) -> None:
        self._generated_from = None
        self._labels = ()
        self._weights = None
        self._selected = None
        self._html = ""
        self._browser.clear()
        self._stack.setCurrentWidget(self._hint)

    # -- accessors -------------------------------------------------------------------------
    def html(self) -> str:
        """The HTML shown (for tests and exports)."""
        return self._html

    def browser(self) -> QTextBrowser:
        return self._browser

    def figure(self, *, include_highlight: bool = False, title: str | None = None):
        """The text with its tokens coloured as shown, as a figure
        (:class:`analysis.io.figure_data.Figure`) with a legend bar from 0 to the
        strongest weight; the title defaults to the caption (what the colours mean).
        Clean by default: the colours stay (they are the data), the selected token is
        not marked; ``include_highlight`` writes it bold, underlined, in blue.
        ``ValueError`` when empty."""
        if not self._labels:
            raise ValueError("nothing to export: no tokens are shown")
        return fd.tokens_figure(
            self._text, self._pair, self._labels, self._offsets, self._segments, self._special,
            self._weights, self._selected, title=self.caption_text() if title is None else title,
            mark_selected=include_highlight, metrics=figure_export.figure_metrics(),
        )

    def export_figure(self, path, *, width: int | None = None, dpi: float | None = None,
                      include_highlight: bool = False, title: str | None = None, fmt: str | None = None):
        """Write :meth:`figure` as PNG, SVG or PDF by the extension (or ``fmt``); see
        :func:`widgets.figure_export.write_figure`. Returns the path."""
        fig = self.figure(include_highlight=include_highlight, title=title)
        return figure_export.write_figure(fig, path, width=width, dpi=dpi, fmt=fmt)

    def token_color(self, index: int) -> QColor | None:
        """Background colour of a token's span (None when uncoloured)."""
        if self._weights is None:
            return None
        return self._colors()[index]

    def token_tooltip(self, index: int) -> str:
        label = self._labels[index]
        if self._weights is None:
            return f"{index} {label}"
        v = float(self._weights[index])
        value = f"{v:.3f}" if v == 0 or abs(v) >= 1e-3 else f"{v:.1e}"
        return f"{label} · {value}"

    def caption_text(self) -> str:
        """What the colours mean right now, or how to get colours."""
        if self._weights is None:
            return SELECT_HINT
        if self._selected is None:
            return "Colour = weight per token."
        return f"Colour = attention paid by “{self._labels[self._selected]}” (token {self._selected}) to each token."

    def weights(self) -> np.ndarray | None:
        """The per-token weights shown (None when nothing is coloured)."""
        return None if self._weights is None else self._weights.copy()

    def selected(self) -> int | None:
        return self._selected

    def is_empty(self) -> bool:
        return not self._labels

    def anchor_position(self, index: int) -> int:
        """Document position (character) inside token ``index``'s anchor; -1 if absent."""
        doc = self._browser.document()
        target = f"{ANCHOR_PREFIX}{index}"
        block = doc.begin()
        while block.isValid():
            it = block.begin()
            while not it.atEnd():
                frag = it.fragment()
                if frag.isValid() and frag.charFormat().anchorHref() == target:
                    return frag.position()
                it += 1
            block = block.next()
        return -1

    def anchor_point(self, index: int):
        """Viewport coordinates (QPoint) of the middle of a token's first character."""
        pos = self.anchor_position(index)
        if pos < 0:
            return None
        cursor = QTextCursor(self._browser.document())
        cursor.setPosition(pos)
        left = self._browser.cursorRect(cursor)
        cursor.setPosition(pos + 1)
        right = self._browser.cursorRect(cursor)
        x = (
            (left.center().x() + right.center().x()) // 2
            if right.top() == left.top()
            else left.center().x() + 2
        )
        return QPoint(x, left.center().y())

    # -- internals -------------------------------------------------------------------------
    def _colors(self) -> list[QColor | None]:
        base = self._browser.palette().color(QPalette.ColorRole.Base)
        colors = fd.token_colors(self._weights, self._selected, len(self._labels),
                                 base=(base.red(), base.green(), base.blue()))
        return [None if c is None else QColor(c) for c in colors]

    def _token_html(self, index: int, inner: str, colors: list[QColor | None], chip: bool) -> str:
        fg = self._browser.palette().color(QPalette.ColorRole.Text).name()
        generated = self._generated_from is not None and index >= self._generated_from
        style = ["text-decoration: none", f"color: {GENERATED_COLOR if generated else fg}"]
        color = colors[index]
        if chip:
            bg = color if color is not None else QColor(228, 228, 228)
            style.append(f"background-color: {bg.name()}")
            style.append("font-size: small")
            inner = f"&#8201;{inner}&#8201;"  # thin spaces: a chip, not glued to words
        elif color is not None:
            style.append(f"background-color: {color.name()}")
        if index == self._selected:
            style.append("font-weight: bold")
            style.append("text-decoration: underline")
            style.append(f"color: {SELECTED_COLOR.name()}")
        title = html.escape(self.token_tooltip(index), quote=True)
        return (
            f'<a href="{ANCHOR_PREFIX}{index}" title="{title}" '
            f'style="{"; ".join(style)}">{inner}</a>'
        )

    def _rebuild(self) -> None:
        colors = self._colors()
        parts: list[str] = ['<p style="white-space: pre-wrap; line-height: 140%">']
        pieces = fd.token_pieces(self._text, self._pair, self._labels, self._offsets, self._segments, self._special)
        for piece in pieces:
            if piece[0] == "text":
                parts.append(_text_html(piece[1]))
            elif piece[0] == "pair":
                parts.append('</p><hr/><p style="white-space: pre-wrap; line-height: 140%">')
            else:
                _, i, text, chip = piece
                if i == self._generated_from:  # where the model's answer starts
                    parts.append(f'<span style="color: {GENERATED_COLOR}; font-weight: bold" '
                                 'title="the model generated the tokens from here on">▌</span>')
                inner = html.escape(text) if chip else _text_html(text)
                parts.append(self._token_html(i, inner, colors, chip=chip))
        parts.append("</p>")
        self._html = "".join(parts)
        scroll = self._browser.verticalScrollBar().value()
        self._browser.setHtml(self._html)
        self._browser.verticalScrollBar().setValue(scroll)

    # -- handlers --------------------------------------------------------------------------
    def _index_from_url(self, url: QUrl) -> int | None:
        s = url.toString()
        if not s.startswith(ANCHOR_PREFIX):
            return None
        try:
            idx = int(s[len(ANCHOR_PREFIX) :])
        except ValueError:
            return None
        return idx if 0 <= idx < len(self._labels) else None

    def _on_anchor_clicked(self, url: QUrl) -> None:
        idx = self._index_from_url(url)
        if idx is not None:
            self.token_selected.emit(idx)

    def _on_highlighted(self, url: QUrl) -> None:
        idx = self._index_from_url(url)
        self._browser.setToolTip(self.token_tooltip(idx) if idx is not None else "")
        self.token_hovered.emit(-1 if idx is None else idx)
