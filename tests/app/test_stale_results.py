"""Results that arrive after their inputs changed are never shown (the session issue's cases)."""

from __future__ import annotations

import threading

import numpy as np

import app.jobs as jobs
from app.tasks import TaskKind


def gated(job_factory, gate: threading.Event, calls: list):
    """A job factory whose first job waits for ``gate`` (or its cancellation) before working."""

    def factory(*args, **kwargs):
        job = job_factory(*args, **kwargs)
        first = not calls
        calls.append(args)

        def run(context):
            while first and not gate.wait(0.01):
                context.check()
            return job(context)

        return run

    return factory


def test_a_path_for_an_old_head_is_never_drawn(qtbot, analysed, monkeypatch):
    window = analysed
    gate, calls = threading.Event(), []
    monkeypatch.setattr(jobs, "path_job", gated(jobs.path_job, gate, calls))
    window.graph_panel.canvas.source_selected.emit(1)
    window.graph_panel.canvas.target_selected.emit(6)
    assert calls, "the path was asked for"
    with qtbot.waitSignals([window.graph_ready, window.path_ready], timeout=30_000):
        window.view_controls.set_head(4, 9)
        window.view_controls.flush()
        assert window.path is None and window.heatmap.path_cells() == []  # the old head's path is gone at once
        gate.set()
    view = window.view
    assert (view.spec.layer, view.spec.head) == (4, 9)
    nodes = list(window.path.nodes)
    assert nodes[0] == 1 and nodes[-1] == 6
    from analysis.graph.paths import most_probable_path

    expected = most_probable_path(view.matrix, 1, 6, window.session.graph_settings.rule)
    assert nodes == list(expected.nodes)
    assert window.heatmap.path_cells() == list(zip(nodes[:-1], nodes[1:], strict=True))
    assert "Path:" in window.graph_panel.info.text()


def test_a_late_path_with_words_on_cannot_index_outside_the_view(qtbot, analysed, monkeypatch):
    window = analysed
    gate, calls = threading.Event(), []
    monkeypatch.setattr(jobs, "path_job", gated(jobs.path_job, gate, calls))
    last = window.result.run.num_tokens - 1
    window.graph_panel.canvas.source_selected.emit(1)
    window.graph_panel.canvas.target_selected.emit(last)
    with qtbot.waitSignal(window.graph_ready, timeout=30_000):
        window.view_controls.words_check.setChecked(True)
        window.view_controls.special_check.setChecked(True)
        window.view_controls.flush()
        gate.set()
    # the last token is a special one: dropped from the view, so there is no path to draw
    assert window.session.row_of(last) is None and window.path is None
    assert window.heatmap.path_cells() == [] and window.graph_panel.canvas.highlighted_path() == []


def test_leaving_the_flow_view_cancels_the_flow_and_the_next_graph_does_not_wait(qtbot, analysed, monkeypatch):
    window = analysed
    started, cancelled = threading.Event(), threading.Event()

    def endless_flow(run, query, layer, **source):
        def job(context):
            started.set()
            while not context.is_cancelled():
                threading.Event().wait(0.01)
            cancelled.set()
            context.check()

        return job

    monkeypatch.setattr(jobs, "flow_job", endless_flow)
    window.view_controls.set_kind("flow")
    window.view_controls.flush()
    assert started.wait(30)
    with qtbot.waitSignal(window.graph_ready, timeout=30_000):
        window.view_controls.set_head(2, 3)
        window.view_controls.flush()
    assert cancelled.is_set()
    assert window.flow is None and window.view.spec.kind == "head"
    assert window.host.runner.current(window.session, TaskKind.FLOW) is None


def test_no_force_layout_on_the_gui_thread_for_the_graph_across_layers(qtbot, analysed, monkeypatch):
    window = analysed
    import analysis.graph.layout as layout

    threads = []
    original = layout.force_layout
    monkeypatch.setattr(layout, "force_layout",
                        lambda *a, **k: threads.append(threading.current_thread().name) or original(*a, **k))
    window.view_controls.set_kind("rollout")
    window.view_controls.flush()
    with qtbot.waitSignal(window.layered_ready, timeout=30_000):
        window.set_graph_layout("layered")
    window.set_graph_layout("force")
    qtbot.waitUntil(lambda: "force" in window.session.positions, timeout=30_000)
    assert threads and threading.main_thread().name not in threads
    assert window.graph_panel.canvas.layout_kind() == "force"
    np.testing.assert_allclose(window.graph_panel.canvas.node_positions(), window.session.positions["force"])


