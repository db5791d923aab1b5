"""The Session, the task runner and the planner without Qt: which inputs cancel which tasks,
stale results never applied, only shown work computed."""

from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np
import pytest

from analysis.graph.rules import SparsifyRule
from app.jobs import AnalysisResult
from app.planner import Planner
from app.session import GraphSettings, Session
from app.tasks import TaskKind, TaskRunner, ThreadLanes
from tests.analysis.fake_runs import make_run, word_run


def result_of(run) -> AnalysisResult:
    return AnalysisResult(run=run, thumbnails=np.zeros((run.num_layers, run.num_heads, 2, 2)), head_stats={})


def random_run(n: int = 12, layers: int = 3, heads: int = 2, seed: int = 0):
    rng = np.random.default_rng(seed)
    a = rng.random((layers, heads, n, n)) ** 4
    a /= a.sum(-1, keepdims=True)
    tokens = ["[CLS]", *[f"t{i}" for i in range(n - 2)], "[SEP]"]
    special = [True] + [False] * (n - 2) + [True]
    offsets = [(0, 0)] + [(3 * i, 3 * i + 2) for i in range(n - 2)] + [(0, 0)]
    word_ids = [None, *range(n - 2), None]
    text = " ".join(tokens[1:-1])
    return make_run(a, text=text, tokens=tokens, offsets=offsets, word_ids=word_ids, special=special)


@pytest.fixture
def lanes():
    lanes = ThreadLanes.with_queue()
    yield lanes
    lanes.shutdown(1.0)


@pytest.fixture
def planned(lanes):
    session = Session()
    runner = TaskRunner(lanes)
    planner = Planner(session, runner)
    return session, runner, planner


def settle(runner: TaskRunner, lanes: ThreadLanes, timeout: float = 30.0) -> None:
    lanes.drain(timeout, until=lambda: not runner.is_busy())


# Qt stays out -----------------------------------------------------------------------------


