"""The attribution panel linked with the other views, and its exports."""

import csv
import subprocess

import numpy as np
import pytest


@pytest.fixture
def attributed(qtbot, chat_window):
    window = chat_window
    window.input_panel.set_texts("The capital of France is")
    with qtbot.waitSignals([window.analysis_ready, window.graph_ready], timeout=120_000):
        window.analyse()
    panel = window.attribution_panel
    panel.target_box.setCurrentIndex(panel.target_box.findData("next_token"))
    panel.method_box.setCurrentIndex(panel.method_box.findData("input_x_gradient"))
    assert not panel.export_button.isEnabled()  # nothing to export before a result
    with qtbot.waitSignal(window.attribution_ready, timeout=120_000):
        window.attribute()
    return window


def test_selection_goes_both_ways(qtbot, attributed):
    window, panel = attributed, attributed.attribution_panel
    result = panel.result()
    assert tuple(result.inputs.tokens) == tuple(window.session.run.tokens)
    panel.token_selected.emit(2)  # a click on a unit selects its token everywhere
    assert window.session.selected_token == 2
    window.session.select_token(3)  # a token chosen in another view is framed in the panel
    unit = int(result.units.token_units[3])
    assert panel.selected_unit() == unit
    import html

    assert f"<b><u>{html.escape(result.units.labels[unit])}</u></b>" in panel.strip_html()
    assert "font-weight:700" in panel.strip.toHtml()  # Qt draws it bold
    widths = panel.bar_pen_widths()
    assert widths[unit] > max(w for u, w in widths.items() if u != unit)
    window.session.select_token(None)
    assert panel.selected_unit() is None


def test_every_view_of_the_panel_exports(qtbot, attributed, tmp_path):
    window, panel = attributed, attributed.attribution_panel
    result = panel.result()
    window.session.select_token(3)
    assert window.export_attribution("strip", str(tmp_path / "strip.svg"))
    assert window.export_attribution("bars", str(tmp_path / "bars.png"), width=900)
    assert window.export_attribution("strip", str(tmp_path / "strip.pdf"))
    svg = (tmp_path / "strip.svg").read_text()
    assert "#1f4fd1" not in svg  # clean by default: the selected unit is not framed
    rendered = subprocess.run(["rsvg-convert", str(tmp_path / "strip.svg"), "-o", str(tmp_path / "strip.png")],
                              capture_output=True)
    assert rendered.returncode == 0 and (tmp_path / "strip.png").stat().st_size > 1000
    assert (tmp_path / "bars.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "strip.pdf").read_bytes()[:5] == b"%PDF-"
    assert window.export_attribution("strip", str(tmp_path / "marked.svg"), include_highlight=True)
    assert "#1f4fd1" in (tmp_path / "marked.svg").read_text()
    assert window.export_attribution("scores", str(tmp_path / "scores.csv"))
    with open(tmp_path / "scores.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0][:5] == ["index", "token", "start", "end", "score"]
    assert len(rows) - 1 == result.units.num_units
    scores = [float(r[4]) if r[4] else np.nan for r in rows[1:]]
    np.testing.assert_allclose(scores, result.scores, rtol=1e-5, atol=1e-6)
    # no comparison was asked for: the export says so instead of writing an empty file
    with qtbot.waitSignal(window.error_shown, timeout=2000) as shown:
        assert not window.export_attribution("comparison", str(tmp_path / "comparison.csv"))
    assert "Compare methods" in shown.args[0] and not (tmp_path / "comparison.csv").exists()
