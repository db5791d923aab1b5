"""The window as a person uses it: type, analyse, switch, click, export, cancel, bad input."""

from types import SimpleNamespace

import numpy as np
import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QImage

from app.main_window import MainWindow
from app.tasks import TaskKind
from tests.app.conftest import SENTENCE


def test_empty_window_explains_what_to_do_and_loads_the_model_meanwhile(qtbot, window):
    assert window.result is None
    assert "Ctrl+Enter" in window.status_model.text()
    assert window.heatmap.current_matrix() is None
    with qtbot.waitSignal(window.warmed_up, timeout=120_000):
        pass
    assert "is loaded" in window.status_model.text() and "Ctrl+Enter" in window.status_model.text()


def test_analysing_the_same_text_twice_draws_its_graph_twice(qtbot, analysed):
    window = analysed
    first = window.graph
    with qtbot.waitSignals([window.analysis_ready, window.graph_ready], timeout=60_000):
        window.analyse()
    assert window.graph is not first and window.graph.n == first.n


def test_typing_and_ctrl_enter_analyses_through_the_worker(qtbot, window):
    qtbot.keyClicks(window.input_panel.text_edit, SENTENCE)
    with qtbot.waitSignal(window.analysis_ready, timeout=120_000):
        qtbot.keyClick(window.input_panel.text_edit, Qt.Key_Return, Qt.ControlModifier)
    run = window.result.run
    assert run.text == SENTENCE and run.num_layers == 6 and run.num_heads == 12
    spec = window.view.spec
    np.testing.assert_allclose(window.heatmap.current_matrix(), run.attentions[spec.layer, spec.head], rtol=1e-6)
    assert list(window.heatmap.row_labels()) == list(run.labels)
    assert f"{run.num_tokens} tokens" in window.status_model.text()


def test_switching_layer_and_head_slices_memory_without_rerunning(qtbot, analysed):
    window = analysed
    submitted = []
    runner = window.host.runner
    original = runner.submit
    runner.submit = lambda session, kind, job, **handlers: submitted.append(kind) or original(session, kind, job, **handlers)
    window.view_controls.layer_spin.setValue(3)
    window.view_controls.head_spin.setValue(7)
    window.view_controls.flush()
    run = window.result.run
    np.testing.assert_allclose(window.heatmap.current_matrix(), run.attentions[3, 7], rtol=1e-6)
    assert TaskKind.ANALYSE not in submitted and TaskKind.GRAPH in submitted  # only graph work
    window.view_controls.set_kind("mean")
    window.view_controls.flush()
    np.testing.assert_allclose(window.heatmap.current_matrix(), run.attentions[3].mean(0), rtol=1e-5)
    runner.submit = original


def test_clicking_a_head_in_the_overview_selects_it(qtbot, analysed):
    window = analysed
    with qtbot.waitSignal(window.view_ready, timeout=5000):
        window.head_overview.head_selected.emit(4, 9)
    assert (window.view.spec.kind, window.view.spec.layer, window.view.spec.head) == ("head", 4, 9)
    assert window.view_controls.layer_spin.value() == 4 and window.view_controls.head_spin.value() == 9
    np.testing.assert_allclose(window.heatmap.current_matrix(), window.result.run.attentions[4, 9], rtol=1e-6)


def test_graph_metrics_and_canvas_follow_the_view(qtbot, analysed):
    window = analysed
    graph = window.graph
    n = window.result.run.num_tokens
    assert graph.n == n
    assert window.graph_panel.canvas.edge_count() == len(graph.weights)
    assert not window.graph_panel.canvas.edges_pending()  # drawn by the time graph_ready fires
    assert window.graph_panel.canvas.drawn_edge_count() > 0
    rows = window.metrics_table.to_rows()
    assert len(rows) == n
    assert "modularity" in window.graph_panel.info.text()


