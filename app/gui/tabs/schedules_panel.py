"""A kit's job schedules: what each queues and when it runs next, with Pause/Resume and Delete."""

from __future__ import annotations

import time
from collections.abc import Sequence

from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from agent.wire import ScheduleInfo

__all__ = ["SCHEDULE_COLUMNS", "SchedulesPanel"]

SCHEDULE_COLUMNS = ("Name", "Cron (kit's clock)", "Job", "Next run", "Last run", "State")


def _when(stamp: float | None) -> str:
    return "" if stamp is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(stamp))


def _cells(schedule: ScheduleInfo) -> tuple[str, ...]:
    job = schedule.job
    what = f"{job.kind} {job.params.get('model', '')}".strip()
    return (
        schedule.name,
        schedule.cron,
        what,
        _when(schedule.next_run_at) if schedule.enabled else "",
        _when(schedule.last_run_at),
        "active" if schedule.enabled else "paused",
    )


class SchedulesPanel(QWidget):
    pause_requested = Signal(str, bool)  # (schedule ID, enabled after the change)
    delete_requested = Signal(str)  # schedule ID

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._schedules: list[ScheduleInfo] = []
        self.table = QTableWidget(0, len(SCHEDULE_COLUMNS))
        self.table.setHorizontalHeaderLabels(list(SCHEDULE_COLUMNS))
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setStretchLastSection(True)
        self.pause_button = QPushButton("&Pause")
        self.delete_button = QPushButton("Delete schedule…")
        buttons = QHBoxLayout()
        buttons.addWidget(self.pause_button)
        buttons.addWidget(self.delete_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.pause_button.clicked.connect(self._toggle)
        self.delete_button.clicked.connect(self._delete)
        self._update_buttons()

    def schedules(self) -> list[ScheduleInfo]:
        return list(self._schedules)

    def show_schedules(self, schedules: Sequence[ScheduleInfo]) -> None:
        keep = self.selected()
        self._schedules = list(schedules)
        self.table.setRowCount(len(schedules))
        for row, schedule in enumerate(schedules):
            for column, text in enumerate(_cells(schedule)):
                self.table.setItem(row, column, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()
        if keep is not None:
            self.select(keep.schedule_id)
        self._update_buttons()

    def selected(self) -> ScheduleInfo | None:
        rows = self.table.selectionModel().selectedRows()
        return self._schedules[rows[0].row()] if rows else None

    def select(self, schedule_id: str) -> None:
        for row, schedule in enumerate(self._schedules):
            if schedule.schedule_id == schedule_id:
                self.table.selectRow(row)

    @Slot()
    def _toggle(self) -> None:
        schedule = self.selected()
        if schedule is not None:
            self.pause_requested.emit(schedule.schedule_id, not schedule.enabled)

    @Slot()
    def _delete(self) -> None:
        schedule = self.selected()
        if schedule is not None:
            self.delete_requested.emit(schedule.schedule_id)

    @Slot()
    def _update_buttons(self) -> None:
        schedule = self.selected() if self.isEnabled() else None
        self.pause_button.setText("&Resume" if schedule is not None and not schedule.enabled else "&Pause")
        self.pause_button.setEnabled(schedule is not None)
        self.delete_button.setEnabled(schedule is not None)
