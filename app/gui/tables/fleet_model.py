"""The fleet table: announced and adopted kits merged into one row per device ID."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial

from PySide6.QtCore import QByteArray, QModelIndex, QObject, Qt, Slot
from PySide6.QtGui import QColor, QFont

from app.fleet.inventory import Kit
from app.fleet.ops import KitView
from app.fleet.service import FactsResult, KitStatus
from app.gui._qt import dot_icon
from app.gui.tables.kit_row import COLUMNS, MEASURED, KitRow, Sighting, age_text, cell_sort, cell_text
from app.gui.tables.rows import ALIGN_RIGHT, RowTableModel

__all__ = ["STATUS_COLOURS", "FleetTableModel"]

STATUS_COLOURS = {
    "online": "#1e7b34",
    "offline": "#6c757d",
    "checking": "#6c757d",
    "unadopted": "#1f5fa8",
    "identity_changed": "#b3261e",
    "conflict": "#b3261e",
}
_STATUS = COLUMNS.index("Status")
_ALERTS = COLUMNS.index("Alerts")
_NUMERIC = {
    COLUMNS.index(c) for c in ("Cores", "Memory (GiB)", "CPU %", "Mem %", "Disk free", "Temp", "Battery")
}
_MEASURED = {COLUMNS.index(c) for c in MEASURED}
ALERT_COLOURS = {"critical": "#b3261e", "warning": "#a15c00"}
_STALE = QColor("#8a8f95")


class FleetTableModel(RowTableModel[KitRow]):
    DeviceIdRole = Qt.ItemDataRole.UserRole + 1
    StatusRole = Qt.ItemDataRole.UserRole + 2  # online | offline | unadopted | identity_changed…
    SortRole = Qt.ItemDataRole.UserRole + 3

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(COLUMNS, parent)
        self._positions: dict[str, int] = {}

    # reading ---------------------------------------------------------------------

    def cell(self, row: KitRow, column: int, role: int) -> object:
        if role == Qt.ItemDataRole.DisplayRole:
            return cell_text(row, column)
        if column == _STATUS and role == Qt.ItemDataRole.ForegroundRole:
            return QColor(STATUS_COLOURS[row.row_status])
        if column == _STATUS and role == Qt.ItemDataRole.DecorationRole:
            return dot_icon(STATUS_COLOURS[row.row_status])
        if column == _ALERTS and row.view and row.view.alerts:
            colour = ALERT_COLOURS[row.view.alerts[0].severity]
            if role == Qt.ItemDataRole.ForegroundRole:
                return QColor(colour)
            if role == Qt.ItemDataRole.DecorationRole:
                return dot_icon(colour)
        if column in _MEASURED and row.stale:  # last-known figures look it
            if role == Qt.ItemDataRole.ForegroundRole:
                return _STALE
            if role == Qt.ItemDataRole.FontRole:
                font = QFont()
                font.setItalic(True)
                return font
        if role == Qt.ItemDataRole.TextAlignmentRole and column in _NUMERIC:
            return ALIGN_RIGHT
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(row, column)
        return {
            self.DeviceIdRole: row.device_id,
            self.StatusRole: row.row_status,
            self.SortRole: cell_sort(row, column),
        }.get(role)

    def _tooltip(self, row: KitRow, column: int) -> str | None:
        if COLUMNS[column] == "Device ID":
            return row.device_id
        if column == _STATUS and row.kit is not None and row.kit.last_error:
            return row.kit.last_error
        if column == _ALERTS and row.view and row.view.alerts:
            return "\n".join(f"{a.severity}: {a.kind}: {a.message}" for a in row.view.alerts)
        if column in _MEASURED and row.stale and row.view and row.view.snapshot:
            return f"last known: the kit said this {age_text(row.view.snapshot.taken_at)}"
        return None

    def roleNames(self) -> dict[int, QByteArray]:
        names = super().roleNames()
        names.update({self.DeviceIdRole: QByteArray(b"deviceId"), self.StatusRole: QByteArray(b"status")})
        return names

    def row(self, device_id: str) -> KitRow | None:
        position = self._positions.get(device_id)
        return None if position is None else self._rows[position]

    # updates from the bridge (always on the GUI thread: queued connections) ------------

    @Slot(object)
    def add_sighting(self, sighting: Sighting) -> None:
        self._update(sighting.announcement.device_id, lambda r: r.with_sighting(sighting))

    @Slot(str)
    def remove_sighting(self, device_id: str) -> None:
        """A kit stopped announcing: forget it unless adopted (the inventory remembers those)."""
        row = self.row(device_id)
        if row is not None and row.kit is None:
            self._remove(device_id)
        elif row is not None:
            self._update(device_id, lambda r: r.without_sighting(), create=False)

    @Slot(object)
    def add_kits(self, kits: Iterable[Kit]) -> None:
        for kit in kits:
            self._update(kit.device_id, partial(KitRow.with_kit, kit=kit))

    @Slot(object)
    def apply_statuses(self, statuses: Iterable[KitStatus]) -> None:
        for status in statuses:
            self._update(status.kit.device_id, partial(KitRow.with_status, status=status))

    @Slot(object)
    def apply_views(self, views: Iterable[KitView]) -> None:
        """Figures, models, jobs, alerts and tags from a poll; rows that show no change stay put."""
        self.rows_changed([p for view in views if (p := self._change(view)) is not None])

    def _change(self, view: KitView) -> int | None:
        """Apply a view to its row without signalling; the row's position if what it shows changed."""
        position = self._positions.get(view.kit.device_id)
        if position is None:
            return None
        old = self._rows[position]
        self._rows[position] = new = old.with_view(view)
        return position if new.signature() != old.signature() else None

    @Slot(object)
    def apply_facts(self, result: FactsResult) -> None:
        self._update(
            result.kit.device_id, lambda r: r.with_facts(result.families, result.collected_at), create=False
        )

    def _update(self, device_id: str, change: Callable[[KitRow], KitRow], create: bool = True) -> None:
        position = self._positions.get(device_id)
        if position is None:
            if create:
                self._insert(change(KitRow(device_id)))
            return
        old = self._rows[position]
        self._rows[position] = new = change(old)
        if new.signature() != old.signature():
            self.rows_changed([position])

    def _insert(self, row: KitRow) -> None:
        position = len(self._rows)
        self.beginInsertRows(QModelIndex(), position, position)
        self._rows.append(row)
        self._positions[row.device_id] = position
        self.endInsertRows()

    def _remove(self, device_id: str) -> None:
        position = self._positions[device_id]
        self.beginRemoveRows(QModelIndex(), position, position)
        del self._rows[position]
        self._positions = {r.device_id: i for i, r in enumerate(self._rows)}
        self.endRemoveRows()
