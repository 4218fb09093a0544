"""Which columns a table shows: the least useful hidden at first, a right-click on the header
shows or hides any of them, and the choice is remembered between runs (by column title, so a
column added in a later version does not shift what was hidden)."""

from __future__ import annotations

from collections.abc import Iterable

from PySide6.QtCore import QObject, QPoint, QSettings, Qt, Slot
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu, QTableView

__all__ = ["ColumnChooser"]


class ColumnChooser(QObject):
    """Show and hide `table`'s columns from its header's context menu; kept in `settings` under `key`."""

    def __init__(
        self,
        table: QTableView,
        settings: QSettings,
        key: str,
        hidden: Iterable[str],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent or table)
        self._table, self._settings, self._key = table, settings, f"columns/{key}/hidden"
        self._default_hidden = frozenset(hidden)
        header = table.horizontalHeader()
        header.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        header.customContextMenuRequested.connect(self._show_menu)
        table.model().modelReset.connect(self._apply)  # a reset shows every column again
        self._apply()

    def titles(self) -> list[str]:
        model = self._table.model()
        return [str(model.headerData(c, Qt.Orientation.Horizontal)) for c in range(model.columnCount())]

    def hidden(self) -> set[str]:
        """The titles hidden now: the remembered choice, else the defaults."""
        stored = self._settings.value(self._key)
        if stored is None:
            return set(self._default_hidden)
        return {str(t) for t in ([stored] if isinstance(stored, str) else stored) if t}

    def visible(self) -> list[str]:
        return [t for c, t in enumerate(self.titles()) if not self._table.isColumnHidden(c)]

    def set_visible(self, title: str, shown: bool) -> None:
        """Show or hide one column and remember it; the last visible column always stays."""
        hidden = self.hidden() - {title} if shown else self.hidden() | {title}
        if set(self.titles()) <= hidden:
            return
        # Stored as a list with a blank entry: QSettings reads an empty or one-item list back as
        # nothing or a bare string.
        self._settings.setValue(self._key, ["", *sorted(hidden)])
        self._apply()

    def menu(self) -> QMenu:
        """One checkable entry per column (the header's context menu)."""
        menu = QMenu(self._table)
        hidden = self.hidden()
        for title in self.titles():
            entry = QAction(title, menu, checkable=True, checked=title not in hidden)
            entry.toggled.connect(lambda shown, t=title: self.set_visible(t, shown))
            menu.addAction(entry)
        return menu

    @Slot(QPoint)
    def _show_menu(self, at: QPoint) -> None:
        menu = self.menu()
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        menu.popup(self._table.horizontalHeader().mapToGlobal(at))

    @Slot()
    def _apply(self) -> None:
        hidden = self.hidden()
        for column, title in enumerate(self.titles()):
            self._table.setColumnHidden(column, title in hidden)
