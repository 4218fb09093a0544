"""A kit's models as a table: one row per installed version, serving and previous marked."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from PySide6.QtCore import QObject, Qt, Slot
from PySide6.QtGui import QColor, QFont

from agent.wire import ModelInfo
from app.gui._qt import dot_icon
from app.gui.tables.rows import ALIGN_RIGHT, RowTableModel

__all__ = ["MODEL_COLUMNS", "ModelsTableModel", "VersionRow", "size_text", "version_rows"]

MODEL_COLUMNS = ("Model", "Version", "Task", "Precision", "Size", "SHA-256", "Installed", "State")
_SERVING = "#1e7b34"
_RIGHT = {MODEL_COLUMNS.index("Size")}


@dataclass(frozen=True)
class VersionRow:
    name: str
    task: str
    version: str
    precision: str
    size_bytes: int
    sha256: str
    installed_at: float
    active: bool
    previous: bool

    @property
    def key(self) -> tuple[str, str]:
        return self.name, self.version

    def cells(self) -> tuple[str, ...]:
        installed = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.installed_at))
        state = "serving" if self.active else "previous (roll-back target)" if self.previous else ""
        return (
            self.name,
            self.version,
            self.task,
            self.precision,
            size_text(self.size_bytes),
            f"{self.sha256[:12]}…",
            installed,
            state,
        )


def version_rows(infos: Iterable[ModelInfo]) -> list[VersionRow]:
    """Models by name; within one, the newest install first."""
    return [
        VersionRow(
            info.name,
            info.task,
            v.version,
            v.precision,
            v.size_bytes,
            v.sha256,
            v.installed_at,
            v.version == info.active_version,
            v.version == info.previous_version,
        )
        for info in sorted(infos, key=lambda i: i.name)
        for v in sorted(info.versions, key=lambda v: -v.installed_at)
    ]


def size_text(size: int) -> str:
    for unit, scale in (("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


class ModelsTableModel(RowTableModel[VersionRow]):
    NameRole = Qt.ItemDataRole.UserRole + 1
    VersionRole = Qt.ItemDataRole.UserRole + 2
    ActiveRole = Qt.ItemDataRole.UserRole + 3

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(MODEL_COLUMNS, parent)

    def cell(self, row: VersionRow, column: int, role: int) -> object:
        if role == Qt.ItemDataRole.DisplayRole:
            return row.cells()[column]
        if role == Qt.ItemDataRole.ToolTipRole and MODEL_COLUMNS[column] == "SHA-256":
            return row.sha256
        if role == Qt.ItemDataRole.TextAlignmentRole and column in _RIGHT:
            return ALIGN_RIGHT
        if row.active and (styled := self._serving(column, role)) is not None:
            return styled
        return {self.NameRole: row.name, self.VersionRole: row.version, self.ActiveRole: row.active}.get(role)

    def _serving(self, column: int, role: int) -> object:
        """The serving version stands out: bold, with a green dot in its State cell."""
        if role == Qt.ItemDataRole.FontRole:
            font = QFont()
            font.setBold(True)
            return font
        if role == Qt.ItemDataRole.DecorationRole and MODEL_COLUMNS[column] == "State":
            return dot_icon(_SERVING)
        if role == Qt.ItemDataRole.ForegroundRole and MODEL_COLUMNS[column] == "State":
            return QColor(_SERVING)
        return None

    @Slot(object)
    def set_models(self, infos: Iterable[ModelInfo]) -> None:
        """Repaint only the rows that changed when the same versions remain, else start over."""
        self.replace_rows(version_rows(infos), key=lambda row: row.key)
