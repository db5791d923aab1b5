"""The window's model choice: the picker, model folders and GGUF files, the conversion
cache, and loading the chosen model in the background while the person types.

A mixin of :class:`app.main_window.MainWindow`.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QMessageBox

from app.model_picker import OPEN_FILE, OPEN_FOLDER
from app.tasks import TaskKind


class ModelChoiceMixin:
    """Choosing the model in the main window."""

    def current_source(self) -> str:
        return self.model_box.source()

    def set_model_source(self, source: str) -> None:
        """Choose a model (a folder path, a hub id or 'default'); the next analysis uses it."""
        self.model_box.set_source(source)
        self.session.set_model_source(source)

    def _on_model_chosen(self, index: int) -> None:
        if self.model_box.itemData(index) == OPEN_FOLDER:
            self.open_model_dialog()
        elif self.model_box.itemData(index) == OPEN_FILE:
            self.open_model_file_dialog()
        else:
            self.session.set_model_source(self.model_box.source())

    def open_model_file_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a GGUF model file", "", "GGUF models (*.gguf);;All files (*)")
        if path:
            self.set_model_source(path)
            self.input_panel.show_message(f"Model: {Path(path).name}. The first load converts it (it may take a "
                                          "minute); later loads read the converted copy.")
        else:
            self.model_box.set_source(self.session.model_source)

    def clear_conversion_cache(self) -> None:
        from analysis.models.gguf import clear_gguf_cache, gguf_cache_size

        size = gguf_cache_size()
        if size == 0:
            self.statusBar().showMessage("The model conversion cache is empty.", 5000)
            return
        answer = QMessageBox.question(
            self, "Clear the conversion cache?",
            f"The converted copies of GGUF models take {size / 1e6:.0f} MB. Clearing them frees the space; "
            "the next load of each GGUF model converts it again (slower).")
        if answer == QMessageBox.Yes:
            freed = clear_gguf_cache()
            self.statusBar().showMessage(f"Cleared the conversion cache: {freed / 1e6:.0f} MB freed.", 5000)

    def open_model_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a model folder (Hugging Face format)")
        if folder:
            self.set_model_source(folder)
            self.input_panel.show_message(f"Model: {folder}. Press Ctrl+Enter to analyse with it.")
        else:
            self.model_box.set_source(self.session.model_source)

    def _warm_up(self) -> None:
        """Load the chosen model in the background while the person types."""
        if not self.host.runner.is_busy(self.session, [TaskKind.ANALYSE]):
            self.planner.warm_up(self.current_source(), on_done=self._on_warmed_up)

    def _on_warmed_up(self, facts) -> None:
        if self.session.result is None:
            self.status_model.setText(f"{facts.name} is loaded: type a text (or pick a sample) and press Ctrl+Enter.")
        self.warmed_up.emit()
