"""PySide6 6.12.0 on CPython 3.11 drops a reference to None on every void method call
(QPainter.setPen, drawLine, ...), and the interpreter aborts after a few dozen repaints.
pyproject pins PySide6-Essentials < 6.12; this test fails if a leaking release comes back."""

import sys

from PySide6.QtGui import QImage, QPainter, QPen


def test_void_qt_calls_do_not_leak_references_to_none(qapp):
    image = QImage(8, 8, QImage.Format_ARGB32)
    painter = QPainter(image)
    before = sys.getrefcount(None)
    for _ in range(2000):
        painter.setPen(QPen())
    lost = before - sys.getrefcount(None)
    painter.end()
    assert lost < 500, f"{lost} references to None lost in 2000 QPainter.setPen calls"