def test_path_between_two_tokens_is_highlighted_in_canvas_and_heatmap(qtbot, analysed):
    window = analysed
    canvas = window.graph_panel.canvas
    canvas.source_selected.emit(1)
    with qtbot.waitSignal(window.path_ready, timeout=10_000):
        canvas.target_selected.emit(6)
    nodes = list(window.path.nodes)
    assert nodes[0] == 1 and nodes[-1] == 6
    assert list(canvas.highlighted_path()) == nodes
    assert "Path:" in window.graph_panel.info.text()


def test_selecting_a_token_colours_the_token_view_with_its_row(qtbot, analysed):
    window = analysed
    window.heatmap.token_selected.emit(2)
    assert window.selected_row() == 2
    weights = window.token_view.weights()
    np.testing.assert_allclose(weights, window.view.matrix[2], rtol=1e-6)
    label = window.result.run.labels[2]
    assert window.token_view.caption_text().startswith(f"Colour = attention paid by “{label}”")


def test_exports_write_png_svg_csv_and_the_analysis_folder(qtbot, analysed, tmp_path):
    window = analysed
    png, svg, matrix_csv = tmp_path / "h.png", tmp_path / "h.svg", tmp_path / "m.csv"
    assert window.export_heatmap(str(png), width=900, dpi=200)
    assert QImage(str(png)).width() == 900
    assert window.export_heatmap(str(svg))
    assert "<svg" in svg.read_text(errors="ignore")[:2000]
    assert window.export_matrix(str(matrix_csv))
    from analysis.io.folder import read_matrix_csv

    matrix, row_labels, col_labels, meta = read_matrix_csv(matrix_csv)
    assert col_labels == list(window.view.col_labels) and row_labels == list(window.view.row_labels)
    np.testing.assert_allclose(matrix, window.view.matrix, atol=1e-6)
    assert meta["model"] == window.result.run.model.name and meta["layer"] == str(window.view.spec.layer)
    assert window.export_folder(str(tmp_path / "folder"))
    for name in ("attention.npz", "tokens.csv", "edges.csv", "summary.json"):
        assert (tmp_path / "folder" / name).is_file()
    assert window.export_graph_image(str(tmp_path / "g.png"), width=800)
    assert QImage(str(tmp_path / "g.png")).width() == 800
    assert window.export_network(str(tmp_path / "g.gexf"))


def test_export_to_an_unwritable_path_shows_a_message(qtbot, analysed, tmp_path):
    window = analysed
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with qtbot.waitSignal(window.error_shown, timeout=2000) as blocker_signal:
        assert not window.export_heatmap(str(blocker / "h.png"))
    assert "Could not export" in blocker_signal.args[0]
    assert not window.export_matrix(str(blocker / "m.csv"))
    assert "Could not export the matrix" in window.input_panel.message.text()
    assert not window.export_folder(str(blocker / "folder"))
    assert "Could not export the analysis" in window.input_panel.message.text()
    assert not window.export_graph_image(str(blocker / "g.png"))
    assert not window.export_network(str(blocker / "g.graphml"))
    assert "Could not export the graph" in window.input_panel.message.text()
    assert window.result is not None and window.heatmap.current_matrix() is not None


def test_empty_text_is_refused_with_a_message(qtbot, window):
    window.input_panel.set_texts("   ")
    with qtbot.waitSignal(window.error_shown, timeout=2000):
        assert window.analyse() is None
    assert "no text" in window.input_panel.message.text().lower()
    assert not window.host.runner.is_busy(kinds=[TaskKind.ANALYSE])


def test_a_folder_that_is_not_a_model_keeps_text_and_previous_result(qtbot, analysed, tmp_path):
    window = analysed
    previous = window.result
    window.set_model_source(str(tmp_path))
    window.input_panel.set_texts("Another text entirely.")
    with qtbot.waitSignal(window.error_shown, timeout=60_000) as signal:
        window.analyse()
    assert "not a model folder" in signal.args[0]
    assert window.input_panel.text() == "Another text entirely."
    assert window.result is previous and window.heatmap.current_matrix() is not None


