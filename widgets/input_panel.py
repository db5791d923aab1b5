"""The text input panel: a text (or a text pair), samples, open file, drag and drop."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from analysis.io.text_files import MAX_TEXT_BYTES, TextFileError, read_text_file

MAX_FILE_BYTES = MAX_TEXT_BYTES


class _TextEdit(QPlainTextEdit):
    """A plain text box that reports dropped files instead of inserting their paths."""

    file_dropped = Signal(str)

    def dragEnterEvent(self, event):  # noqa: N802 (Qt name)
        if event.mimeData().hasUrls():
            event.acceptProposedAction()
        else:
            super().dragEnterEvent(event)

    def dragMoveEvent(self, event):  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()
        else:
            super().dragMoveEvent(event)

    def dropEvent(self, event):  # noqa: N802
        urls = [u for u in event.mimeData().urls() if u.isLocalFile()]
        if urls:
            event.acceptProposedAction()
            self.file_dropped.emit(urls[0].toLocalFile())
        else:
            super().dropEvent(event)


class InputPanel(QWidget):
    """Where the person writes what to analyse. Emits ``analyse_requested`` and ``cancel_requested``."""

    analyse_requested = Signal()
    cancel_requested = Signal()
    file_error = Signal(str)
    texts_changed = Signal()  # the text or the pair was edited (debounced a little)

    def __init__(self, samples: list[dict] | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._samples = list(samples or [])

        self.sample_box = QComboBox()
        self.sample_box.addItem("Samples…")
        for sample in self._samples:
            self.sample_box.addItem(sample["name"])
        self.sample_box.setToolTip("Load a sample text")
        self.sample_box.activated.connect(self._on_sample_chosen)

        self.text_edit = _TextEdit()
        self.text_edit.setPlaceholderText("Type or paste a text, drop a .txt file here, or pick a sample.")
        self.text_edit.setToolTip("The text to analyse (Ctrl+Enter analyses it)")
        self.text_edit.file_dropped.connect(self.load_file)

        self.pair_check = QCheckBox("Text pair (e.g. question + context)")
        self.pair_check.setToolTip("Feed the model two texts as one pair, like a question and its context")
        self.pair_edit = _TextEdit()
        self.pair_edit.setPlaceholderText("Second text: the context, the answer, or the next sentence.")
        self.pair_edit.file_dropped.connect(lambda path: self.load_file(path, into_pair=True))
        self.pair_edit.setVisible(False)
        self.pair_check.toggled.connect(self.pair_edit.setVisible)

        self.analyse_button = QPushButton("Analyse")
        self.analyse_button.setToolTip("Run the model on the text (Ctrl+Enter)")
        self.analyse_button.setDefault(True)
        self.analyse_button.clicked.connect(self.analyse_requested)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the running analysis (Esc); the previous result stays")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel_requested)

        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setTextVisible(True)
        self.progress.setVisible(False)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.message.setObjectName("inputMessage")

        self._edited = QTimer(self)
        self._edited.setSingleShot(True)
        self._edited.setInterval(250)
        self._edited.timeout.connect(self.texts_changed)
        for signal in (self.text_edit.textChanged, self.pair_edit.textChanged, self.pair_check.toggled):
            signal.connect(self._edited.start)

        buttons = QHBoxLayout()
        buttons.addWidget(self.analyse_button, 1)
        buttons.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.sample_box)
        layout.addWidget(self.text_edit, 3)
        layout.addWidget(self.pair_check)
        layout.addWidget(self.pair_edit, 2)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.message)

    # State -------------------------------------------------------------------------------
    def text(self) -> str:
        return self.text_edit.toPlainText()

    def pair(self) -> str | None:
        if not self.pair_check.isChecked():
            return None
        return self.pair_edit.toPlainText()

    def set_texts(self, text: str, pair: str | None = None) -> None:
        self.text_edit.setPlainText(text)
        self.pair_check.setChecked(pair is not None)
        self.pair_edit.setPlainText(pair or "")

    def set_busy(self, busy: bool) -> None:
        self.cancel_button.setEnabled(busy)
        self.progress.setVisible(busy)
        if not busy:
            self.progress.setValue(0)

    def set_progress(self, fraction: float, message: str) -> None:
        self.progress.setValue(int(round(100 * fraction)))
        self.progress.setFormat(f"{message}  %p%" if message else "%p%")

    def show_message(self, text: str, *, error: bool = False) -> None:
        colour = "#b00020" if error else "palette(text)"
        self.message.setStyleSheet(f"color: {colour};")
        self.message.setText(text)

    # Actions -----------------------------------------------------------------------------
    def load_file(self, path: str, into_pair: bool = False) -> bool:
        """Put a text file's content into the text (or pair) box; False with a message on failure."""
        try:
            content = read_text_file(path, MAX_FILE_BYTES)
        except TextFileError as error:
            self.file_error.emit(str(error))
            return False
        self.show_message(f"Opened {Path(path).name}.")
        if into_pair:
            self.pair_check.setChecked(True)
            self.pair_edit.setPlainText(content)
        else:
            self.text_edit.setPlainText(content)
        return True

    def _on_sample_chosen(self, index: int) -> None:
        if index <= 0:
            return
        sample = self._samples[index - 1]
        self.set_texts(sample["text"], sample.get("pair"))
        self.sample_box.setCurrentIndex(0)
