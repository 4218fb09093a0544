"""A kit's job queue as a table, newest first, with a progress bar per job."""

from __future__ import annotations

import time
from collections.abc import Iterable

from PySide6.QtCore import QObject, Qt, Slot
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import (
    QApplication,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionProgressBar,
    QStyleOptionViewItem,
)

from agent.wire import FINISHED_STATES, JobInfo
from app.gui._qt import dot_icon
from app.gui.tables.rows import ALIGN_RIGHT, AnyIndex, RowTableModel

__all__ = [
    "JOB_COLUMNS",
    "PROGRESS_COLUMN",
    "JobsTableModel",
    "ProgressDelegate",
    "describe",
    "progress_text",
]

JOB_COLUMNS = (
    "Kind",
    "Job",
    "State",
    "Progress",
    "Priority",
    "Attempts",
    "Waiting / error",
    "Created",
    "Finished",
)
PROGRESS_COLUMN = JOB_COLUMNS.index("Progress")
_STATE_COLOURS = {
    "queued": "#80868b",
    "running": "#1a73e8",
    "done": "#1e7b34",
    "failed": "#b3261e",
    "cancelled": "#a8730a",
    "interrupted": "#e8710a",
}
_RIGHT = {JOB_COLUMNS.index("Priority"), JOB_COLUMNS.index("Attempts")}


def describe(job: JobInfo) -> str:
    """The technician's label, or what the job works on when none was given."""
    if job.label:
        return job.label
    params = job.request.params
    parts = [f"{params['model']} {params.get('version', '')}".strip()] if "model" in params else []
    if "dataset" in params:
        parts.append(f"dataset {params['dataset']}")
    elif "folder" in params:
        parts.append(f"folder {params['folder']}")
    elif "batch_sizes" in params:
        parts.append(f"batches {', '.join(str(b) for b in params['batch_sizes'])}")
    return " · ".join(parts) or " ".join(params.get("argv", []))


def progress_text(job: JobInfo) -> str:
    done, total = job.progress.done, job.progress.total
    if total:
        return f"{done}/{total}"
    if job.state == "running":
        return f"{done} done" if done else "starting…"
    return "complete" if job.state == "done" else ""


def _when(stamp: float | None) -> str:
    if stamp is None:
        return ""
    local = time.localtime(stamp)
    today = time.localtime()[:3] == local[:3]
    return time.strftime("%H:%M:%S" if today else "%d %b %H:%M", local)


def _cells(job: JobInfo) -> tuple[str, ...]:
    note = job.error if job.error else job.waiting if job.state == "queued" else ""
    return (
        job.kind,
        describe(job),
        job.state,
        progress_text(job),
        str(job.request.priority),
        str(job.attempts),
        note or "",
        _when(job.created_at),
        _when(job.finished_at),
    )


class JobsTableModel(RowTableModel[JobInfo]):
    JobIdRole = Qt.ItemDataRole.UserRole + 1
    FractionRole = Qt.ItemDataRole.UserRole + 2  # 0..1 done, or None while unknown

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(JOB_COLUMNS, parent)

    def cell(self, job: JobInfo, column: int, role: int) -> object:
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            return _cells(job)[column]
        if role == Qt.ItemDataRole.DecorationRole and JOB_COLUMNS[column] == "State":
            return dot_icon(_STATE_COLOURS[job.state])
        if role == Qt.ItemDataRole.TextAlignmentRole and column in _RIGHT:
            return ALIGN_RIGHT
        if role == self.FractionRole:
            return _fraction(job)
        return job.job_id if role == self.JobIdRole else None

    def position(self, job_id: str) -> int:
        return next((i for i, job in enumerate(self._rows) if job.job_id == job_id), -1)

    def unfinished(self) -> bool:
        return any(job.state not in FINISHED_STATES for job in self._rows)

    @Slot(object)
    def set_jobs(self, jobs: Iterable[JobInfo]) -> None:
        """Repaint only the rows that changed when the same jobs remain, else start over."""
        self.replace_rows(jobs, key=lambda job: job.job_id)


def _fraction(job: JobInfo) -> float | None:
    if job.state == "done":
        return 1.0
    total = job.progress.total
    return min(1.0, job.progress.done / total) if total else None


class ProgressDelegate(QStyledItemDelegate):
    """Draws the Progress column as a bar while the fraction done is known."""

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: AnyIndex) -> None:
        fraction = index.data(JobsTableModel.FractionRole)
        if index.column() != PROGRESS_COLUMN or fraction is None:
            super().paint(painter, option, index)
            return
        bar = QStyleOptionProgressBar()
        bar.rect = option.rect.adjusted(2, 3, -2, -3)
        bar.minimum, bar.maximum = 0, 1000
        bar.progress = round(float(fraction) * 1000)
        bar.text = str(index.data(Qt.ItemDataRole.DisplayRole))
        bar.textVisible = True
        bar.state = option.state
        style = option.widget.style() if option.widget is not None else QApplication.style()
        style.drawControl(QStyle.ControlElement.CE_ProgressBar, bar, painter)
