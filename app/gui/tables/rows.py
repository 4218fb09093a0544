"""One table model for rows of plain data, and the view every such table sits in.

A subclass names its columns and says what a cell shows for a role (`cell`); reading,
headers and repainting are here once. Rows are replaced as a whole, but only the rows
that changed are repainted, with one `dataChanged` per run of adjacent rows: a poll of
200 kits is a few signals, not 200.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Generic, TypeVar

from PySide6.QtCore import (
    QAbstractItemModel,
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
)
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import QAbstractItemView, QTableView

__all__ = ["ALIGN_RIGHT", "AnyIndex", "RowTableModel", "row_view"]

Row = TypeVar("Row")
AnyIndex = QModelIndex | QPersistentModelIndex
ALIGN_RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)  # numbers line up
STALE_COLOUR = "#8a8f95"  # last-known rows of a kit that is away: greyed, as the fleet table's figures


class RowTableModel(QAbstractTableModel, Generic[Row]):
    """Rows of plain data (`Row`) under fixed column titles; `cell` says what each cell shows."""

    def __init__(self, columns: Sequence[str], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.columns = tuple(columns)
        self._rows: list[Row] = []
        self._stale = False

    # reading ------------------------------------------------------------------------------

    def rowCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.columns)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> object:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.columns[section]
        return None

    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if not index.isValid():
            return None
        if self._stale and role == Qt.ItemDataRole.ForegroundRole:
            return QColor(STALE_COLOUR)
        if self._stale and role == Qt.ItemDataRole.FontRole:
            font = QFont()
            font.setItalic(True)
            return font
        return self.cell(self._rows[index.row()], index.column(), role)

    def cell(self, row: Row, column: int, role: int) -> object:
        """What `row` shows in `column` for `role`; None for nothing."""
        raise NotImplementedError

    @property
    def stale(self) -> bool:
        """The rows are last-known (the kit did not answer): they are shown greyed."""
        return self._stale

    def set_stale(self, stale: bool) -> None:
        if stale != self._stale:
            self._stale = stale
            self.rows_changed(range(len(self._rows)))

    def row_at(self, position: int) -> Row:
        return self._rows[position]

    def rows(self) -> list[Row]:
        return list(self._rows)

    # changing (on the GUI thread) -----------------------------------------------------------

    def replace_rows(self, rows: Iterable[Row], key: Callable[[Row], Hashable]) -> None:
        """Repaint only the rows that changed while the same keys stay in order, else start over."""
        fresh = list(rows)
        if [key(r) for r in fresh] != [key(r) for r in self._rows]:
            self.beginResetModel()
            self._rows = fresh
            self.endResetModel()
            return
        old, self._rows = self._rows, fresh
        self.rows_changed(
            position
            for position, (before, after) in enumerate(zip(old, fresh, strict=True))
            if before != after
        )

    def rows_changed(self, positions: Iterable[int]) -> None:
        """Tell views these rows changed: one `dataChanged` per run of adjacent rows."""
        start = previous = None
        for position in [*sorted(set(positions)), None]:
            if position is not None and previous is not None and position == previous + 1:
                previous = position
                continue
            if start is not None and previous is not None:
                self.dataChanged.emit(self.index(start, 0), self.index(previous, len(self.columns) - 1))
            start = previous = position


def row_view(model: QAbstractItemModel) -> QTableView:
    """A read-only table that selects one whole row at a time, one line per row."""
    table = QTableView()
    table.setModel(model)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.setAlternatingRowColors(True)
    table.setWordWrap(False)
    table.verticalHeader().hide()
    # Rows as tall as the text needs: the style's default (about twice the font's height) shows
    # half as many rows on a laptop's 768 lines.
    rows = table.verticalHeader()
    rows.setMinimumSectionSize(table.fontMetrics().height() + 4)
    rows.setDefaultSectionSize(table.fontMetrics().height() + 8)
    table.horizontalHeader().setStretchLastSection(True)
    return table
