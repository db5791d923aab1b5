"""Other models in the window: a cached hub model is offered, analysed and remembered."""

import numpy as np
from PySide6.QtCore import QSettings

from app.main_window import MainWindow
from tests.tiny_models import build_tiny_model, fake_hub_cache


def test_a_cached_causal_model_is_offered_analysed_masked_and_remembered(qtbot, tmp_path, monkeypatch):
    cache = fake_hub_cache(tmp_path / "hub", "org/tiny-gpt2", build_tiny_model("gpt2", tmp_path / "gpt2"))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    window = MainWindow(QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat), warm_up=False)
    qtbot.addWidget(window)
    window.show()
    index = window.model_box.findData("org/tiny-gpt2")
    assert index > 0, "the cached model is listed in the model picker"
    window.model_box.setCurrentIndex(index)
    window.input_panel.set_texts("the cat sat on the mat")
    with qtbot.waitSignals([window.analysis_ready, window.graph_ready], timeout=60_000):
        window.analyse()
    run = window.result.run
    assert run.model.is_causal and run.model.name == "org/tiny-gpt2"
    n = len(window.view.row_labels)
    np.testing.assert_array_equal(window.view.masked, np.triu(np.ones((n, n), bool), 1))
    assert "org/tiny-gpt2" in window.model_box.recent()
    window.host.shutdown()