def test_the_session_modules_import_no_qt_and_no_torch():
    code = ("import sys, app.session, app.tasks, app.planner, app.jobs; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'pyqtgraph', 'torch')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


# Fields, revisions and dependants ---------------------------------------------------------------

DEPENDANTS = {
    "graph_settings": {TaskKind.GRAPH, TaskKind.LAYOUT, TaskKind.LAYERED, TaskKind.PATH, TaskKind.ROUTE},
    "layout": {TaskKind.LAYOUT, TaskKind.LAYERED, TaskKind.PATH, TaskKind.ROUTE},
    "path_ends": {TaskKind.PATH, TaskKind.ROUTE},
    "path_kind": {TaskKind.PATH},
    "view_matrix": {TaskKind.GRAPH, TaskKind.LAYOUT, TaskKind.PATH, TaskKind.FLOW},
    "flow_query": {TaskKind.FLOW},
    "layered_input": {TaskKind.LAYERED, TaskKind.ROUTE},
}


@pytest.mark.parametrize("field", sorted(DEPENDANTS))
def test_changing_an_input_cancels_exactly_its_dependants(lanes, field):
    session, runner = Session(), TaskRunner(lanes)
    session.set_result(result_of(random_run()))
    gate = threading.Event()

    def blocked(context):
        while not context.is_cancelled():
            if gate.wait(0.01):
                return "finished"
        return "cancelled"

    tasks = {kind: runner.submit(session, kind, blocked)
             for kind in TaskKind if kind not in (TaskKind.WARM_UP, TaskKind.ANALYSE)}
    runner.invalidate(session, {field})
    cancelled = {kind for kind, task in tasks.items() if task.cancelled}
    assert cancelled == DEPENDANTS[field]
    gate.set()
    runner.cancel()
    settle(runner, lanes)


def test_a_result_computed_from_old_inputs_is_never_applied(lanes):
    session, runner = Session(), TaskRunner(lanes)
    session.set_result(result_of(random_run()))
    release = threading.Event()
    applied = []
    runner.submit(session, TaskKind.GRAPH, lambda context: release.wait(5) and "old graph",
                  on_done=applied.append)
    session.set_graph_settings(rule=SparsifyRule(mode="top_k", top_k=2))
    runner.invalidate(session, {"graph_settings"})  # as the planner does on `changed`
    release.set()
    settle(runner, lanes)
    assert applied == []


def test_a_task_whose_job_ignores_cancel_is_still_dropped(lanes):
    session, runner = Session(), TaskRunner(lanes)
    session.set_result(result_of(random_run()))
    applied = []
    task = runner.submit(session, TaskKind.FLOW, lambda context: "late flow", on_done=applied.append)
    session.set_spec(kind="rollout")  # bumps view_matrix without telling the runner
    settle(runner, lanes)
    assert applied == [] and not task.cancelled


def test_the_newest_task_of_a_kind_replaces_the_older(lanes):
    session, runner = Session(), TaskRunner(lanes)
    release = threading.Event()
    seen = []
    first = runner.submit(session, TaskKind.ANALYSE, lambda c: release.wait(5) and "first", on_done=seen.append)
    runner.submit(session, TaskKind.ANALYSE, lambda c: "second", on_done=seen.append)
    assert first.cancelled
    release.set()
    settle(runner, lanes)
    assert seen == ["second"]


def test_two_sessions_keep_their_own_tasks(lanes):
    one, two, runner = Session(), Session(), TaskRunner(lanes)
    seen = []
    runner.submit(one, TaskKind.ANALYSE, lambda c: "one", on_done=seen.append)
    runner.submit(two, TaskKind.ANALYSE, lambda c: "two", on_done=seen.append)
    settle(runner, lanes)
    assert sorted(seen) == ["one", "two"]


def test_progress_partial_and_failure_come_back_the_same_way(lanes):
    session, runner = Session(), TaskRunner(lanes)
    events = []

    def job(context):
        context.progress(0.5, "half")
        context.partial("token 1")
        raise ValueError("this went wrong")

    runner.submit(session, TaskKind.ANALYSE, job, on_progress=lambda f, m: events.append(("progress", f, m)),
                  on_partial=lambda p: events.append(("partial", p)), on_failed=lambda m: events.append(("failed", m)))
    settle(runner, lanes)
    assert events == [("progress", 0.5, "half"), ("partial", "token 1"), ("failed", "this went wrong")]


# The session's own bookkeeping --------------------------------------------------------------------


def test_switching_the_head_changes_the_view_matrix_but_not_the_layered_input():
    session = Session()
    session.set_result(result_of(random_run()))
    changes = []
    session.events.changed.connect(changes.append)
    session.set_spec(head=1)
    assert changes == [frozenset({"view_matrix"})]
    session.set_spec(kind="rollout")
    assert changes[-1] == frozenset({"view_matrix", "layered_input"})


def test_selecting_a_token_moves_the_flow_query_only_in_the_flow_view():
    session = Session()
    session.set_result(result_of(random_run()))
    changes = []
    session.events.changed.connect(changes.append)
    session.select_token(3)
    assert changes == []
    session.set_spec(kind="flow")
    assert "flow_query" in changes[-1] and session.view.spec.query == 3
    session.select_token(5)
    assert changes[-1] == frozenset({"flow_query"}) and session.view.spec.query == 5


def test_a_new_analysis_clears_selection_path_and_every_derived_result():
    session = Session()
    session.set_result(result_of(random_run()))
    session.select_token(2)
    session.set_path_ends(1, 4)
    session.set_task_result(TaskKind.PATH, "a path")
    session.set_result(result_of(random_run(seed=1)))
    assert session.selected_token is None and session.path_source is None and session.path is None


def test_tokens_map_to_view_rows_and_back_with_words_and_specials():
    session = Session()
    session.set_result(result_of(word_run()))  # [CLS] play ##ing cats [SEP]
    session.set_spec(merge_words=True, drop_special=True)
    assert [session.row_of(t) for t in range(5)] == [None, 0, 0, 1, None]
    assert [session.token_of_row(r) for r in range(2)] == [1, 3]
    assert session.token_of_row(2) is None


def test_a_token_outside_the_run_is_refused():
    session = Session()
    session.set_result(result_of(word_run()))
    with pytest.raises(IndexError):
        session.select_token(5)


def test_texts_and_model_mark_the_result_out_of_date():
    session = Session()
    from app.session import AnalysisInputs

    session.set_texts("playing cats")
    session.set_result(result_of(word_run()), AnalysisInputs("default", "playing cats"))
    marks = []
    session.events.stale.connect(marks.append)
    assert not session.is_stale
    session.set_texts("playing dogs")
    session.set_texts("playing cats")
    session.set_model_source("elsewhere")
    assert marks == [True, False, True]


def test_graph_settings_are_checked():
    with pytest.raises(ValueError, match="resolution"):
        GraphSettings(resolution=0)


# The planner: only what is shown --------------------------------------------------------------------


def test_the_planner_computes_the_graph_of_the_view_and_applies_it(planned, lanes):
    session, runner, planner = planned
    graphs = []
    session.events.graph.connect(graphs.append)
    session.set_result(result_of(random_run()))
    settle(runner, lanes)
    assert session.graph is not None and session.graph.result.n == 12
    assert graphs[-1] is session.graph and "force" not in session.positions


def test_no_force_layout_unless_it_is_shown_and_never_of_a_stale_graph(planned, lanes):
    session, runner, planner = planned
    session.set_result(result_of(random_run()))
    settle(runner, lanes)
    assert planner.needed() == []
    session.set_layout("force")
    assert TaskKind.LAYOUT in {t.kind for t in runner._pending.values()}
    settle(runner, lanes)
    assert session.positions["force"].shape == (12, 2)


def test_no_token_layout_in_the_layered_view(planned, lanes):
    session, runner, planner = planned
    session.set_result(result_of(random_run()))
    session.set_spec(kind="rollout")
    session.set_layout("layered")
    settle(runner, lanes)
    assert session.layered is not None and "force" not in session.positions
    assert TaskKind.LAYOUT not in planner.needed()


def test_leaving_the_flow_view_cancels_its_flow(planned, lanes):
    session, runner, planner = planned
    session.set_result(result_of(random_run()))
    settle(runner, lanes)
    session.set_spec(kind="flow")
    flow = runner.current(session, TaskKind.FLOW)
    assert flow is not None
    session.set_spec(kind="head")
    assert flow.cancelled
    settle(runner, lanes)
    assert session.flow is None


def test_path_follows_its_ends_across_a_head_switch(planned, lanes):
    session, runner, planner = planned
    session.set_result(result_of(random_run()))
    session.set_path_ends(1, 6)
    settle(runner, lanes)
    first = session.path
    assert first is not None and first.nodes[0] == 1 and first.nodes[-1] == 6
    session.set_spec(head=1)
    assert session.path is None  # the old head's path is gone at once
    settle(runner, lanes)
    assert session.path is not None and session.path is not first


def test_a_failed_graph_leaves_no_graph_and_is_not_retried(planned, lanes, monkeypatch):
    session, runner, planner = planned
    session.set_result(result_of(random_run()))
    settle(runner, lanes)
    import app.jobs as jobs

    def broken(request):
        def job(context):
            raise ValueError("the graph broke")
        return job

    monkeypatch.setattr(jobs, "graph_job", broken)
    session.set_spec(head=1)
    settle(runner, lanes)
    assert session.graph is None and session.errors[TaskKind.GRAPH] == "the graph broke"
    assert planner.plan() == []


def test_a_max_of_heads_view_of_words_gets_a_graph_with_a_stated_meaning(planned, lanes):
    session, runner, planner = planned
    from tests.analysis.fake_runs import (
        WORD_IDS,
        WORD_MATRIX,
        WORD_OFFSETS,
        WORD_SPECIAL,
        WORD_TEXT,
        WORD_TOKENS,
    )

    other = np.full((5, 5), 0.05)
    other[1] = [0.05, 0.1, 0.8, 0.025, 0.025]
    other[2] = [0.0, 0.5, 0.5, 0.0, 0.0]
    other /= other.sum(1, keepdims=True)
    run = make_run(np.stack([WORD_MATRIX, other])[None], text=WORD_TEXT, tokens=WORD_TOKENS, offsets=WORD_OFFSETS,
                   word_ids=WORD_IDS, special=WORD_SPECIAL)
    session.set_result(result_of(run))
    session.set_spec(kind="max", merge_words=True)
    settle(runner, lanes)
    assert session.view.matrix.max() > 1 and not session.view.row_stochastic
    assert session.graph is not None and "divided by" in session.graph.note


def test_analysis_through_the_planner_sets_the_result(planned, lanes, monkeypatch):
    session, runner, planner = planned
    import app.jobs as jobs

    run = random_run()
    monkeypatch.setattr(jobs, "analyse_job", lambda request: (lambda context: result_of(run)))
    session.set_texts(run.text)
    planner.analyse()
    settle(runner, lanes)
    assert session.run is run and session.graph is not None and not session.is_stale


def test_shutdown_leaves_no_lane_running(lanes):
    session, runner = Session(), TaskRunner(lanes)
    runner.submit(session, TaskKind.ANALYSE, lambda context: [context.check() for _ in iter(int, 1)])
    assert runner.shutdown(2.0)


def test_choices_and_session_state_round_trip(tmp_path):
    from analysis.io.session_file import load_session, save_session
    from app.session import AnalysisInputs
    from app.session_io import apply_choices, choices, open_state, session_state

    session = Session()
    run = random_run()
    session.set_texts(run.text)
    session.set_result(result_of(run), AnalysisInputs("default", run.text))
    session.set_spec(kind="rollout", layer=1)
    session.set_graph_settings(rule=SparsifyRule(mode="top_k", top_k=3), resolution=0.5)
    session.set_layout("circular")
    session.set_path_kind("widest")
    session.select_token(4)
    session.set_path_ends(2, 7)
    path = save_session(tmp_path / "s.atlas", run, state=session_state(session))

    other = Session()
    assert apply_choices(other, {"view": {"kind": "nonsense"}, "layout": "spiral"}) != []
    opened, state = load_session(path)
    assert open_state(other, opened, state) == []
    assert (other.spec.kind, other.spec.layer) == ("rollout", 1)
    assert other.graph_settings == session.graph_settings and other.layout == "circular"
    assert other.path_kind == "widest" and other.selected_token == 4
    assert (other.path_source, other.path_target) == (2, 7) and not other.is_stale
    assert choices(other) == choices(session)