def test_cancel_keeps_the_previous_result(qtbot, analysed):
    window = analysed
    previous = window.result
    window.input_panel.set_texts("A different sentence to analyse.")
    with qtbot.waitSignal(window.host.settled, timeout=60_000,
                          check_params_cb=lambda task, event: task.kind is TaskKind.ANALYSE):
        window.analyse()
        window.cancel()
    assert window.result is previous
    assert "Cancelled" in window.input_panel.message.text()


def test_newest_request_wins(qtbot, analysed):
    window = analysed
    window.input_panel.set_texts("First request, soon superseded.")
    window.analyse()
    window.input_panel.set_texts("Second request wins.")
    with qtbot.waitSignal(window.analysis_ready, timeout=60_000):
        window.analyse()
    qtbot.wait(200)
    assert window.result.run.text == "Second request wins."


def test_settings_remember_text_model_and_colormap(qtbot, tmp_path):
    path = str(tmp_path / "remember.ini")
    first = MainWindow(QSettings(path, QSettings.IniFormat))
    qtbot.addWidget(first)
    first.input_panel.set_texts("Remember me.", "And my pair.")
    first.view_controls.colormap_box.setCurrentIndex(first.view_controls.colormap_box.count() - 1)
    colormap = first.view_controls.colormap_box.currentText()
    first.close()
    second = MainWindow(QSettings(path, QSettings.IniFormat))
    qtbot.addWidget(second)
    assert second.input_panel.text() == "Remember me." and second.input_panel.pair() == "And my pair."
    assert second.view_controls.colormap_box.currentText() == colormap
    second.close()


@pytest.mark.parametrize("kind", ["rollout", "max"])
def test_other_views_render(qtbot, analysed, kind):
    window = analysed
    window.view_controls.set_kind(kind)
    window.view_controls.flush()
    assert window.view.spec.kind == kind
    np.testing.assert_allclose(window.heatmap.current_matrix(), window.view.matrix, rtol=1e-6)


def test_flow_view_follows_the_selected_token(qtbot, analysed):
    window = analysed
    with qtbot.waitSignal(window.flow_ready, timeout=60_000):
        window.view_controls.set_kind("flow")
        window.view_controls.flush()
    first = window.flow.copy()
    with qtbot.waitSignal(window.flow_ready, timeout=60_000):
        window.heatmap.token_selected.emit(5)
    assert window.view.spec.query == 5
    assert not np.allclose(first, window.flow)


def test_a_text_longer_than_the_model_allows_is_truncated_with_a_visible_notice(qtbot, window):
    window.input_panel.set_texts("word " * 700)
    with qtbot.waitSignals([window.analysis_ready, window.graph_ready], timeout=120_000):
        window.analyse()
    run = window.result.run
    assert run.truncated and run.num_tokens == 512
    assert "only the first 512" in window.status_notice.text()
    assert "only the first 512" in window.input_panel.message.text()
    assert window.input_panel.text() == "word " * 700  # the person's text is kept whole


def test_a_finished_graph_job_takes_its_progress_line_out_of_the_status_bar(qtbot, analysed):
    window = analysed
    bar = window.statusBar()
    task = SimpleNamespace(kind=TaskKind.GRAPH)
    window._on_progress(TaskKind.GRAPH, 0.7, "Laying out the graph...")
    assert bar.currentMessage() == "Laying out the graph... 70%"
    window._on_settled(task, "done")
    assert bar.currentMessage() == ""
    window._on_progress(TaskKind.GRAPH, 0.7, "Laying out the graph...")
    bar.showMessage("Saved /tmp/x.png", 5000)  # a newer message stays
    window._on_settled(task, "done")
    assert bar.currentMessage() == "Saved /tmp/x.png"


