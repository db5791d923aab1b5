"""The attribution strip and bar chart figures (no Qt): colours, order, highlight."""

import numpy as np
import pytest

from analysis.io.figures.attribution import (
    SELECTED_COLOR,
    attribution_bars_figure,
    attribution_strip_figure,
    diverging_color,
)
from analysis.io.figures.base import Rect, Text


def test_the_diverging_map_is_centred_at_zero_and_clipped():
    assert diverging_color(0.0, 2.0) == "#ffffff"
    assert diverging_color(2.0, 2.0) == diverging_color(5.0, 2.0) == "#b2182b"
    assert diverging_color(-2.0, 2.0) == "#2166ac"
    assert diverging_color(1.0, 0.0) == "#ffffff" == diverging_color(float("nan"), 1.0)


def test_the_strip_colours_each_unit_by_its_score_and_greys_non_candidates():
    labels, scores = ["[CLS]", "good", "bad", "[SEP]"], [np.nan, 1.0, -0.5, np.nan]
    fig = attribution_strip_figure(labels, scores, title="t")
    chips = [r for r in fig.items if isinstance(r, Rect) and r.title and ":" in r.title]
    fills = {r.title.split(":")[0]: r.fill for r in chips}
    assert fills["good"] == diverging_color(1.0, 1.0) and fills["bad"] == diverging_color(-0.5, 1.0)
    assert fills["[CLS]"] == fills["[SEP]"] == "#e4e7eb"
    assert SELECTED_COLOR not in fig.colors()  # clean unless a unit is selected
    marked = attribution_strip_figure(labels, scores, selected=2)
    assert SELECTED_COLOR in marked.colors()
    texts = [t.text for t in fig.items if isinstance(t, Text)]
    assert "1.0 raises" in texts and "-1.0 lowers" in texts
    unsigned = attribution_strip_figure(labels, [np.nan, 1.0, -0.5, np.nan], signed=False)
    assert "0" in [t.text for t in unsigned.items if isinstance(t, Text)]


def test_the_bars_show_the_strongest_units_first_without_non_candidates():
    fig = attribution_bars_figure(["a", "b", "c", "d"], [0.1, -0.9, np.nan, 0.5], count=3)
    assert fig.meta["order"] == [1, 3, 0]
    with pytest.raises(ValueError):
        attribution_bars_figure(["a"], [np.nan])
    with pytest.raises(ValueError):
        attribution_strip_figure(["a", "b"], [1.0])


def test_the_notes_are_wrapped_inside_the_figure():
    from analysis.io.figures.base import APPROX_METRICS, MUTED_COLOR

    note = "f(x) = 0.6674, f(baseline) = 0.9851 (pad baseline). The scores add up to f(x) - f(baseline) within 0.008."
    fig = attribution_strip_figure(["a", "b"], [0.5, -0.5], notes=[note * 2])
    lines = [t for t in fig.items if isinstance(t, Text) and t.color == MUTED_COLOR]  # the notes
    assert len(lines) > 1
    assert all(t.x + APPROX_METRICS.width(t.text, t.size) <= fig.width for t in lines)