def test_hide_specials_right_after_a_long_graph_arrives(qtbot, window):
    window.input_panel.set_texts(" ".join(["tokens of a long text"] * 110))
    with qtbot.waitSignals([window.analysis_ready, window.graph_ready], timeout=120_000):
        window.analyse()
    with qtbot.waitSignal(window.graph_ready, timeout=60_000):
        window.view_controls.special_check.setChecked(True)
        window.view_controls.flush()
    rows = window.metrics_table.to_rows()
    assert len(rows) == len(window.view.row_labels) == window.result.run.num_tokens - 2
    assert window.graph.n == len(rows)


def test_a_failed_graph_clears_the_old_one_and_exports_say_why(qtbot, analysed, monkeypatch, tmp_path):
    window = analysed
    assert window.graph_panel.canvas.edge_count() > 0

    def broken(request):
        def job(context):
            raise ValueError("this view has no graph")

        return job

    monkeypatch.setattr(jobs, "graph_job", broken)
    with qtbot.waitSignal(window.session.events.error, timeout=30_000):
        window.view_controls.set_head(1, 1)
        window.view_controls.flush()
    canvas = window.graph_panel.canvas
    assert window.graph is None and canvas.edge_count() == 0 and window.metrics_table.to_rows() == []
    assert "this view has no graph" in window.graph_panel.info.text()
    for export in (lambda: window.export_graph_image(str(tmp_path / "g.png")),
                   lambda: window.export_network(str(tmp_path / "g.gexf"))):
        with qtbot.waitSignal(window.error_shown, timeout=2000) as shown:
            assert not export()
        assert "could not be computed" in shown.args[0]
    assert not list(tmp_path.iterdir())


def test_exporting_a_graph_that_is_still_being_computed_is_refused(qtbot, analysed, monkeypatch, tmp_path):
    window = analysed
    gate, calls = threading.Event(), []
    monkeypatch.setattr(jobs, "graph_job", gated(jobs.graph_job, gate, calls))
    window.view_controls.set_head(3, 3)
    window.view_controls.flush()
    with qtbot.waitSignal(window.error_shown, timeout=2000) as shown:
        assert not window.export_graph_image(str(tmp_path / "g.png"))
    assert "still being computed" in shown.args[0]
    assert not (tmp_path / "g.png").exists()
    before = window.session.selected_token
    window.graph_panel.canvas.token_selected.emit(4)  # a click on the old picture means nothing
    window.metrics_table.token_selected.emit(4)
    assert window.session.selected_token == before
    with qtbot.waitSignal(window.graph_ready, timeout=30_000):
        gate.set()
    assert window.export_graph_image(str(tmp_path / "g.png"))


def test_a_new_analysis_clears_the_path_highlight(qtbot, analysed):
    window = analysed
    canvas = window.graph_panel.canvas
    canvas.source_selected.emit(1)
    with qtbot.waitSignal(window.path_ready, timeout=10_000):
        canvas.target_selected.emit(5)
    assert canvas.highlighted_path() and window.heatmap.path_cells()
    window.input_panel.set_texts("A completely different sentence.")
    with qtbot.waitSignals([window.analysis_ready, window.graph_ready], timeout=60_000):
        window.analyse()
    assert window.path is None and window.session.path_source is None
    assert canvas.highlighted_path() == [] and window.heatmap.path_cells() == []
    assert canvas.source() is None and canvas.target() is None
    assert "Path:" not in window.graph_panel.info.text()


def test_editing_the_text_marks_the_result_out_of_date(qtbot, analysed):
    window = analysed
    assert "Out of date" not in window.status_notice.text()
    window.input_panel.text_edit.insertPlainText(" And more.")
    qtbot.waitUntil(lambda: "Out of date" in window.status_notice.text(), timeout=3000)
    window.input_panel.text_edit.undo()
    qtbot.waitUntil(lambda: "Out of date" not in window.status_notice.text(), timeout=3000)
    window.set_model_source("some/other-model")
    assert "Out of date" in window.status_notice.text()