def test_a_long_text_is_kept_in_a_recovery_file_not_in_the_settings(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("ATLAS_DATA_DIR", str(tmp_path / "data"))
    path = str(tmp_path / "long.ini")
    long_text = "a rather long text " * 20_000  # 380,000 characters
    first = MainWindow(QSettings(path, QSettings.IniFormat), warm_up=False)
    qtbot.addWidget(first)
    first.input_panel.set_texts(long_text, "short pair")
    first.close()
    assert (tmp_path / "long.ini").stat().st_size < 20_000
    assert (tmp_path / "data" / "recovered-text.txt").read_text(encoding="utf-8") == long_text
    second = MainWindow(QSettings(path, QSettings.IniFormat), warm_up=False)
    qtbot.addWidget(second)
    assert second.input_panel.text() == long_text and second.input_panel.pair() == "short pair"
    second.close()


def test_a_saved_session_reopens_without_running_the_model(qtbot, analysed, tmp_path, settings):
    window = analysed
    window.view_controls.set_head(3, 7)
    window.view_controls.flush()
    window.heatmap.token_selected.emit(2)
    path = str(tmp_path / "mine")
    assert window.save_session_file(path)
    other = MainWindow(settings, warm_up=False)
    qtbot.addWidget(other)
    other.show()
    runner = other.host.runner
    with qtbot.waitSignals([other.analysis_ready, other.graph_ready], timeout=30_000):
        assert other.open_session_file(path + ".atlas")
    assert not runner.is_busy(kinds=[TaskKind.ANALYSE]) and other.result.run.text == SENTENCE
    assert (other.view.spec.layer, other.view.spec.head) == (3, 7) and other.selected_row() == 2
    np.testing.assert_array_equal(other.heatmap.current_matrix(), window.heatmap.current_matrix())
    assert "Out of date" not in other.status_notice.text()
    bad = tmp_path / "bad.atlas"
    bad.write_text("not a session")
    with qtbot.waitSignal(other.error_shown, timeout=2000) as shown:
        assert not other.open_session_file(str(bad))
    assert "not an Attention Atlas session file" in shown.args[0] and other.result.run.text == SENTENCE
    other.host.shutdown()


def test_view_graph_and_layout_choices_are_restored_on_restart(qtbot, tmp_path):
    path = str(tmp_path / "choices.ini")
    first = MainWindow(QSettings(path, QSettings.IniFormat), warm_up=False)
    qtbot.addWidget(first)
    first.session.set_spec(kind="rollout", merge_words=True)
    first.graph_panel.topk_spin.setValue(3)
    first.graph_panel.rule_box.setCurrentIndex(first.graph_panel.rule_box.findData("top_k"))
    first.graph_panel.flush()
    first.set_graph_layout("circular")
    first.close()
    second = MainWindow(QSettings(path, QSettings.IniFormat), warm_up=False)
    qtbot.addWidget(second)
    assert second.session.spec.kind == "rollout" and second.view_controls.words_check.isChecked()
    assert second.session.graph_settings.rule.mode == "top_k" and second.graph_panel.topk_spin.value() == 3
    assert second.session.layout == "circular"
    second.close()


def test_texts_and_choices_are_autosaved_without_closing(qtbot, tmp_path):
    path = str(tmp_path / "auto.ini")
    window = MainWindow(QSettings(path, QSettings.IniFormat), warm_up=False)
    qtbot.addWidget(window)
    window._autosave.setInterval(50)
    window._autosave.start()
    window.input_panel.set_texts("Typed, never closed.")
    qtbot.waitUntil(lambda: QSettings(path, QSettings.IniFormat).value("input/text") == "Typed, never closed.",
                    timeout=3000)
    window.host.shutdown()


@pytest.mark.parametrize("kind", ["value_norm", "alti"])
def test_contribution_views_are_computed_on_demand_and_keep_the_selection(qtbot, analysed, kind):
    window = analysed
    window.heatmap.token_selected.emit(3)
    with qtbot.waitSignals([window.view_ready, window.graph_ready], timeout=120_000):
        window.view_controls.set_kind(kind)
        window.view_controls.flush()
    run = window.result.run
    assert kind in run.contributions and window.view.spec.kind == kind
    matrix = window.heatmap.current_matrix()
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0, atol=1e-4)
    np.testing.assert_allclose(matrix, run.contributions[kind][window.view.spec.layer], atol=1e-6)
    assert window.selected_row() == 3 and window.graph.n == run.num_tokens
    assert "Computing" not in window.input_panel.message.text()  # its announcement is gone


