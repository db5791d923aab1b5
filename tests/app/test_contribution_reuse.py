"""The contribution views reuse the analysis pass (no second forward for value norms and ALTI)."""

from __future__ import annotations

import numpy as np
import pytest

from app import jobs
from app.tasks import JobContext, TaskKind


def context() -> JobContext:
    return JobContext(TaskKind.ANALYSE, report=lambda f, m="": None, send_partial=lambda p: None,
                      is_cancelled=lambda: False)


@pytest.fixture(scope="module")
def minilm():
    from analysis.models.loading import load_model

    return load_model("minilm")


def forward_counter(model):
    calls = []
    handle = model.register_forward_pre_hook(lambda module, args: calls.append(1))
    return calls, handle


def test_the_analysis_keeps_its_pass_and_alti_runs_no_second_forward(minilm):
    text = "The quick brown fox jumps over the lazy dog because it was bored."
    result = jobs.analyse_job(jobs.AnalyseRequest("minilm", text))(context())
    assert result.capture is not None
    assert np.array_equal(result.capture.input_ids, result.run.input_ids)
    calls, handle = forward_counter(minilm.model)
    try:
        reused = jobs.contributions_job(result.run, "alti", capture=result.capture)(context())
        assert calls == []  # nothing ran the model
        fresh = jobs.contributions_job(result.run, "alti")(context())
        assert len(calls) == 1  # without the capture: one hooked pass
    finally:
        handle.remove()
    np.testing.assert_allclose(reused["alti"], fresh["alti"], atol=1e-6)
    norms = jobs.contributions_job(result.run, "value_norm", capture=result.capture)(context())
    again = jobs.contributions_job(result.run, "value_norm")(context())
    np.testing.assert_allclose(norms["value_norm"], again["value_norm"], atol=1e-6)


def test_recording_leaves_the_run_unchanged(minilm):
    from analysis.attention.extract import extract

    text = "Recording hooks only read what the layers compute."
    plain = extract(minilm, text)
    run, capture = jobs.recorded_extract(minilm, lambda: extract(minilm, text))
    assert capture is not None
    np.testing.assert_array_equal(run.attentions, plain.attentions)


def test_a_long_run_whose_weights_extract_copies_itself_is_still_recorded(minilm, monkeypatch):
    """Above a size extract copies the weights in its own hook and hands None on; the
    recorder must cope (it crashed the analysis before)."""
    from analysis.attention import extract as extract_module

    monkeypatch.setattr(extract_module, "CAPTURE_ABOVE_BYTES", 0)
    text = "A long text is copied layer by layer by the extraction's own hooks."
    run, capture = jobs.recorded_extract(minilm, lambda: extract_module.extract(minilm, text))
    assert capture is not None
    plain = jobs.contributions_job(run, "alti")(context())["alti"]
    reused = jobs.contributions_job(run, "alti", capture=capture)(context())["alti"]
    np.testing.assert_allclose(reused, plain, atol=1e-6)


def test_a_capture_over_the_budget_is_not_kept(minilm, monkeypatch):
    from analysis.attention.extract import extract

    monkeypatch.setattr(jobs, "CAPTURE_KEEP_BYTES", 0)
    run, capture = jobs.recorded_extract(minilm, lambda: extract(minilm, "Too large to keep."))
    assert capture is None and run.num_tokens > 0


def test_the_window_leaves_one_core_to_the_gui(monkeypatch):
    monkeypatch.setattr(jobs.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.delenv("ATLAS_TORCH_THREADS", raising=False)
    assert jobs.window_torch_threads() == 1
    monkeypatch.setattr(jobs.os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    assert jobs.window_torch_threads() == 7
    monkeypatch.setenv("ATLAS_TORCH_THREADS", "3")
    assert jobs.window_torch_threads() == 3
    import torch

    before = torch.get_num_threads()
    try:
        jobs.configure_torch()
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)
