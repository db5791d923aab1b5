"""Habits people expect: one rule for the layer/head keys, sorting that puts the most central
token first, a tooltip that follows a switch, a colour bar that names the numbers, F1 help,
an empty view that says why, and graph files with the canvas's positions."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest

from analysis.graph.export import POSITION_SCALE
from app.graph_binding import EMPTY_VIEW_TEXT
from app.help_browser import HELP_SECTIONS, readme_sections
from app.main_window import SHORTCUT_RULE
from widgets.heatmap import NO_TOKENS_HINT
from widgets.heatmap_axes import format_weight

README = Path(__file__).resolve().parents[2] / "README.md"


def switch(qtbot, window, **changes):
    with qtbot.waitSignal(window.view_ready, timeout=60_000):
        window.session.set_spec(**changes)


def active(qtbot, window):
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=3000)


def press(qtbot, widget, key, modifier=Qt.KeyboardModifier.NoModifier):
    widget.setFocus()
    qtbot.waitUntil(widget.hasFocus, timeout=3000)
    QTest.keyClick(widget, key, modifier)


def test_layer_and_head_keys_switch_everywhere_but_in_a_text_box(qtbot, analysed):
    window = analysed
    active(qtbot, window)
    controls = window.view_controls
    switch(qtbot, window, layer=2, head=3)
    box = window.input_panel.text_edit
    cursor = box.textCursor()
    cursor.setPosition(0)
    box.setTextCursor(cursor)

    # in the text box: Ctrl+Right moves by a word, PgDn/PgUp scroll; layer and head stay
    press(qtbot, box, Qt.Key.Key_Right, Qt.KeyboardModifier.ControlModifier)
    assert box.textCursor().position() == len("The ")
    press(qtbot, box, Qt.Key.Key_PageDown)
    press(qtbot, box, Qt.Key.Key_Left, Qt.KeyboardModifier.ControlModifier)
    assert (window.session.spec.layer, window.session.spec.head) == (2, 3)
    assert (controls.layer_spin.value(), controls.head_spin.value()) == (2, 3)

    # anywhere else (a spin box, the metrics table, the heatmap): both switch
    expected = [2, 3]
    for target in (controls.head_spin, window.metrics_table.table_view(), window.heatmap.graphics_view()):
        press(qtbot, target, Qt.Key.Key_Right, Qt.KeyboardModifier.ControlModifier)
        expected[1] += 1
        press(qtbot, target, Qt.Key.Key_PageDown)
        expected[0] += 1
        assert [controls.layer_spin.value(), controls.head_spin.value()] == expected, type(target).__name__
    press(qtbot, window.heatmap.graphics_view(), Qt.Key.Key_PageUp)
    press(qtbot, window.heatmap.graphics_view(), Qt.Key.Key_Left, Qt.KeyboardModifier.ControlModifier)
    assert [controls.layer_spin.value(), controls.head_spin.value()] == [expected[0] - 1, expected[1] - 1]

    # the help says the rule
    assert SHORTCUT_RULE in window.show_help().plain_text().replace("\n", " ")


def header_click(qtbot, table, column: str) -> None:
    view = table.table_view()
    header = view.horizontalHeader()
    section = table.columns().index(column)
    view.scrollTo(view.model().index(0, section))
    x = header.sectionViewportPosition(section) + header.sectionSize(section) // 2
    qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(x, header.height() // 2))


def test_centrality_columns_sort_largest_first_and_tokens_in_order(qtbot, analysed):
    window = analysed
    table = window.metrics_table
    labels = list(window.view.row_labels)
    for metric in ("pagerank", "betweenness", "in_strength"):
        values = window.graph.metrics[metric]
        header_click(qtbot, table, metric)  # first click: descending
        shown = [row[0] for row in table.to_rows()]
        assert shown == list(np.lexsort((np.arange(len(values)), -values))), metric
        header_click(qtbot, table, metric)  # second click: ascending
        shown = [row[0] for row in table.to_rows()]
        assert shown == list(np.lexsort((np.arange(len(values)), values))), metric
    header_click(qtbot, table, "token")  # a label column: ascending first
    assert [row[1] for row in table.to_rows()] == sorted(labels, key=str.casefold)
    header_click(qtbot, table, "index")
    assert [row[0] for row in table.to_rows()] == list(range(len(labels)))


def test_the_hover_tooltip_follows_a_switch_under_a_still_mouse(qtbot, analysed):
    window = analysed
    heatmap = window.heatmap
    viewport = heatmap.graphics_view().viewport()
    qtbot.mouseMove(viewport, heatmap.cell_center_in_view(3, 5))
    qtbot.waitUntil(lambda: heatmap.hover_text() != "", timeout=3000)
    before = heatmap.hover_text()
    assert before == heatmap.cell_text(3, 5)
    assert format_weight(float(window.view.matrix[3, 5])) in before
    for changes in ({"head": 7}, {"layer": 1}, {"kind": "rollout"}):
        switch(qtbot, window, **changes)  # the mouse does not move
        matrix = window.view.matrix
        assert heatmap.hover_text() == f"{window.view.row_labels[3]} -> {window.view.col_labels[5]}: " \
                                       f"{format_weight(float(matrix[3, 5]))}\nquery 3 -> key 5"
    assert heatmap.hover_text() != before
    QTest.mouseMove(window.input_panel.text_edit)  # the mouse leaves: no cell is hovered
    qtbot.waitUntil(lambda: heatmap.hover_text() == "", timeout=3000)


@pytest.mark.parametrize(("changes", "label"), [
    ({"kind": "head"}, "attention weight"),
    ({"kind": "mean"}, "mean attention weight of the heads"),
    ({"kind": "max"}, "largest attention weight of the heads"),
    ({"kind": "rollout"}, "attention rollout"),
    ({"kind": "alti"}, "ALTI contribution"),
    ({"kind": "rollout", "through": "alti"}, "ALTI rollout"),
])
def test_the_colour_bar_says_what_the_numbers_are(qtbot, analysed, changes, label):
    window = analysed
    if changes["kind"] == "alti" or "through" in changes:  # computed from the model first
        with qtbot.waitSignals([window.view_ready, window.graph_ready], timeout=120_000):
            window.session.set_spec(**changes)
    else:
        if changes["kind"] == "head":  # the view shown first: come back to it
            switch(qtbot, window, kind="mean")
        switch(qtbot, window, **changes)
    assert window.heatmap.colorbar_label() == label
    window.view_controls.log_check.setChecked(True)
    assert window.heatmap.colorbar_label() == f"{label} (log scale)"
    window.view_controls.log_check.setChecked(False)
    assert window.heatmap.colorbar_label() == label


def test_f1_opens_a_searchable_help_page_of_the_readmes_definitions(qtbot, window):
    active(qtbot, window)
    QTest.keyClick(window, Qt.Key.Key_F1)
    help_window = window.help_browser
    assert help_window is not None and help_window.isVisible() and not help_window.isModal()
    assert help_window.isWindow() and window.isEnabled()  # non-modal: the main window goes on
    text = help_window.plain_text()
    readme = README.read_text(encoding="utf-8")
    numbers = readme_sections(readme, [HELP_SECTIONS[0]])
    for term in re.findall(r"\*\*([^*]+)\*\*", numbers):  # every number the README defines
        assert term in text, term
    for sentence in ("every row sums to 1", "Louvain on the undirected graph", "comprehensiveness"):
        assert sentence in text
    assert "PgDown" in text and "Ctrl+Right" in text and "F1" in text
    assert "![" not in text

    # find: every match highlighted, Enter = next, Shift+Enter = previous, wrapping around
    QTest.keyClicks(help_window.find_edit, "rollout")
    expected = text.lower().count("rollout")
    assert expected >= 3 and help_window.match_count() == expected
    assert len(help_window.browser.extraSelections()) == expected
    assert help_window.current_match() == 0 and help_window.selected_text().lower() == "rollout"
    QTest.keyClick(help_window.find_edit, Qt.Key.Key_Return)
    assert help_window.current_match() == 1
    QTest.keyClick(help_window.find_edit, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    QTest.keyClick(help_window.find_edit, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    assert help_window.current_match() == expected - 1
    help_window.find_edit.setText("no such word anywhere")
    assert help_window.match_count() == 0 and help_window.count_label.text() == "no match"

    assert window.show_help() is help_window  # F1 again brings the same window back
    help_window.close()


def test_a_view_of_only_special_tokens_says_so_and_clears_the_graph(qtbot, window):
    window.input_panel.set_texts("[CLS] [SEP] [PAD]")
    with qtbot.waitSignals([window.analysis_ready, window.graph_ready], timeout=120_000):
        window.analyse()
    run = window.result.run
    assert all(run.special_mask)
    assert window.metrics_table.to_rows()
    with qtbot.waitSignal(window.view_ready, timeout=30_000, raising=False):
        window.view_controls.special_check.setChecked(True)
        window.view_controls.flush()
    qtbot.waitUntil(lambda: window.view is not None and window.view.matrix.shape == (0, 0), timeout=10_000)
    qtbot.waitUntil(lambda: window.graph_panel.canvas.labels() == [], timeout=10_000)
    heatmap = window.heatmap
    assert heatmap.is_empty() and heatmap._hint.isVisible() and heatmap._hint.text() == NO_TOKENS_HINT
    assert "Turn off Hide specials" in NO_TOKENS_HINT
    assert window.graph_panel.canvas.hint_text() == EMPTY_VIEW_TEXT
    assert window.graph_panel.info.text() == EMPTY_VIEW_TEXT
    assert window.metrics_table.to_rows() == []
    qtbot.wait(300)  # nothing later brings the old graph back
    assert window.graph_panel.canvas.labels() == [] and window.metrics_table.to_rows() == []
    with qtbot.waitSignals([window.view_ready, window.graph_ready], timeout=30_000):
        window.view_controls.special_check.setChecked(False)
        window.view_controls.flush()
    assert window.graph_panel.canvas.labels() == list(run.labels)


def gexf_positions(path) -> tuple[dict[int, tuple[float, float]], str]:
    root = ET.parse(path).getroot()
    ns = {"g": root.tag[1:].split("}")[0], "viz": "http://www.gexf.net/1.2draft/viz"}
    positions = {}
    for node in root.iter(f"{{{ns['g']}}}node"):
        viz = node.find("viz:position", ns)
        positions[int(node.get("id"))] = (float(viz.get("x")), float(viz.get("y")))
    description = root.find("g:meta/g:description", ns).text
    return positions, description


def test_a_graph_file_from_the_window_has_the_canvas_positions_and_the_runs_facts(qtbot, analysed, tmp_path):
    window = analysed
    switch(qtbot, window, layer=3, head=7)
    qtbot.waitUntil(lambda: window.graph is not None and window.graph_binding._drawn is window.session.graph,
                    timeout=30_000)
    window.set_graph_layout("circular")
    canvas = window.graph_panel.canvas
    canvas._on_node_dragged(2, np.array([1.5, -0.25]), True)  # the person moved a node
    expected = canvas.node_positions() * POSITION_SCALE
    assert np.allclose(expected[2], [60.0, -10.0])
    path = tmp_path / "graph.gexf"
    assert window.export_network(str(path))
    positions, description = gexf_positions(path)
    assert sorted(positions) == list(range(window.graph.n))
    np.testing.assert_allclose([positions[i] for i in range(window.graph.n)], expected, rtol=1e-6, atol=1e-9)
    facts = dict(line.split(": ", 1) for line in description.splitlines())
    assert facts["model"] == window.result.run.model.name
    assert facts["view"] == window.view.spec.describe()
    assert (facts["layer"], facts["head"], facts["layout"]) == ("3", "7", "circular")
    graphml = tmp_path / "graph.graphml"
    assert window.export_network(str(graphml))
    text = graphml.read_text(encoding="utf-8")
    assert "circular" in text and window.result.run.model.name in text
