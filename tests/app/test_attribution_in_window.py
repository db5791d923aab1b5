"""Attribution in the window: pick method and target, run, cancel, see the strip and the table."""

import numpy as np

from app.tasks import TaskKind


def pair_window(qtbot, window):
    window.input_panel.set_texts("A man is playing a guitar.", "Someone plays an instrument.")
    with qtbot.waitSignals([window.analysis_ready, window.graph_ready], timeout=120_000):
        window.analyse()
    return window


def test_similarity_attribution_with_a_comparison_of_methods(qtbot, window):
    window = pair_window(qtbot, window)
    panel = window.attribution_panel
    assert panel.target_box.currentData() == "similarity"  # what the embedding model can do
    panel.method_box.setCurrentIndex(panel.method_box.findData("input_x_gradient"))
    with qtbot.waitSignal(window.attribution_ready, timeout=180_000):
        window.attribute()
    result = panel.result()
    assert result.method == "input_x_gradient" and result.target.kind == "similarity"
    assert "guitar" in panel.strip_html() and "f(x) =" in panel.summary.text()
    np.testing.assert_allclose(result.f_x, window.session.attribution["attribution"].f_x)
    # each text is encoded on its own for a similarity: its units are no tokens of the run
    panel.token_selected.emit(3)
    assert window.session.selected_token is None


def test_integrated_gradients_says_whether_it_adds_up_and_cancel_keeps_the_window(qtbot, window):
    window = pair_window(qtbot, window)
    panel = window.attribution_panel
    panel.compare_check.setChecked(True)
    panel.adaptive_check.setChecked(False)
    panel.steps_spin.setValue(16)
    with qtbot.waitSignal(window.attribution_ready, timeout=300_000):
        window.attribute()
    comparison = window.session.attribution["comparison"]
    assert {"integrated_gradients", "input_x_gradient", "occlusion"} <= set(comparison["scores"])
    assert {"attention", "rollout", "value_norm", "alti"} <= set(comparison["scores"])  # views of the target position
    assert panel.table.columnCount() == len(comparison["scores"])
    assert panel.table.horizontalHeaderItem(0).text() == "Integrated Gradients"
    # the window shows exactly what the comparison function computes
    from analysis.attribution.compare import Comparison

    assert isinstance(comparison["object"], Comparison)
    alti = comparison["object"]["alti"]
    column = list(comparison["scores"]).index("alti")
    from analysis.io.numbers import format_number

    assert panel.table.item(0, column).text() == format_number(alti.faithfulness.aopc_comprehensiveness, 4)
    assert window.session.attribution["attribution"] is comparison["object"]["integrated_gradients"].attribution
    assert panel.table.verticalHeaderItem(0).text().startswith("AOPC")
    assert panel.table.verticalHeaderItem(2).text().startswith("Spearman")
    assert "add up" in panel.summary.text()
    panel.compare_check.setChecked(False)
    panel.method_box.setCurrentIndex(panel.method_box.findData("kernel_shap"))
    panel.samples_spin.setValue(5000)
    with qtbot.waitSignal(window.host.settled, timeout=60_000,
                          check_params_cb=lambda task, event: task.kind is TaskKind.ATTRIBUTE):
        window.attribute()
        window.cancel()
    assert panel.run_button.isEnabled() and not panel.cancel_button.isEnabled()
    assert "Cancelled" in panel.summary.text()


def test_a_single_text_asks_for_a_second_one(qtbot, analysed):
    window = analysed
    with qtbot.waitSignal(window.error_shown, timeout=2000) as shown:
        assert window.attribute() is None
    assert "compares two texts" in shown.args[0]
