"""The help page (F1): the README's definitions of every number, searchable, and the shortcuts.

The page is the README's own Markdown, rendered as it is (``QTextBrowser.setMarkdown``)
from its sections :data:`HELP_SECTIONS`, so the help can never say something the README
does not; only images are left out. The shortcuts are listed from the window's actions
(what the keys really do), with the rule for the layer/head keys. The README is found
next to the ``app`` package: in the source tree that is the project's folder, in the
bundle it is the bundle's folder (``build.spec`` puts ``README.md`` there).

The window is non-modal: it stays open beside the main window while the person works.
Its find box highlights every match; Enter goes to the next one, Shift+Enter to the
previous one, and the search wraps around.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import (
    QColor,
    QKeySequence,
    QShortcut,
    QTextCharFormat,
    QTextCursor,
    QTextDocument,
)
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QTextBrowser,
    QTextEdit,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

__all__ = [
    "HELP_SECTIONS",
    "HelpBrowser",
    "help_markdown",
    "readme_path",
    "readme_sections",
    "shortcuts_markdown",
]

#: README sections shown, in this order: the definitions of every number (views, graph
#: metrics, contributions, attribution), then what each part of the window shows.
HELP_SECTIONS = ("What the numbers mean", "What it does")
README_NAME = "README.md"
MATCH_COLOR = QColor(255, 221, 87)  # every match of the find box
CURRENT_COLOR = QColor(255, 150, 50)  # the match the find box is on
_IMAGE_LINE = re.compile(r"^\s*!\[[^\]]*\]\([^)]*\)\s*$")


def readme_path() -> Path | None:
    """Where README.md is: in the bundle's folder (``sys._MEIPASS``) or the project folder
    above the ``app`` package; None when neither has it."""
    candidates = []
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        candidates.append(Path(bundle) / README_NAME)
    candidates.append(Path(__file__).resolve().parents[1] / README_NAME)
    return next((path for path in candidates if path.is_file()), None)


def readme_sections(markdown: str, titles: Sequence[str]) -> str:
    """The ``## title`` sections of ``markdown`` named in ``titles``, in that order, each
    from its heading to the next heading of level 1 or 2; lines that are only an image are
    left out, and so is a paragraph that begins "Keyboard:" (the help lists the shortcuts
    from the window itself). ``ValueError`` names a title the text does not have.

    Examples
    --------
    >>> text = "# A\\nintro\\n## One\\nfirst\\n![x](y.png)\\n## Two\\nsecond\\n"
    >>> readme_sections(text, ["Two", "One"])
    '## Two\\nsecond\\n\\n## One\\nfirst\\n'
    """
    lines = markdown.splitlines()
    starts = {}
    for number, line in enumerate(lines):
        match = re.match(r"^##\s+(.*?)\s*$", line)
        if match and not line.startswith("###"):
            starts.setdefault(match.group(1), number)
    parts = []
    for title in titles:
        if title not in starts:
            raise ValueError(f"the README has no section '## {title}'")
        start = starts[title]
        end = next((k for k in range(start + 1, len(lines)) if re.match(r"^#{1,2}\s", lines[k])), len(lines))
        body = [line for line in lines[start:end] if not _IMAGE_LINE.match(line)]
        parts.append("\n".join(_without_paragraph(body, "Keyboard:")).strip("\n") + "\n")
    return "\n".join(parts)


def _without_paragraph(lines: list[str], opening: str) -> list[str]:
    out, skipping = [], False
    for line in lines:
        if line.startswith(opening):
            skipping = True
        elif skipping and not line.strip():
            skipping = False
        if not skipping:
            out.append(line)
    return out


def shortcuts_markdown(shortcuts: Iterable[tuple[str, str]], rule: str = "") -> str:
    """A Markdown section listing ``(what, keys)`` pairs as a table, then ``rule``.

    Examples
    --------
    >>> print(shortcuts_markdown([("Analyse", "Ctrl+Return")]))
    ## Keyboard
    <BLANKLINE>
    | keys | what |
    |---|---|
    | Ctrl+Return | Analyse |
    <BLANKLINE>
    """
    rows = [f"| {keys.replace('|', '/')} | {what.replace('|', '/')} |" for what, keys in shortcuts]
    text = "## Keyboard\n\n| keys | what |\n|---|---|\n" + "\n".join(rows) + "\n"
    return text + (f"\n{rule}\n" if rule else "")


def help_markdown(shortcuts: Iterable[tuple[str, str]] = (), rule: str = "", readme: Path | None = None) -> str:
    """The help page: the README's :data:`HELP_SECTIONS` with the shortcuts between them
    (after the numbers, before the tour of the window). Without a README a sentence says
    where it was looked for."""
    path = readme if readme is not None else readme_path()
    keys = shortcuts_markdown(shortcuts, rule)
    if path is None or not path.is_file():
        where = Path(__file__).resolve().parents[1] / README_NAME
        return (f"# Attention Atlas help\n\nThe definitions come from {README_NAME}, which was not found "
                f"(looked for {where}). It is also on the project's page.\n\n{keys}")
    text = path.read_text(encoding="utf-8")
    first, *rest = HELP_SECTIONS
    return "\n".join([readme_sections(text, [first]), keys, readme_sections(text, rest)])


class HelpBrowser(QWidget):
    """A non-modal help window: a find box over the README's definitions.

    ``find(text)`` highlights every match and moves to the next one (wrapping);
    ``find(text, backward=True)`` to the previous one. Enter in the find box is "next",
    Shift+Enter "previous"; Ctrl+F goes back to the find box."""

    def __init__(self, markdown: str, parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.setWindowTitle("Attention Atlas — what the numbers mean")
        self.setObjectName("helpBrowser")
        self.browser = QTextBrowser()
        self.browser.setOpenExternalLinks(False)
        self.browser.setOpenLinks(False)  # nothing leaves the window: no network, no other page
        self.browser.setMarkdown(markdown)
        self.find_edit = QLineEdit()
        self.find_edit.setPlaceholderText("Find… (Enter: next, Shift+Enter: previous)")
        self.find_edit.setClearButtonEnabled(True)
        self.previous_button = QToolButton()
        self.previous_button.setText("▲")
        self.previous_button.setToolTip("Previous match (Shift+Enter)")
        self.next_button = QToolButton()
        self.next_button.setText("▼")
        self.next_button.setToolTip("Next match (Enter)")
        self.count_label = QLabel()
        self.count_label.setMinimumWidth(90)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Find"))
        bar.addWidget(self.find_edit, 1)
        bar.addWidget(self.previous_button)
        bar.addWidget(self.next_button)
        bar.addWidget(self.count_label)
        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(self.browser, 1)
        self._matches: list[QTextCursor] = []
        self._current = -1
        self._searched: str | None = None
        self.find_edit.textChanged.connect(self._on_text_changed)
        self.find_edit.returnPressed.connect(lambda: self.find(self.find_edit.text()))
        self.find_edit.installEventFilter(self)
        self.next_button.clicked.connect(lambda: self.find(self.find_edit.text()))
        self.previous_button.clicked.connect(lambda: self.find(self.find_edit.text(), backward=True))
        QShortcut(QKeySequence(QKeySequence.StandardKey.Find), self,
                  activated=lambda: (self.find_edit.setFocus(), self.find_edit.selectAll()))
        self.resize(780, 820)

    # Search -----------------------------------------------------------------------------------
    def find(self, text: str, *, backward: bool = False) -> bool:
        """Highlight every match of ``text`` (case-insensitive) and go to the next one after
        the current match (the previous one with ``backward``), wrapping around. Returns
        whether there is a match."""
        if text != self._searched:
            self._highlight(text)
        if not self._matches:
            return False
        step = -1 if backward else 1
        self._current = (self._current + step) % len(self._matches) if self._current >= 0 else (
            len(self._matches) - 1 if backward else 0)
        self._show_current()
        return True

    def match_count(self) -> int:
        return len(self._matches)

    def current_match(self) -> int:
        """The index of the match the find box is on (-1: none)."""
        return self._current

    def highlighted(self) -> list[tuple[int, int]]:
        """``(start, end)`` character positions of every highlighted match."""
        return [(c.selectionStart(), c.selectionEnd()) for c in self._matches]

    def selected_text(self) -> str:
        return self.browser.textCursor().selectedText()

    def plain_text(self) -> str:
        return self.browser.toPlainText()

    # Internals -------------------------------------------------------------------------------
    def _on_text_changed(self, text: str) -> None:
        self._highlight(text)
        if self._matches:  # as you type: the first match from the top
            self._current = 0
            self._show_current()

    def _highlight(self, text: str) -> None:
        self._searched = text
        self._matches, self._current = [], -1
        document = self.browser.document()
        if text:
            cursor = QTextCursor(document)
            while True:
                cursor = document.find(text, cursor, QTextDocument.FindFlag(0))
                if cursor.isNull():
                    break
                self._matches.append(QTextCursor(cursor))
        self._paint()
        if not text:
            self.count_label.setText("")
        elif not self._matches:
            self.count_label.setText("no match")

    def _paint(self) -> None:
        selections = []
        for number, cursor in enumerate(self._matches):
            selection = QTextEdit.ExtraSelection()
            selection.cursor = cursor
            fmt = QTextCharFormat()
            fmt.setBackground(CURRENT_COLOR if number == self._current else MATCH_COLOR)
            selection.format = fmt
            selections.append(selection)
        self.browser.setExtraSelections(selections)

    def _show_current(self) -> None:
        cursor = self._matches[self._current]
        self.browser.setTextCursor(cursor)
        self.browser.ensureCursorVisible()
        self._paint()
        self.count_label.setText(f"{self._current + 1} of {len(self._matches)}")

    def eventFilter(self, watched, event):  # noqa: N802 (Qt API)
        if (watched is self.find_edit and event.type() == QEvent.Type.KeyPress
                and event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
                and event.modifiers() & Qt.KeyboardModifier.ShiftModifier):
            self.find(self.find_edit.text(), backward=True)
            return True
        return super().eventFilter(watched, event)
