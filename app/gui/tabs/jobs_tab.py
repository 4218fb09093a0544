"""The Jobs tab: the selected kit's queue, with New job, Cancel, Logs, Save results and Delete,
the selected job's result (a chart for a benchmark), its log as it grows, and the schedules.

The queue is read again every second while the tab is on screen and a job is unfinished;
nothing is polled while the technician looks elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QItemSelection, Qt, Signal, Slot
from PySide6.QtGui import QHideEvent, QShowEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from agent.wire import FINISHED_STATES, JobInfo, ScheduleInfo
from app.fleet.results import Collected
from app.fleet.text import printable
from app.gui._qt import timer
from app.gui.bridges.jobs_bridge import JobsBridge, JobsSnapshot
from app.gui.dialogs.new_job_dialog import NewJobDialog
from app.gui.dialogs.prompts import Prompts
from app.gui.tables.jobs_table import PROGRESS_COLUMN, JobsTableModel, ProgressDelegate, describe
from app.gui.tables.kit_row import KitRow, age_text
from app.gui.tables.rows import row_view
from app.gui.tabs.job_log_view import JobLogView
from app.gui.tabs.job_result_view import JobResultView
from app.gui.tabs.schedules_panel import SchedulesPanel

__all__ = ["JobsTab"]

QUEUED = Qt.ConnectionType.QueuedConnection


class JobsTab(QWidget):
    status = Signal(str)

    def __init__(
        self, bridge: JobsBridge, prompts: Prompts, parent: QWidget | None = None, poll_ms: int = 1000
    ) -> None:
        super().__init__(parent)
        self._bridge, self._prompts = bridge, prompts
        self._device: str | None = None
        self._name = ""
        self._online = self._loading = False
        self._select_next: str | None = None  # a job just submitted: select it once listed
        self._results_folder: Path | None = None
        self.new_job_dialog: NewJobDialog | None = None
        # The fleet's kits, for a job sent to a tag's kits or to all; the window sets it.
        self.fleet_rows: Callable[[], list[KitRow]] = list
        self.model = JobsTableModel(self)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setTextFormat(Qt.TextFormat.PlainText)  # it shows what kits say: never HTML
        self.table = row_view(self.model)
        self.table.setItemDelegateForColumn(PROGRESS_COLUMN, ProgressDelegate(self.table))
        self.new_button, self.cancel_button = QPushButton("&New job…"), QPushButton("&Cancel job")
        self.logs_button, self.save_button = QPushButton("&Logs"), QPushButton("&Save results…")
        self.delete_button, self.refresh_button = QPushButton("&Delete…"), QPushButton("Re&load")
        self.result = JobResultView()
        self.log = JobLogView(bridge)
        self.schedules = SchedulesPanel()
        self.details = QTabWidget()
        self._poll = timer(self, poll_ms, self._tick)
        self._lay_out()
        self._connect()
        self.show_row(None)

    def _lay_out(self) -> None:
        buttons = QHBoxLayout()
        for button in (
            self.new_button,
            self.cancel_button,
            self.logs_button,
            self.save_button,
            self.delete_button,
        ):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(self.refresh_button)
        queue = QWidget()
        top = QVBoxLayout(queue)
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.message)
        top.addWidget(self.table, 1)
        top.addLayout(buttons)
        self.details.addTab(self.result, "Result")
        self.details.addTab(self.log, "Log")
        self.details.addTab(self.schedules, "Schedules")
        # Side by side: a laptop's screen is wide, not tall; stacked, the result's chart left the
        # queue two rows at 1366x768.
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(queue)
        self.splitter.addWidget(self.details)
        self.splitter.setSizes([760, 580])
        layout = QVBoxLayout(self)
        layout.addWidget(self.splitter)

    def _connect(self) -> None:
        bridge = self._bridge
        bridge.jobs_loaded.connect(self._on_loaded, QUEUED)
        bridge.jobs_unavailable.connect(self._on_unavailable, QUEUED)
        bridge.submitted.connect(self._on_submitted, QUEUED)
        bridge.results_saved.connect(self._on_saved, QUEUED)
        self.result.activate_requested.connect(self._activate_version)
        self.table.selectionModel().selectionChanged.connect(self._on_selection)
        self.model.modelReset.connect(self._update_buttons)
        self.model.dataChanged.connect(self._on_data_changed)
        self.new_button.clicked.connect(self.open_new_job)
        self.cancel_button.clicked.connect(self.cancel_selected)
        self.logs_button.clicked.connect(self.follow_logs)
        self.save_button.clicked.connect(self.save_selected)
        self.delete_button.clicked.connect(self.delete_selected)
        self.refresh_button.clicked.connect(self.reload)
        self.schedules.pause_requested.connect(self._pause_schedule)
        self.schedules.delete_requested.connect(self._delete_schedule)

    # the selected kit ------------------------------------------------------------------

    def shown_device(self) -> str | None:
        return self._device

    def show_row(self, row: KitRow | None) -> None:
        """Follow the selected kit; read its queue when it is new here or came back online."""
        device = row.device_id if row is not None and row.kit is not None else None
        online = device is not None and row is not None and row.row_status == "online"
        changed, came_back = device != self._device, online and not self._online
        self._device, self._online = device, online
        self._name = row.name if row is not None else ""
        if changed:
            self._forget_kit(row)
        elif not online:
            self.message.setText(
                f"{self._name} is not online; the queue is what it held when it "
                "last answered. The kit keeps working on it meanwhile."
            )
        if row is not None and device is not None and not online:
            self._show_last_known(row)
        if online and (changed or came_back) and self.isVisible():
            self.reload()
        self._update_buttons()

    def _show_last_known(self, row: KitRow) -> None:
        """A kit that is away: its newest jobs as it last told of them, greyed, with their age."""
        snapshot = row.view.snapshot if row.view is not None else None
        if snapshot is None:
            return
        first = not self.model.stale
        self.model.set_jobs(snapshot.jobs)
        self.model.set_stale(True)
        if first:  # the live list was fitted when read; this one not yet
            self.table.resizeColumnsToContents()
        self.message.setText(
            f"{self._name} is not online: greyed below is its queue as it was "
            f"{age_text(snapshot.taken_at)} (last known). The kit keeps working on it meanwhile."
        )

    def _forget_kit(self, row: KitRow | None) -> None:
        self._loading, self._select_next = False, None
        self.model.set_jobs([])
        self.model.set_stale(False)
        self.schedules.show_schedules([])
        self.log.stop()
        self.result.show_job(None)
        self.message.setText(_idle_text(row))
        if self.new_job_dialog is not None:
            self.new_job_dialog.close()

    @Slot()
    def reload(self) -> None:
        if self._device is not None and self._online:
            if not self.message.text():  # the first read only: polls must not flicker
                self.message.setText(f"Reading the jobs on {self._name}…")
            self._loading = True
            self._bridge.load_jobs(self._device)

    @Slot()
    def _tick(self) -> None:
        if not self._loading and self.isVisible() and self.model.unfinished():
            self.reload()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self._poll.start()
        self.reload()  # what happened while the technician looked elsewhere

    def hideEvent(self, event: QHideEvent) -> None:
        super().hideEvent(event)
        self._poll.stop()

    @Slot(str, object)
    def _on_loaded(self, device_id: str, snapshot: JobsSnapshot) -> None:
        if device_id != self._device:
            return
        self._loading = False
        keep = self._select_next or (job.job_id if (job := self.selected()) else None)
        self.model.set_jobs(snapshot.jobs)
        self.model.set_stale(False)
        self.schedules.show_schedules(snapshot.schedules)
        self.details.setTabText(2, f"Schedules ({len(snapshot.schedules)})")
        if keep is not None and (position := self.model.position(keep)) >= 0:
            if self.selected() is None or self._select_next:
                self.table.selectRow(position)
            self._select_next = None
        self.table.resizeColumnsToContents()
        self.message.setText(_queue_text(self._name, snapshot.jobs))
        self._update_buttons()

    @Slot(str, str)
    def _on_unavailable(self, device_id: str, message: str) -> None:
        if device_id == self._device:
            self._loading = False
            self.message.setText(f"Could not read the queue: {message}")

    # actions ----------------------------------------------------------------------------

    def selected(self) -> JobInfo | None:
        rows = self.table.selectionModel().selectedRows()
        return self.model.row_at(rows[0].row()) if rows else None

    def select_job(self, job_id: str) -> None:
        if (position := self.model.position(job_id)) >= 0:
            self.table.selectRow(position)

    @Slot()
    def open_new_job(self) -> None:
        if self._device is None or not self._online:
            return
        if self.new_job_dialog is None or not self.new_job_dialog.isVisible():
            if self.new_job_dialog is not None:
                self.new_job_dialog.deleteLater()
            self.new_job_dialog = NewJobDialog(
                self._device, self._name, self._bridge, self._prompts, self, self.fleet_rows()
            )
            self.new_job_dialog.status.connect(self.status)
        self.new_job_dialog.show()
        self.new_job_dialog.raise_()
        self.new_job_dialog.activateWindow()

    @Slot()
    def cancel_selected(self) -> None:
        job = self.selected()
        if self._device is not None and job is not None and job.state not in FINISHED_STATES:
            self.status.emit(f"Cancelling {job.kind} job {describe(job)} on {self._name}…")
            self._bridge.cancel(self._device, job.job_id)

    @Slot()
    def delete_selected(self) -> None:
        job = self.selected()
        if self._device is None or job is None or job.state not in FINISHED_STATES:
            return
        if self._prompts.confirm_removal(
            self,
            f"Delete the {job.kind} job “{describe(job)}”?",
            "Its log and result files are deleted on the kit. Save the results first if you need them.",
        ):
            self._bridge.delete(self._device, job.job_id)

    @Slot()
    def save_selected(self) -> None:
        job = self.selected()
        if self._device is None or job is None or job.state not in FINISHED_STATES:
            return
        folder = self._prompts.choose_results_folder(self, self._results_folder)
        if folder is None:
            return
        self._results_folder = folder
        self.status.emit(f"Saving the results of {describe(job)} under {folder}…")
        self._bridge.save_results(self._device, job.job_id, folder)  # into <kit>/<job ID>/, as the CLI

    @Slot(str, object)
    def _on_saved(self, device_id: str, saved: Collected) -> None:
        names = ", ".join([*(path.name for path in saved.files), "job.json"])
        refused = "; ".join(f"refused {printable(r.name)[:80]}: {r.reason}" for r in saved.refused)
        said = names + (f". The kit also listed names the app does not save ({refused})" if refused else "")
        self.status.emit(f"Saved {said} to {saved.folder}")
        if device_id == self._device:
            self.message.setText(f"Results saved to {saved.folder}: {said}")

    @Slot(str, bool)
    def _activate_version(self, name: str, version: str) -> None:
        if self._device is not None:
            self._bridge.activate_model(self._device, name, version)

    def _pause_schedule(self, schedule_id: str, enabled: bool) -> None:
        if self._device is not None:
            self._bridge.set_schedule_enabled(self._device, schedule_id, enabled)

    @Slot(str)
    def _delete_schedule(self, schedule_id: str) -> None:
        schedule = next((s for s in self.schedules.schedules() if s.schedule_id == schedule_id), None)
        if (
            self._device is not None
            and schedule is not None
            and self._prompts.confirm_removal(
                self,
                f"Delete the schedule “{schedule.name}”?",
                "It queues no more jobs; the jobs it already queued stay.",
            )
        ):
            self._bridge.delete_schedule(self._device, schedule_id)

    @Slot(str, object)
    def _on_submitted(self, device_id: str, info: JobInfo | ScheduleInfo) -> None:
        if device_id != self._device:
            return
        if isinstance(info, JobInfo):
            self._select_next = info.job_id
        else:
            self.details.setCurrentWidget(self.schedules)

    @Slot()
    def follow_logs(self) -> None:
        job = self.selected()
        if self._device is not None and job is not None:
            self.log.follow(
                self._device, job.job_id, f"Log of the {job.kind} job “{describe(job)}” ({job.job_id[:12]})"
            )
            self.details.setCurrentWidget(self.log)

    # keeping the buttons and the result in step -------------------------------------------

    @Slot(QItemSelection, QItemSelection)
    def _on_selection(self, *_: QItemSelection) -> None:
        job = self.selected()
        self.result.show_job(job)
        if self.result.charted():
            self.details.setCurrentWidget(self.result)
        self._update_buttons()

    @Slot()
    def _on_data_changed(self) -> None:
        job, charted = self.selected(), self.result.charted()
        if job is not None:
            self.result.show_job(job)
            if self.result.charted() and not charted:  # the benchmark shown just finished
                self.details.setCurrentWidget(self.result)
        self._update_buttons()

    def _update_buttons(self) -> None:
        job = self.selected() if self._online else None
        finished = job is not None and job.state in FINISHED_STATES
        self.new_button.setEnabled(self._online)
        self.cancel_button.setEnabled(job is not None and not finished)
        self.logs_button.setEnabled(job is not None)
        self.save_button.setEnabled(finished)
        self.delete_button.setEnabled(finished)
        self.refresh_button.setEnabled(self._online)
        self.schedules.setEnabled(self._online)

    def close_dialogs(self) -> None:
        if self.new_job_dialog is not None:
            self.new_job_dialog.close()


def _idle_text(row: KitRow | None) -> str:
    if row is None:
        return "Select a kit to see its jobs."
    if row.kit is None:
        return "This kit is not adopted yet. Adopt it to run jobs on it."
    if row.row_status != "online":
        return f"{row.name} is not online; its queue is read from the kit when it answers."
    return ""


def _queue_text(name: str, jobs: tuple[JobInfo, ...]) -> str:
    if not jobs:
        return f"No jobs on {name} yet. New job… queues one; the kit runs it even when this laptop is away."
    running = sum(j.state == "running" for j in jobs)
    queued = sum(j.state == "queued" for j in jobs)
    return f"{name}: {running} running, {queued} queued, {len(jobs) - running - queued} finished"
