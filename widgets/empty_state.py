"""The empty state every view shares: a centred hint until there is something to show."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QStackedLayout, QWidget


def hint_label(text: str, name: str) -> QLabel:
    """A centred, wrapped, muted sentence saying what to do to fill the view."""
    label = QLabel(text)
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    label.setWordWrap(True)
    label.setObjectName(name)
    label.setStyleSheet("color: palette(dark); font-size: 12pt;")
    return label


def hint_stack(owner: QWidget, hint: QLabel, content: QWidget) -> QStackedLayout:
    """``owner``'s layout: the hint first; ``setCurrentWidget(content)`` once there is data."""
    stack = QStackedLayout(owner)
    stack.setContentsMargins(0, 0, 0, 0)
    stack.addWidget(hint)
    stack.addWidget(content)
    stack.setCurrentWidget(hint)
    return stack
