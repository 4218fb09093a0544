"""The Deploy dialog's kit list: tick the kits, then watch each one's upload and outcome."""

from __future__ import annotations

from collections.abc import Iterable

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QAbstractItemView, QProgressBar, QTableWidget, QTableWidgetItem

from app.fleet.deploy import DeployOutcome, Progress
from app.gui.tables.fleet_model import STATUS_COLOURS
from app.gui.tables.kit_row import COLUMNS, KitRow, cell_text

__all__ = ["DeployKitsTable"]

_KIT, _STATUS, _PROGRESS, _OUTCOME = range(4)
_FAILED, _DONE = QColor("#b3261e"), QColor(STATUS_COLOURS["online"])
_STAGES = {
    "uploading": "uploading %p%",
    "verifying": "verifying on the kit…",
    "retrying": "retrying…",
    "done": "done",
    "failed": "failed",
}


class DeployKitsTable(QTableWidget):
    def __init__(self, rows: Iterable[KitRow]) -> None:
        super().__init__(0, 4)
        self.setHorizontalHeaderLabels(["Kit", "Status", "Progress", "Outcome"])
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.verticalHeader().hide()
        self.horizontalHeader().setStretchLastSection(True)
        self._devices: list[str] = []
        for row in rows:
            self._add(row)
        self.resizeColumnsToContents()
        self.setColumnWidth(_PROGRESS, 200)

    def _add(self, row: KitRow) -> None:
        position = self.rowCount()
        self.insertRow(position)
        kit = QTableWidgetItem(row.name)
        kit.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsUserCheckable)
        online = row.row_status == "online"
        kit.setCheckState(Qt.CheckState.Checked if online else Qt.CheckState.Unchecked)
        status = QTableWidgetItem(cell_text(row, COLUMNS.index("Status")))
        status.setForeground(QColor(STATUS_COLOURS[row.row_status]))
        self.setItem(position, _KIT, kit)
        self.setItem(position, _STATUS, status)
        self.setItem(position, _OUTCOME, QTableWidgetItem(""))
        bar = QProgressBar()
        bar.setFormat("")
        self.setCellWidget(position, _PROGRESS, bar)
        self._devices.append(row.device_id)

    # ticking ---------------------------------------------------------------------------

    def checked(self) -> list[str]:
        return [d for i, d in enumerate(self._devices) if self._kit(i).checkState() == Qt.CheckState.Checked]

    def set_checked(self, device_id: str, checked: bool) -> None:
        state = Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked
        self._kit(self._devices.index(device_id)).setCheckState(state)

    def set_locked(self, locked: bool) -> None:
        """No ticking while a deploy runs: the list then says what is being sent where."""
        flags = Qt.ItemFlag.ItemIsEnabled | (Qt.ItemFlag(0) if locked else Qt.ItemFlag.ItemIsUserCheckable)
        for position in range(self.rowCount()):
            self._kit(position).setFlags(flags)

    # following a deploy -------------------------------------------------------------------

    def start(self, device_ids: Iterable[str]) -> None:
        chosen = set(device_ids)
        for position, device_id in enumerate(self._devices):
            bar = self.bar(device_id)
            bar.setRange(0, 100)
            bar.setValue(0)
            bar.setFormat("waiting…" if device_id in chosen else "")
            self._set_outcome(position, "", None)

    def apply(self, progress: Progress) -> None:
        position = self._position_of(progress.kit)
        if position is None:
            return
        bar = self.bar(self._devices[position])
        if progress.stage in ("uploading", "verifying", "done") and progress.total > 0:
            bar.setValue(round(100 * min(progress.sent, progress.total) / progress.total))
        bar.setFormat(_STAGES.get(progress.stage, progress.stage))
        if progress.message:
            self._set_outcome(position, progress.message, _FAILED if progress.stage == "failed" else None)

    def finish(self, outcomes: Iterable[DeployOutcome]) -> None:
        for outcome in outcomes:
            if outcome.kit.device_id not in self._devices:
                continue
            position = self._devices.index(outcome.kit.device_id)
            self.bar(outcome.kit.device_id).setFormat("done" if outcome.ok else "failed")
            self._set_outcome(position, outcome.message, _DONE if outcome.ok else _FAILED)
        self.resizeRowsToContents()

    def bar(self, device_id: str) -> QProgressBar:
        widget = self.cellWidget(self._devices.index(device_id), _PROGRESS)
        assert isinstance(widget, QProgressBar)
        return widget

    def outcome(self, device_id: str) -> str:
        return self._item(self._devices.index(device_id), _OUTCOME).text()

    def _kit(self, position: int) -> QTableWidgetItem:
        return self._item(position, _KIT)

    def _item(self, position: int, column: int) -> QTableWidgetItem:
        item = self.item(position, column)
        assert item is not None, "every cell but the progress bar holds an item"
        return item

    def _position_of(self, name: str) -> int | None:
        # Progress names the kit, not its device ID; names are unique in a tidy fleet.
        return next((i for i in range(self.rowCount()) if self._kit(i).text() == name), None)

    def _set_outcome(self, position: int, text: str, colour: QColor | None) -> None:
        item = self._item(position, _OUTCOME)
        item.setText(text)
        item.setToolTip(text)
        item.setForeground(colour if colour is not None else self.palette().text().color())
