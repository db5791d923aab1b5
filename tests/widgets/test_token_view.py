"""TokenTextView: tokens coloured in the original text, chips, pair, clicks."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from widgets.token_view import EMPTY_HINT, TokenTextView

pytestmark = [
    pytest.mark.qt_log_level_fail("WARNING"),
    pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints"),
]

TEXT = "The cat sat."
PAIR = "A dog"
# [CLS] The cat sat . [SEP] A dog [SEP]
LABELS = ["[CLS]", "the", "cat", "sat", ".", "[SEP]", "a", "dog", "[SEP]"]
OFFSETS = np.array([(0, 0), (0, 3), (4, 7), (8, 11), (11, 12), (0, 0), (0, 1), (2, 5), (0, 0)])
SEGMENTS = np.array([-1, 0, 0, 0, 0, -1, 1, 1, -1])
SPECIAL = np.array([True, False, False, False, False, True, False, False, True])


@pytest.fixture
def view(qtbot):
    w = TokenTextView()
    qtbot.addWidget(w)
    w.resize(500, 240)
    w.show()
    qtbot.waitExposed(w)
    return w


def _fill(view):
    view.set_tokens(TEXT, PAIR, LABELS, OFFSETS, SEGMENTS, SPECIAL)


def test_empty_state(view):
    assert view.is_empty()
    hint = view.findChild(type(view._hint), "tokenViewEmptyHint")
    assert hint.isVisible() and hint.text() == EMPTY_HINT


def test_text_is_shown_as_typed_with_chips_and_pair(view):
    _fill(view)
    plain = view.browser().toPlainText()
    first, second = plain.split("\n", 1) if "\n" in plain else (plain, "")
    assert "The cat sat." in plain  # original casing and punctuation, not the labels
    assert "A dog" in plain
    assert plain.index("[CLS]") < plain.index("The") < plain.index("[SEP]") < plain.index("A dog")
    assert "<hr" in view.html()  # separator between text and pair
    # every token is an anchor
    for i in range(len(LABELS)):
        assert view.anchor_position(i) >= 0


def test_weights_colour_the_right_spans(view):
    _fill(view)
    weights = np.zeros(len(LABELS))
    weights[2] = 0.8  # "cat"
    weights[7] = 0.2  # "dog"
    view.set_weights(weights, selected=1)
    strong, weak, none = view.token_color(2), view.token_color(7), view.token_color(3)
    # intensity by weight: lighter (higher lightness) for less attention
    assert strong.lightness() < weak.lightness() < none.lightness()
    assert none == view.browser().palette().color(view.browser().palette().ColorRole.Base)
    # the colour sits on the span of "cat" in the document
    doc = view.browser().document()
    pos = view.anchor_position(2)
    block = doc.findBlock(pos)
    it = block.begin()
    found = False
    while not it.atEnd():
        frag = it.fragment()
        if frag.charFormat().anchorHref() == "tok:2":
            assert frag.text() == "cat"
            assert frag.charFormat().background().color() == strong
            found = True
        it += 1
    assert found
    assert view.token_tooltip(2) == "cat · 0.800"
    assert 'title="cat · 0.800"' in view.html()
    # the selected token is bold
    assert "font-weight: bold" in view.html().split('href="tok:1"')[1].split("</a>")[0]
    view.set_weights(None, None)
    assert view.token_color(2) is None


def test_click_on_token_anchor_emits_index(view, qtbot):
    _fill(view)
    view.set_weights(np.full(len(LABELS), 1 / len(LABELS)), selected=None)
    QApplication.processEvents()
    for index in (2, 7):
        pos = view.anchor_point(index)
        with qtbot.waitSignal(view.token_selected, timeout=1000) as blocker:
            qtbot.mouseClick(view.browser().viewport(), Qt.MouseButton.LeftButton, pos=pos)
        assert blocker.args == [index]


def test_bad_lengths_raise(view):
    with pytest.raises(ValueError):
        view.set_tokens(TEXT, None, LABELS[:3], OFFSETS, SEGMENTS, SPECIAL)
    _fill(view)
    with pytest.raises(ValueError):
        view.set_weights(np.zeros(3), None)
    with pytest.raises(IndexError):
        view.set_weights(np.zeros(len(LABELS)), 99)


def test_overlapping_or_empty_spans_still_clickable(view):
    # two tokens for one character (byte-level split) and a token with no span
    view.set_tokens(
        "é!",
        None,
        ["é1", "é2", "!", "<eos>"],
        np.array([(0, 1), (0, 1), (1, 2), (0, 0)]),
        np.array([0, 0, 0, -1]),
        np.array([False, False, False, True]),
    )
    for i in range(4):
        assert view.anchor_position(i) >= 0


def test_figure_shows_the_text_as_typed_with_the_colours_shown(view, tmp_path):
    from analysis.io import figure_data as fd

    _fill(view)
    w = np.array([0.0, 0.1, 0.6, 0.2, 0.05, 0.0, 0.3, 0.1, 0.0])
    view.set_weights(w, 2)
    fig = view.figure()
    words = [i.text for i in fig.items if isinstance(i, fd.Text)]
    for word in ("The", "cat", "sat", ".", "[CLS]", "[SEP]", "A", "dog"):
        assert word in words
    assert fig.title == view.caption_text()
    assert any(isinstance(i, fd.Line) for i in fig.items)  # the rule before the pair
    fills = {i.fill for i in fig.items if isinstance(i, fd.Rect) and i.title and i.title.startswith("dog")}
    assert fills == {view.token_color(7).name()}  # same colour as on screen (white base)
    assert view.export_figure(tmp_path / "t.svg").read_text(encoding="utf-8").count("dog") >= 1
    view.clear()
    with pytest.raises(ValueError):
        view.figure()


def test_special_tokens_written_out_in_the_text_show_once():
    from analysis.io.figures.tokens import token_pieces

    text = "<|im_start|>user\nHi<|im_end|>"
    labels = ["<|im_start|>", "user", "⏎", "Hi", "<|im_end|>"]
    offsets = np.array([(0, 0), (12, 16), (16, 17), (17, 19), (0, 0)])
    pieces = token_pieces(text, None, labels, offsets, np.array([-1, 0, 0, 0, -1]),
                          np.array([True, False, False, False, True]))
    shown = "".join(p[2] if p[0] == "token" else p[1] if p[0] == "text" else "" for p in pieces)
    assert shown.count("<|im_start|>") == 1 and shown.count("<|im_end|>") == 1 and "user" in shown
