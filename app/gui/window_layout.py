"""The window's layout at laptop sizes: columns chosen per table, splitters and docks remembered.

A 1366x768 screen is the field laptop; every default here is chosen so the fleet table and a
kit's job queue show enough rows there. What the technician changes (columns shown, splitter
positions) is kept in the window's settings file and restored at the next start.
"""

from __future__ import annotations

from PySide6.QtCore import QByteArray, QObject, QSettings, Slot
from PySide6.QtWidgets import QSplitter, QTableView

from app.gui.tables.columns import ColumnChooser

__all__ = ["FLEET_HIDDEN", "JOBS_HIDDEN", "LAPTOP", "MODELS_HIDDEN", "WindowLayout"]

LAPTOP = (1366, 768)  # the size the window must work at, and its default where it fits
# Hidden until asked for (right-click a table's header): the Hardware tab shows them all.
FLEET_HIDDEN = ("Device ID", "Address", "Agent version", "CPU", "Cores", "Memory (GiB)", "Accelerators")
JOBS_HIDDEN = ("Priority", "Attempts")
MODELS_HIDDEN = ("SHA-256",)


class WindowLayout(QObject):
    """Column choosers for the tables and remembered splitter positions, in `settings`."""

    def __init__(
        self,
        settings: QSettings,
        tables: dict[str, tuple[QTableView, tuple[str, ...]]],
        splitters: dict[str, QSplitter],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._settings, self._splitters = settings, splitters
        self.columns = {
            name: ColumnChooser(table, settings, name, hidden, self)
            for name, (table, hidden) in tables.items()
        }
        for name, splitter in splitters.items():
            state = settings.value(f"splitters/{name}")
            if isinstance(state, QByteArray):
                splitter.restoreState(state)

    @Slot()
    def save(self) -> None:
        for name, splitter in self._splitters.items():
            self._settings.setValue(f"splitters/{name}", splitter.saveState())
        self._settings.sync()