def test_figures_report_and_head_table_from_the_window(qtbot, analysed, tmp_path):
    window = analysed
    window.heatmap.token_selected.emit(2)
    for what in ("heatmap", "graph", "heads", "tokens"):
        for suffix in (".png", ".svg", ".pdf"):
            path = tmp_path / f"{what}{suffix}"
            assert window.exports.export_figure(what, str(path), width=900), (what, suffix)
            assert path.stat().st_size > 0
    assert QImage(str(tmp_path / "heatmap.png")).width() == 900
    assert window.exports.export_report(str(tmp_path / "report.html"))
    assert "<svg" in (tmp_path / "report.html").read_text(encoding="utf-8")
    assert window.exports.export_head_table(str(tmp_path / "heads.csv"))
    assert (tmp_path / "heads.csv").read_text().startswith("layer,head")
    assert window.exports.figure_name("heatmap", ".svg") == "all-MiniLM-L6-v2_L5H0_heatmap.svg"


def test_the_window_can_fit_a_1280x720_screen(window):
    hint = window.minimumSizeHint()
    assert hint.width() <= 1280 and hint.height() <= 680, hint  # 720 less a panel or title bar


def test_the_graph_marks_the_generated_tokens_on_the_canvas_and_in_its_figure(qtbot, analysed, tmp_path):
    from dataclasses import replace

    from analysis.graph.layered import node_id
    from analysis.io.figures.base import Circle, Text
    from analysis.io.figures.graph import GENERATED_COLOR
    from analysis.io.session_file import save_session
    from app.session_io import session_state

    window = analysed
    canvas = window.graph_panel.canvas
    assert canvas.generated_nodes() == [] and canvas.generated_legend_text() == ""
    run = window.result.run
    start = 8  # tokens 8.. play a generation's answer ("because it was tired . [SEP]")
    path = tmp_path / "generated.atlas"
    save_session(path, replace(run, prompt_length=start), state=session_state(window.session))
    with qtbot.waitSignals([window.analysis_ready, window.graph_ready], timeout=30_000):
        assert window.open_session_file(str(path))
    assert window.result.run.prompt_length == start
    generated = list(range(start, run.num_tokens))
    assert canvas.generated_nodes() == generated
    np.testing.assert_allclose(canvas.generated_ring_positions(), canvas.node_positions()[generated])
    assert canvas.generated_legend_text() == "generated"
    assert window.heatmap.generated_from() == (start, start)  # as the heatmap's axes

    figure = canvas.figure()
    assert figure.meta["generated"] == generated
    nodes = np.array(figure.meta["nodes"])
    rings = [item for item in figure.items if isinstance(item, Circle) and item.stroke == GENERATED_COLOR
             and item.fill is None]
    np.testing.assert_allclose(sorted((r.cx, r.cy) for r in rings), sorted(map(tuple, nodes[generated])))
    assert any(isinstance(item, Text) and item.text == "generated" for item in figure.items)
    tinted = {item.text for item in figure.items if isinstance(item, Text) and item.color == GENERATED_COLOR}
    assert tinted and tinted <= set(window.view.row_labels[start:])

    # the graph across layers marks every level of a generated token
    window.view_controls.set_kind("rollout")
    window.view_controls.flush()
    with qtbot.waitSignal(window.layered_ready, timeout=60_000):
        window.set_graph_layout("layered")
    graph = window.layered
    assert canvas.generated_nodes() == sorted(node_id(graph, level, token) for level in range(graph.num_layers_shown)
                                              for token in generated)
    assert canvas.generated_legend_text() == "generated"

    # another analysis without a generation: no marks
    window.set_graph_layout("arc")
    with qtbot.waitSignal(window.analysis_ready, timeout=60_000):
        window.analyse()
    assert window.result.run.prompt_length is None
    qtbot.waitUntil(lambda: window.graph_binding._drawn is window.session.graph is not None, timeout=30_000)
    assert canvas.generated_nodes() == [] and canvas.generated_legend_text() == ""
