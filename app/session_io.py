"""The person's choices as plain JSON, and session files opened into a Session. No Qt.

``choices(session)`` is what the window remembers between starts (view, graph settings,
layout, path kind); ``session_state(session)`` adds the texts, the model, the selection and
the path ends, for a session file (``analysis.io.session_file``).
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, fields, replace
from typing import Any

from analysis.attention.views import ViewSpec
from analysis.graph.rules import SparsifyRule
from app.jobs import AnalysisResult
from app.session import AnalysisInputs, GraphSettings, Session


def choices(session: Session) -> dict[str, Any]:
    settings = session.graph_settings
    spec = {key: value for key, value in asdict(session.spec).items() if key != "query"}
    return {
        "view": spec,
        "graph": {"rule": settings.rule.to_dict(), "resolution": settings.resolution, "seed": settings.seed},
        "layout": session.layout,
        "path_kind": session.path_kind,
    }


def apply_choices(session: Session, data: dict[str, Any]) -> list[str]:
    """Apply what ``choices`` wrote (unknown or invalid parts are skipped); returns what was
    skipped, as sentences."""
    skipped = []
    view = data.get("view")
    if isinstance(view, dict):
        known = {f.name for f in fields(ViewSpec)} - {"query"}
        try:
            session.set_spec(replace(ViewSpec(), **{k: v for k, v in view.items() if k in known}))
        except (TypeError, ValueError) as error:
            skipped.append(f"the view ({error})")
    graph = data.get("graph")
    if isinstance(graph, dict):
        try:
            rule = SparsifyRule.from_dict(graph.get("rule") or {})
            session.set_graph_settings(GraphSettings(rule, float(graph.get("resolution", 1.0)),
                                                     int(graph.get("seed", 0))))
        except (TypeError, ValueError) as error:
            skipped.append(f"the graph settings ({error})")
    for key, setter in (("layout", session.set_layout), ("path_kind", session.set_path_kind)):
        if isinstance(data.get(key), str):
            try:
                setter(data[key])
            except ValueError as error:
                skipped.append(f"the {key.replace('_', ' ')} ({error})")
    return skipped


def session_state(session: Session) -> dict[str, Any]:
    inputs = session.result_inputs
    return {
        **choices(session),
        "inputs": asdict(inputs) if inputs is not None else None,
        "selected_token": session.selected_token,
        "path_ends": [session.path_source, session.path_target],
    }


def result_of_run(run) -> AnalysisResult:
    """The head overview's thumbnails and statistics of a run (as the analysis job makes them)."""
    from analysis.attention.head_stats import head_summary, head_thumbnails

    return AnalysisResult(run=run, thumbnails=head_thumbnails(run.attentions),
                          head_stats=head_summary(run.attentions, run.special_mask))


def open_state(session: Session, run, state: dict[str, Any]) -> list[str]:
    """Show a run read from a session file with its saved choices; returns what was skipped."""
    raw = state.get("inputs") or {}
    inputs = AnalysisInputs(str(raw.get("source", run.model.source)), str(raw.get("text", run.text)),
                            raw.get("pair", run.pair))
    session.set_model_source(inputs.source)
    session.set_texts(inputs.text, inputs.pair)
    skipped = apply_choices(session, state)
    session.set_result(result_of_run(run), inputs)
    with contextlib.suppress(IndexError, TypeError, ValueError):
        session.select_token(state.get("selected_token"))
    ends = state.get("path_ends")
    if isinstance(ends, list) and len(ends) == 2:
        try:
            session.set_path_ends(*ends)
        except (IndexError, TypeError, ValueError):
            skipped.append("the path ends")
    return skipped
