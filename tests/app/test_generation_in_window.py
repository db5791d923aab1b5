"""Generation in the window on the embedded chat model: stream, stop, step through."""

import numpy as np


def test_generate_stream_and_step_through_the_tokens(qtbot, chat_window):
    window, panel = chat_window, chat_window.generation_panel
    panel.prompt_edit.setPlainText("What is the capital of France?")
    panel.max_tokens_spin.setValue(6)
    streamed = []
    original = panel.add_token
    panel.add_token = lambda step: streamed.append(step) or original(step)
    with qtbot.waitSignals([window.analysis_ready, window.graph_ready], timeout=120_000):
        window.generate()
    run = window.result.run
    generation = run.generation
    assert generation is not None and len(generation.steps) == len(streamed) > 0
    assert [s.id for s in streamed] == list(run.input_ids[run.prompt_length:])
    assert "Paris" in generation.text
    last = len(generation.steps) - 1
    assert panel.current_step() == last
    assert window.session.selected_token == run.prompt_length + last - 1
    # step 0: the query that predicted the first answer token is the prompt's last token
    panel.step_selected.emit(0)
    step = generation.steps[0]
    assert window.session.selected_token == run.prompt_length - 1 == window.selected_row()
    assert panel.candidates.rowCount() == len(step.top) and panel.candidates.item(0, 0).text()
    assert panel.lens.rowCount() == run.num_layers and panel.lens.item(run.num_layers - 1, 0).text() == str(run.num_layers - 1)
    probs = [float(panel.candidates.item(r, 1).text()) for r in range(panel.candidates.rowCount())]
    assert probs == sorted(probs, reverse=True) and sum(probs) <= 1 + 1e-6
    np.testing.assert_allclose(window.heatmap.current_matrix()[window.selected_row()].sum(), 1, atol=1e-3)
    assert "rank 1" in panel.step_info.text()
    # the head overview shows, in every tile, the row of the query that predicted the token
    overview = window.head_overview
    qtbot.waitUntil(lambda: overview.query_caption().startswith(f"token {run.prompt_length - 1} "), timeout=5000)
    assert "which predicted" in overview.query_caption()
    from analysis.attention.head_stats import query_rows

    size = window.result.thumbnails.shape[-1]
    rows = query_rows(run.attentions, run.prompt_length - 1, size=size)
    tiles = overview._tiles()
    np.testing.assert_allclose(np.nan_to_num(tiles[:, :, 0, :]), np.where(np.isnan(tiles[:, :, 0, :]), 0, rows))
    assert "looks most at" in overview.tile_text(0, 0)
    panel.step_selected.emit(last)
    qtbot.waitUntil(lambda: overview.query_caption().startswith(f"token {run.prompt_length + last - 1} "), timeout=5000)
    # the answer is marked on both heatmap axes and in the token view
    assert window.heatmap.generated_from() == (run.prompt_length, run.prompt_length)
    assert "the model generated the tokens from here on" in window.token_view.html()


def test_stop_keeps_the_tokens_so_far(qtbot, chat_window):
    window, panel = chat_window, chat_window.generation_panel
    panel.prompt_edit.setPlainText("Count from one to fifty in words.")
    panel.max_tokens_spin.setValue(200)
    panel.stop_check.setChecked(False)
    seen = []
    original = panel.add_token

    def add(step):
        seen.append(step)
        original(step)
        if len(seen) == 3:
            window.cancel()  # Esc

    panel.add_token = add
    with qtbot.waitSignal(window.analysis_ready, timeout=120_000):
        window.generate()
    generation = window.result.run.generation
    assert generation.stop_reason == "cancelled" and 3 <= len(generation.steps) < 200
    assert window.result.run.num_tokens == window.result.run.prompt_length + len(generation.steps)
    assert "stopped" in panel.answer.text()


def test_an_encoder_cannot_generate_and_says_so(qtbot, analysed):
    window = analysed
    assert not window.generation_panel.generate_button.isEnabled()
    assert "cannot generate" in window.generation_panel.answer.text()


def test_a_case_study_fills_the_prompt_and_chooses_the_chat_model(qtbot, window):
    from resources import case_studies

    panel = window.generation_panel
    cases = case_studies()
    assert any("Tweety" in case["prompt"] for case in cases)
    assert any("Paris is the capital" in case["prompt"] for case in cases)
    panel.case_box.activated.emit(1)
    assert panel.prompt() == cases[0]["prompt"] and panel.max_tokens_spin.value() == cases[0]["max_new_tokens"]
    assert window.current_source() == "smollm2" and window.session.model_source == "smollm2"


def test_attribution_of_the_generated_tokens(qtbot, chat_window):
    window, panel = chat_window, chat_window.attribution_panel
    window.generation_panel.prompt_edit.setPlainText("The capital of France is")
    window.generation_panel.chat_check.setChecked(False)
    window.generation_panel.max_tokens_spin.setValue(3)
    with qtbot.waitSignal(window.analysis_ready, timeout=120_000):
        window.generate()
    assert panel.target_box.currentData() == "next_token"
    panel.target_box.setCurrentIndex(panel.target_box.findData("generation"))
    panel.method_box.setCurrentIndex(panel.method_box.findData("input_x_gradient"))
    with qtbot.waitSignal(window.attribution_ready, timeout=300_000):
        window.attribute()
    matrix = window.session.attribution["generation"]
    run = window.result.run
    assert matrix.num_rows == len(run.generation.steps)
    assert panel.matrix.isVisible() and panel.matrix.current_matrix().shape[0] == matrix.num_rows
