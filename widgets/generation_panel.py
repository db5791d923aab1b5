"""Generation: a prompt, the settings, the answer as it streams, and a step through it.

The person types a prompt and presses Generate; tokens appear as they are generated (Esc
or Stop ends it and keeps them). Then every generated token is a step: picking step ``k``
(the list, the slider, or Alt+←/→) shows the model's top candidates at that step with their
probabilities (the chosen one marked, with its rank) and the logit lens: the most likely
next token read off each layer's residual stream. The window shows the attention row of
the position that predicted token ``k``.

Emits ``generate_requested`` (read :meth:`settings`), ``stop_requested`` and
``step_selected(k)``; shows what it is given, nothing else.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QPlainTextEdit,
    QPushButton,
    QSlider,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from analysis.io.numbers import format_number
from analysis.tokens import display_label

NOT_AVAILABLE = ("This model cannot generate (it has no language-model head). Pick a decoder, such as "
                 "SmolLM2-135M-Instruct (embedded), in the model list.")


class GenerationPanel(QWidget):
    """See the module docstring."""

    generate_requested = Signal()
    stop_requested = Signal()
    step_selected = Signal(int)
    case_chosen = Signal(dict)  # a case study: its "model", "prompt", "chat", "max_new_tokens", "note"

    def __init__(self, cases: list[dict] | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._steps = ()
        self._cases = list(cases or [])
        self.case_box = QComboBox()
        self.case_box.addItem("Case studies…")
        for case in self._cases:
            self.case_box.addItem(case["name"])
            self.case_box.setItemData(self.case_box.count() - 1, case.get("note", ""), Qt.ToolTipRole)
        self.case_box.setToolTip("Load a case study: a prompt and the settings to explore it with")
        self.case_box.activated.connect(self._on_case)
        self.prompt_edit = QPlainTextEdit()
        self.prompt_edit.setPlaceholderText("A prompt for the model to answer, e.g. What is the capital of France?")
        self.prompt_edit.setToolTip("What the model answers (Ctrl+G generates)")
        self.chat_check = QCheckBox("Chat template")
        self.chat_check.setToolTip("Wrap the prompt in the model's chat template (instruct models); "
                                   "off: the model continues the text")
        self.chat_check.setChecked(True)
        self.sample_check = QCheckBox("Sample")
        self.sample_check.setToolTip("Draw each token from the distribution instead of taking the most likely one")
        self.temperature_spin = QDoubleSpinBox()
        self.temperature_spin.setRange(0.05, 5.0)
        self.temperature_spin.setSingleStep(0.1)
        self.temperature_spin.setValue(1.0)
        self.temperature_spin.setPrefix("T ")
        self.temperature_spin.setToolTip("Temperature: divides the logits (below 1: surer, above 1: more varied)")
        self.top_k_spin = QSpinBox()
        self.top_k_spin.setRange(0, 1000)
        self.top_k_spin.setPrefix("top-k ")
        self.top_k_spin.setToolTip("Sample only among the k most likely tokens (0: all)")
        self.top_p_spin = QDoubleSpinBox()
        self.top_p_spin.setRange(0.01, 1.0)
        self.top_p_spin.setSingleStep(0.05)
        self.top_p_spin.setValue(1.0)
        self.top_p_spin.setPrefix("top-p ")
        self.top_p_spin.setToolTip("Sample only among the most likely tokens whose probabilities add up to p")
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(-1, 2**31 - 1)
        self.seed_spin.setValue(-1)
        self.seed_spin.setSpecialValueText("seed: random")
        self.seed_spin.setPrefix("seed ")
        self.seed_spin.setToolTip("The same seed gives the same sampled text (random: a new one each time, recorded)")
        self.max_tokens_spin = QSpinBox()
        self.max_tokens_spin.setRange(1, 1024)
        self.max_tokens_spin.setValue(32)
        self.max_tokens_spin.setPrefix("max ")
        self.max_tokens_spin.setSuffix(" tokens")
        self.max_tokens_spin.setToolTip("Generate at most this many tokens")
        self.stop_check = QCheckBox("Stop at end of turn")
        self.stop_check.setChecked(True)
        self.stop_check.setToolTip("Stop when the model ends its answer")
        self.generate_button = QPushButton("Generate")
        self.generate_button.setToolTip("Generate an answer to the prompt (Ctrl+G)")
        self.generate_button.clicked.connect(self.generate_requested)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop generating and keep the tokens so far (Esc)")
        self.stop_button.setEnabled(False)
        self.stop_button.clicked.connect(self.stop_requested)
        self.answer = QLabel()
        self.answer.setWordWrap(True)
        self.answer.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.answer.setObjectName("generationAnswer")
        self.step_list = QListWidget()
        self.step_list.setToolTip("The generated tokens: pick one to see what the model weighed at that step")
        self.step_list.currentRowChanged.connect(self._on_row)
        self.step_slider = QSlider(Qt.Horizontal)
        self.step_slider.setToolTip("Step through the generated tokens (Alt+Left / Alt+Right)")
        self.step_slider.valueChanged.connect(self._on_slider)
        self.candidates = _table(("token", "probability"))
        self.candidates.setToolTip("The most likely tokens at this step; the chosen one is bold")
        self.lens = _table(("layer", "predicts"))
        self.lens.setToolTip("Logit lens: the most likely next token read off each layer's residual stream "
                             "through the final norm and the unembedding (the last layer is the model's prediction)")
        self.step_info = QLabel()
        self.step_info.setWordWrap(True)
        self._build_layout()
        for keys, delta in (("Alt+Right", 1), ("Alt+Left", -1)):
            shortcut = QShortcut(QKeySequence(keys), self)
            shortcut.setContext(Qt.WidgetWithChildrenShortcut)
            shortcut.activated.connect(lambda d=delta: self.step_by(d))
        self.set_steps(())

    def _build_layout(self) -> None:
        grid = QGridLayout()
        grid.addWidget(self.chat_check, 0, 0)
        grid.addWidget(self.stop_check, 0, 1)
        grid.addWidget(self.max_tokens_spin, 0, 2)
        grid.addWidget(self.sample_check, 1, 0)
        grid.addWidget(self.temperature_spin, 1, 1)
        grid.addWidget(self.seed_spin, 1, 2)
        grid.addWidget(self.top_k_spin, 2, 1)
        grid.addWidget(self.top_p_spin, 2, 2)
        buttons = QHBoxLayout()
        buttons.addWidget(self.generate_button, 1)
        buttons.addWidget(self.stop_button)
        for widget in (self.step_list, self.candidates, self.lens):
            widget.setMinimumHeight(150)  # readable rows; the dock scrolls rather than squash them
        tables = QHBoxLayout()
        tables.addWidget(self.step_list, 2)
        tables.addWidget(self.candidates, 3)
        tables.addWidget(self.lens, 3)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.case_box)
        layout.addWidget(self.prompt_edit, 2)
        layout.addLayout(grid)
        layout.addLayout(buttons)
        layout.addWidget(self.answer)
        layout.addWidget(self.step_slider)
        layout.addWidget(self.step_info)
        layout.addLayout(tables, 4)
        for spin in (self.temperature_spin, self.top_k_spin, self.top_p_spin, self.seed_spin):
            self.sample_check.toggled.connect(spin.setEnabled)
            spin.setEnabled(False)

    def _on_case(self, index: int) -> None:
        if index <= 0:
            return
        case = self._cases[index - 1]
        self.prompt_edit.setPlainText(case["prompt"])
        self.chat_check.setChecked(bool(case.get("chat", True)))
        self.max_tokens_spin.setValue(int(case.get("max_new_tokens", 32)))
        self.sample_check.setChecked(False)
        self.answer.setText(case.get("note", ""))
        self.case_box.setCurrentIndex(0)
        self.case_chosen.emit(dict(case))

    # What the person asked for --------------------------------------------------------------------
    def prompt(self) -> str:
        return self.prompt_edit.toPlainText()

    def settings(self) -> dict:
        """Keyword arguments of ``analysis.generation.generate_steps`` (without the prompt)."""
        sample = self.sample_check.isChecked()
        return {
            "chat": self.chat_check.isChecked() and self.chat_check.isEnabled(),
            "max_new_tokens": self.max_tokens_spin.value(),
            "sample": sample,
            "temperature": self.temperature_spin.value() if sample else 1.0,
            "top_k": self.top_k_spin.value() if sample else 0,
            "top_p": self.top_p_spin.value() if sample else 1.0,
            "seed": None if not sample or self.seed_spin.value() < 0 else self.seed_spin.value(),
            "stop_at_end_of_turn": self.stop_check.isChecked(),
        }

    # What to show -------------------------------------------------------------------------------------
    def set_model(self, can_generate: bool, has_chat_template: bool) -> None:
        """Fit the controls to the loaded model."""
        self.generate_button.setEnabled(can_generate)
        self.chat_check.setEnabled(has_chat_template)
        self.chat_check.setToolTip("Wrap the prompt in the model's chat template" if has_chat_template
                                   else "This model has no chat template: the prompt is continued as text")
        if not can_generate:
            self.answer.setText(NOT_AVAILABLE)

    def set_busy(self, busy: bool) -> None:
        self.stop_button.setEnabled(busy)
        self.generate_button.setEnabled(not busy)

    def start_stream(self) -> None:
        self.set_steps(())
        self.answer.setText("Generating…")
        self._streamed = ""

    def add_token(self, step) -> None:
        """A token just generated (a ``GenerationStep``): the answer grows."""
        self._streamed = getattr(self, "_streamed", "") + step.text
        self.answer.setText(self._streamed or "…")

    def set_steps(self, steps, text: str | None = None, stop_reason: str | None = None) -> None:
        """The steps of a finished generation (``Generation.steps``); shows the last one."""
        self._steps = tuple(steps)
        blocked = [w.blockSignals(True) for w in (self.step_list, self.step_slider)]
        self.step_list.clear()
        for step in self._steps:
            self.step_list.addItem(f"{step.index}: {display_label(step.token)}   {format_number(step.prob, 3)}")
        self.step_slider.setRange(0, max(0, len(self._steps) - 1))
        self.step_slider.setEnabled(bool(self._steps))
        for widget, old in zip((self.step_list, self.step_slider), blocked, strict=True):
            widget.blockSignals(old)
        if text is not None:
            ended = {"end_of_turn": "the model ended its turn", "length": "the token limit was reached",
                     "cancelled": "stopped: the tokens so far are kept", "context": "the model's context is full"}
            self.answer.setText(f"{text}\n({len(self._steps)} tokens; {ended.get(stop_reason, stop_reason)})")
        if not self._steps:
            self.candidates.setRowCount(0)
            self.lens.setRowCount(0)
            self.step_info.setText("")

    def show_step(self, index: int | None) -> None:
        """Show step ``index``: its candidates and its logit lens (emits nothing)."""
        if index is None or not 0 <= index < len(self._steps):
            return
        step = self._steps[index]
        blocked = [w.blockSignals(True) for w in (self.step_list, self.step_slider)]
        self.step_list.setCurrentRow(index)
        self.step_slider.setValue(index)
        for widget, old in zip((self.step_list, self.step_slider), blocked, strict=True):
            widget.blockSignals(old)
        self.step_info.setText(f"Step {index}: “{display_label(step.token)}” with probability "
                               f"{format_number(step.prob, 3)}, rank {step.rank + 1} of the candidates.")
        self.candidates.setRowCount(len(step.top))
        for row, (token, prob) in enumerate(step.top):
            cells = (QTableWidgetItem(display_label(token)), QTableWidgetItem(format_number(prob, 4)))
            for column, cell in enumerate(cells):
                if token == step.token:
                    font = cell.font()
                    font.setBold(True)
                    cell.setFont(font)
                self.candidates.setItem(row, column, cell)
        self.lens.setRowCount(len(step.lens))
        for layer, token in enumerate(step.lens):
            self.lens.setItem(layer, 0, QTableWidgetItem(str(layer)))
            self.lens.setItem(layer, 1, QTableWidgetItem(display_label(token)))

    def current_step(self) -> int | None:
        row = self.step_list.currentRow()
        return row if row >= 0 else None

    def step_by(self, delta: int) -> None:
        if self._steps:
            current = self.current_step()
            target = min(len(self._steps) - 1, max(0, (current if current is not None else -1) + delta))
            self.step_selected.emit(target)

    def _on_row(self, row: int) -> None:
        if row >= 0:
            self.step_selected.emit(row)

    def _on_slider(self, value: int) -> None:
        if self._steps:
            self.step_selected.emit(value)


def _table(headers: tuple[str, ...]) -> QTableWidget:
    table = QTableWidget(0, len(headers))
    table.setHorizontalHeaderLabels(list(headers))
    table.verticalHeader().setVisible(False)
    table.setEditTriggers(QAbstractItemView.NoEditTriggers)
    table.setSelectionMode(QAbstractItemView.NoSelection)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.Stretch)
    return table
