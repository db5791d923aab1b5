import pytest
from PySide6.QtCore import QSettings

from app.main_window import MainWindow

SENTENCE = "The cat sat on the mat because it was tired."


@pytest.fixture
def settings(tmp_path):
    return QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)


@pytest.fixture
def window(qtbot, settings):
    win = MainWindow(settings)
    qtbot.addWidget(win)
    win.resize(1400, 900)
    win.show()
    yield win
    win.host.shutdown()


@pytest.fixture
def analysed(qtbot, window):
    """A window that has analysed SENTENCE and drawn its first graph."""
    window.input_panel.set_texts(SENTENCE)
    with qtbot.waitSignals([window.analysis_ready, window.graph_ready], timeout=120_000):
        window.analyse()
    return window


@pytest.fixture
def chat_window(qtbot, tmp_path, chat_loaded):
    """A window on the embedded chat model (loaded once per session), nothing analysed yet."""
    window = MainWindow(QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat), warm_up=False)
    qtbot.addWidget(window)
    window.resize(1400, 900)
    window.show()
    window.set_model_source("smollm2")
    yield window
    window.host.shutdown()
