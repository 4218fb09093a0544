"""Small Qt constructors with signals wired, typed (the stubs lack signal keywords)."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from PySide6.QtCore import QObject, Qt, QTimer
from PySide6.QtGui import QAction, QColor, QIcon, QKeySequence, QPainter, QPixmap


def timer(parent: QObject, interval_ms: int, slot: Callable[[], object], single_shot: bool = False) -> QTimer:
    made = QTimer(parent)
    made.setInterval(interval_ms)
    made.setSingleShot(single_shot)
    made.timeout.connect(slot)
    return made


def action(
    text: str, parent: QObject, shortcut: QKeySequence | QKeySequence.StandardKey, slot: Callable[[], object]
) -> QAction:
    made = QAction(text, parent)
    made.setShortcut(shortcut)
    made.triggered.connect(slot)
    return made


@cache
def dot_icon(colour: str, size: int = 12) -> QIcon:
    """A filled circle: status reads at a glance without relying on text colour alone."""
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor(colour))
    painter.drawEllipse(1, 1, size - 2, size - 2)
    painter.end()
    return QIcon(pixmap)
