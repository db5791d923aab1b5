"""Word aggregation: the score of a word is the sum of the scores of its pieces.

Words come from the tokenizer's ``word_ids`` (the run's ``word_ids``): consecutive tokens of
one segment with the same word id form one word; every special token is a unit of its own,
so nothing is dropped and the unit scores still add up to the token scores. No torch.

Examples
--------
>>> import numpy as np
>>> from analysis.attribution.words import word_units, aggregate
>>> units = word_units(word_ids=(None, 0, 0, 1, None), segment_ids=(-1, 0, 0, 0, -1),
...                    labels=("[CLS]", "play", "ing", "now", "[SEP]"))
>>> units.labels
('[CLS]', 'playing', 'now', '[SEP]')
>>> aggregate(np.array([0.0, 1.0, 2.0, 3.0, 0.5]), units)
array([0. , 3. , 3. , 0.5])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class WordUnits:
    """How tokens group into units (words, or tokens when not merged).

    Attributes
    ----------
    token_units : int64 array [T]
        The unit of each token.
    labels : tuple of str [U]
        What each unit reads as: the word's text when offsets are known, else its pieces
        joined.
    spans : int64 array [U, 2]
        Character span of the unit in its segment's text; ``(0, 0)`` for special tokens.
    segments : int64 array [U]
        0 = text, 1 = pair, -1 = special token.
    """

    token_units: np.ndarray
    labels: tuple[str, ...]
    spans: np.ndarray
    segments: np.ndarray

    @property
    def num_units(self) -> int:
        return len(self.labels)


def word_units(
    word_ids: Sequence[int | None],
    segment_ids: Sequence[int],
    *,
    labels: Sequence[str] | None = None,
    offsets: np.ndarray | None = None,
    texts: Sequence[str | None] | None = None,
) -> WordUnits:
    """Group tokens into words by ``(segment, word id)``; specials stay alone.

    Parameters
    ----------
    word_ids : sequence of int or None
        Word index of each token within its segment (None for special tokens), as the
        tokenizer's ``word_ids()`` or ``AttentionRun.word_ids`` give it.
    segment_ids : sequence of int
        0 = text, 1 = pair, -1 = special token (as ``AttentionRun.segment_ids``). A token
        whose word id is None is a unit of its own.
    labels : sequence of str, optional
        Display label of each token; joined for a word when its text is unknown.
    offsets : int array [T, 2], optional
        Character span of each token in its segment's text.
    texts : (text, pair), optional
        The segment texts; with ``offsets`` a word's label is its text.

    Returns
    -------
    WordUnits

    Examples
    --------
    >>> word_units((0, 0, 1), (0, 0, 0)).token_units.tolist()
    [0, 0, 1]
    """
    count = len(word_ids)
    token_units = np.empty(count, dtype=np.int64)
    groups: list[list[int]] = []
    previous = None
    for i, (word, segment) in enumerate(zip(word_ids, segment_ids, strict=True)):
        key = None if word is None else (int(segment), int(word))
        if key is not None and key == previous:
            groups[-1].append(i)
        else:
            groups.append([i])
        previous = key
        token_units[i] = len(groups) - 1
    unit_labels: list[str] = []
    spans = np.zeros((len(groups), 2), dtype=np.int64)
    segments = np.empty(len(groups), dtype=np.int64)
    for u, members in enumerate(groups):
        first, last = members[0], members[-1]
        segments[u] = int(segment_ids[first]) if word_ids[first] is not None else -1
        if offsets is not None:
            spans[u] = (int(offsets[first][0]), int(offsets[last][1]))
        label = None
        if offsets is not None and texts is not None and segments[u] >= 0:
            text = texts[segments[u]] if segments[u] < len(texts) else None
            if text is not None and spans[u, 1] > spans[u, 0]:
                label = text[spans[u, 0] : spans[u, 1]]
        if label is None:
            label = "".join(labels[i] for i in members) if labels is not None else str(u)
        unit_labels.append(label)
    return WordUnits(token_units, tuple(unit_labels), spans, segments)


def token_units(labels: Sequence[str], offsets: np.ndarray, segment_ids: Sequence[int]) -> WordUnits:
    """Every token its own unit (what ``words=False`` means)."""
    count = len(labels)
    return WordUnits(
        np.arange(count, dtype=np.int64),
        tuple(labels),
        np.asarray(offsets, dtype=np.int64).reshape(count, 2),
        np.asarray(segment_ids, dtype=np.int64),
    )


def aggregate(scores: np.ndarray, units: WordUnits) -> np.ndarray:
    """Sum token scores into unit scores along the last axis.

    Parameters
    ----------
    scores : float array [..., T]
        Token scores; NaN marks a token that is no source of that row (a later token of a
        generation) and is skipped; a unit all of whose tokens are NaN stays NaN.
    units : WordUnits

    Returns
    -------
    float64 array [..., U]

    Examples
    --------
    >>> units = word_units((0, 0, 1), (0, 0, 0))
    >>> aggregate(np.array([[1.0, 2.0, np.nan]]), units)
    array([[ 3., nan]])
    """
    scores = np.asarray(scores, dtype=np.float64)
    flat = scores.reshape(-1, scores.shape[-1])
    out = np.zeros((flat.shape[0], units.num_units), dtype=np.float64)
    seen = np.zeros_like(out, dtype=bool)
    valid = ~np.isnan(flat)
    for t, u in enumerate(units.token_units):
        out[:, u] += np.where(valid[:, t], flat[:, t], 0.0)
        seen[:, u] |= valid[:, t]
    out[~seen] = np.nan
    return out.reshape(*scores.shape[:-1], units.num_units)


def spread(unit_scores: np.ndarray, units: WordUnits) -> np.ndarray:
    """Each token gets its unit's score (to paint tokens by word): ``[..., U] -> [..., T]``."""
    return np.asarray(unit_scores)[..., units.token_units]
