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
    qtbot.waitUntil(lambda: window.model_box.findData("org/tiny-gpt2") > 0, timeout=10_000)  # found in the background
    index = window.model_box.findData("org/tiny-gpt2")
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


def test_pickle_weights_load_only_after_a_yes_that_names_the_risk(qtbot, tmp_path):
    from tests.tiny_models import build_pickle_only_model

    folder = build_pickle_only_model(tmp_path / "pickle")
    window = MainWindow(QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat), warm_up=False)
    qtbot.addWidget(window)
    window.show()
    asked = []
    window.ask_allow_pickle = lambda source: asked.append(source) or False
    window.set_model_source(str(folder))
    window.input_panel.set_texts("the cat sat on the mat")
    with qtbot.waitSignal(window.error_shown, timeout=60_000) as shown:
        window.analyse()
    assert asked == [str(folder)] and "declined" in shown.args[0] and window.result is None
    window.ask_allow_pickle = lambda source: True
    with qtbot.waitSignals([window.analysis_ready, window.graph_ready], timeout=60_000):
        window.analyse()
    assert window.result.run.model.source == str(folder)
    window.host.shutdown()


def test_the_pickle_question_names_the_risk(qtbot, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    window = MainWindow(QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat), warm_up=False)
    qtbot.addWidget(window)
    seen = []
    monkeypatch.setattr(QMessageBox, "warning", lambda *args: seen.append(args) or QMessageBox.No)
    assert window.ask_allow_pickle("some/model") is False
    assert "can run any code" in seen[0][2] and "some/model" in seen[0][2]
    window.host.shutdown()


def test_looking_for_local_models_does_not_hold_up_the_window(qtbot, tmp_path, monkeypatch):
    """The scan of Ollama / LM Studio / HF cache folders runs on its own thread: the window
    is up and the embedded models are offered while it is still walking folders."""
    import threading

    from analysis.models import discovery
    from analysis.models.discovery import FoundModel

    release = threading.Event()
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF")

    def slow_scan(*args, **kwargs):
        release.wait(20)
        return [FoundModel(name="tiny (Ollama)", path=gguf, where="Ollama", size=4)]

    monkeypatch.setattr(discovery, "find_gguf_models", slow_scan)
    window = MainWindow(QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat), warm_up=False)
    qtbot.addWidget(window)
    window.show()
    box = window.model_box
    assert box.findData("smollm2") > 0 and box.findData(str(gguf)) < 0  # up before the scan ends
    with qtbot.waitSignal(box.scanned, timeout=10_000):
        release.set()
    assert box.itemText(box.findData(str(gguf))) == "tiny (Ollama)"
    assert box.source() == "default"  # the choice did not move
    window.host.shutdown()
