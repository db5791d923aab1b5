"""The window's files: its settings (remembered texts and choices) and session files.

A mixin of :class:`app.main_window.MainWindow` (it uses the window's widgets, session and
planner): texts over ``SETTINGS_TEXT_LIMIT`` characters go to a recovery file in the data
folder instead of the settings; the person's choices (view, graph settings, layout, path
kind) are restored on the next start; ``.atlas`` session files reopen an analysis.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from PySide6.QtWidgets import QFileDialog

from analysis.io.text_files import TextFileError, read_text_file
from analysis.io.user_dirs import data_dir
from app.model_picker import DEFAULT_SOURCE
from app.session_io import apply_choices, choices, open_state, session_state
from app.tasks import TaskKind

#: The dock layout's version in the settings: a layout saved by an older version (metrics
#: tabbed with the tokens in a short bottom strip) is dropped for today's default.
DOCK_LAYOUT_VERSION = 2
SETTINGS_TEXT_LIMIT = 20_000  # characters of a text kept in the settings; longer ones in a recovery file


class WindowFilesMixin:
    """Settings and session files of the main window."""

    def _restore_settings(self) -> None:
        geometry = self.settings.value("window/geometry")
        if geometry is None or not self.restoreGeometry(geometry):
            self.fit_to_screen()  # first start: the screen's available area
        state = self.settings.value("window/state")
        if state is None or not self.restoreState(state, DOCK_LAYOUT_VERSION):
            self._split_docks()  # no layout of this version remembered: the default one
        source = str(self.settings.value("model/last", DEFAULT_SOURCE))
        self.model_box.fill(source)
        self.session.set_model_source(self.model_box.source())
        self._restore_texts()
        colormap = self.settings.value("view/colormap")
        if colormap and self.view_controls.colormap_box.findText(str(colormap)) >= 0:
            self.view_controls.colormap_box.setCurrentText(str(colormap))
        self.view_binding._on_display_changed()
        try:
            remembered = json.loads(str(self.settings.value("session/choices") or "{}"))
        except ValueError:
            remembered = {}
        if isinstance(remembered, dict):
            apply_choices(self.session, remembered)

    def save_settings(self) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState(DOCK_LAYOUT_VERSION))
        self.settings.setValue("model/last", self.current_source())
        self._save_texts()
        self.settings.setValue("view/colormap", self.view_controls.colormap_box.currentText())
        self.settings.setValue("session/choices", json.dumps(choices(self.session)))
        self.settings.sync()

    def save_session_file(self, path: str) -> bool:
        """Save the shown analysis and the choices as a .atlas file; False with a message."""
        from analysis.io.session_file import SUFFIX, SessionFileError, save_session

        if self.session.run is None:
            self.show_error("Nothing to save yet: analyse a text first.")
            return False
        if not path.lower().endswith(SUFFIX):
            path += SUFFIX
        try:
            save_session(path, self.session.run, state=session_state(self.session))
        except SessionFileError as error:
            self.show_error(str(error))
            return False
        self.statusBar().showMessage(f"Saved {path}", 5000)
        return True

    def open_session_file(self, path: str) -> bool:
        """Show the analysis of a .atlas file with its choices; False with a message."""
        from analysis.io.session_file import SessionFileError, load_session

        try:
            run, state = load_session(path)
        except SessionFileError as error:
            self.show_error(str(error))
            return False
        self.host.runner.cancel(self.session, [TaskKind.ANALYSE])
        self.input_panel.set_texts(run.text, run.pair)
        self.model_box.set_source(run.model.source)
        skipped = open_state(self.session, run, state)
        self._on_analysed(self.session.result)
        note = f" Not restored: {', '.join(skipped)}." if skipped else ""
        self.input_panel.show_message(f"Opened {Path(path).name}: {run.num_tokens} tokens of {run.model.name}.{note}")
        return True

    def save_session_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save session", "analysis.atlas", "Attention Atlas session (*.atlas)")
        if path:
            self.save_session_file(path)

    def open_session_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open session", "", "Attention Atlas session (*.atlas);;All files (*)")
        if path:
            self.open_session_file(path)

    def _save_texts(self) -> None:
        """Short texts go into the settings; a long one into a recovery file in the data folder
        (the settings file stays small, and nothing typed is lost)."""
        for key, value in (("text", self.input_panel.text()), ("pair", self.input_panel.pair() or "")):
            recovery = data_dir() / f"recovered-{key}.txt"
            if len(value) <= SETTINGS_TEXT_LIMIT:
                self.settings.setValue(f"input/{key}", value)
                self.settings.remove(f"input/{key}_file")
                continue
            try:
                recovery.parent.mkdir(parents=True, exist_ok=True)
                recovery.write_text(value, encoding="utf-8")
            except OSError as error:
                print(f"attention-atlas: could not keep the long {key} in {recovery}: {error}", file=sys.stderr)
                continue
            self.settings.setValue(f"input/{key}", "")
            self.settings.setValue(f"input/{key}_file", str(recovery))

    def _restore_texts(self) -> None:
        texts = {}
        for key in ("text", "pair"):
            texts[key] = str(self.settings.value(f"input/{key}") or "")
            path = self.settings.value(f"input/{key}_file")
            if path:
                try:
                    texts[key] = read_text_file(str(path))
                except TextFileError as error:
                    self.input_panel.show_message(f"Your last {key} was kept in {path} but cannot be reopened "
                                                  f"here: {error}", error=True)
        if texts["text"] or texts["pair"]:
            self.input_panel.set_texts(texts["text"], texts["pair"] or None)

    def _on_texts_edited(self) -> None:
        self.session.set_texts(self.input_panel.text(), self.input_panel.pair())

    def _on_stale(self, stale: bool) -> None:
        """Say when the shown result no longer matches the text or the model."""
        if stale:
            self.status_notice.setText("Out of date: the text or the model changed. Ctrl+Enter analyses it.")
        else:
            run = self.session.run
            self.status_notice.setText((run.notice or "") if run is not None else "")

    def open_text_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a text", "", "Text files (*.txt *.md);;All files (*)")
        if path:
            self.input_panel.load_file(path)
