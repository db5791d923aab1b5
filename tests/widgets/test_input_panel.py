"""The input panel: samples, pair, open file, drag and drop, busy state."""

from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from resources import sample_texts
from widgets.input_panel import InputPanel
from widgets.view_controls import ViewControls


def make_panel(qtbot):
    panel = InputPanel(sample_texts())
    qtbot.addWidget(panel)
    panel.show()
    return panel


def test_choosing_a_sample_fills_text_and_pair(qtbot):
    panel = make_panel(qtbot)
    samples = sample_texts()
    with_pair = next(i for i, s in enumerate(samples) if s["pair"])
    panel.sample_box.activated.emit(with_pair + 1)
    assert panel.text() == samples[with_pair]["text"]
    assert panel.pair() == samples[with_pair]["pair"] and panel.pair_edit.isVisible()
    panel.sample_box.activated.emit(1)
    assert panel.text() == samples[0]["text"] and panel.pair() is None


def test_open_file_reads_utf8_and_reports_bad_files(qtbot, tmp_path):
    panel = make_panel(qtbot)
    good = tmp_path / "good.txt"
    good.write_text("Zoë läuft über die Straße.", encoding="utf-8")
    assert panel.load_file(str(good))
    assert panel.text() == "Zoë läuft über die Straße."
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe\x00garbage\xff")
    with qtbot.waitSignal(panel.file_error) as signal:
        assert not panel.load_file(str(bad))
    assert "not a UTF-8 text file" in signal.args[0]
    assert panel.text() == "Zoë läuft über die Straße."  # nothing lost
    with qtbot.waitSignal(panel.file_error) as signal:
        assert not panel.load_file(str(tmp_path / "missing.txt"))
    assert "no such file" in signal.args[0]


def test_dropping_a_file_loads_it_instead_of_its_path(qtbot, tmp_path):
    panel = make_panel(qtbot)
    dropped = tmp_path / "dropped.txt"
    dropped.write_text("Dropped text.", encoding="utf-8")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(dropped))])
    event = QDropEvent(QPointF(5, 5), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    panel.text_edit.dropEvent(event)
    assert panel.text() == "Dropped text."
    panel.pair_edit.dropEvent(QDropEvent(QPointF(5, 5), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier))
    assert panel.pair() == "Dropped text."


def test_buttons_and_busy_state(qtbot):
    panel = make_panel(qtbot)
    with qtbot.waitSignal(panel.analyse_requested):
        qtbot.mouseClick(panel.analyse_button, Qt.LeftButton)
    assert not panel.cancel_button.isEnabled()
    panel.set_busy(True)
    panel.set_progress(0.5, "Running")
    assert panel.cancel_button.isEnabled() and panel.progress.value() == 50
    with qtbot.waitSignal(panel.cancel_requested):
        qtbot.mouseClick(panel.cancel_button, Qt.LeftButton)
    panel.set_busy(False)
    assert not panel.cancel_button.isEnabled() and not panel.progress.isVisible()


def test_view_controls_fit_the_model_and_emit_once_per_burst(qtbot):
    controls = ViewControls(("viridis", "magma"))
    qtbot.addWidget(controls)
    controls.set_limits(6, 12, has_decoder=False)
    assert controls.layer_spin.maximum() == 5 and controls.head_spin.maximum() == 11
    assert controls.stack_box.isHidden()
    emitted = []
    controls.changed.connect(lambda: emitted.append(1))
    for head in range(1, 6):
        controls.head_spin.setValue(head)
    qtbot.waitUntil(lambda: len(emitted) > 0, timeout=1000)
    qtbot.wait(50)
    assert len(emitted) == 1  # debounced: holding an arrow key does not queue five repaints
    controls.set_kind("mean")
    assert not controls.head_spin.isEnabled()
    controls.set_head(2, 3)
    assert controls.kind() == "head" and controls.head_spin.isEnabled()
