"""One job's log, followed as it grows: read from the last offset until the kit says it has finished.

A long log arrives in pieces (the kit answers at most 64 KiB at a time), read back to back;
a running job's log is asked again twice a second while the pane is on screen.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Slot
from PySide6.QtGui import QFontDatabase, QShowEvent, QTextCursor
from PySide6.QtWidgets import QLabel, QPlainTextEdit, QVBoxLayout, QWidget

from agent.wire import JobLogs
from app.gui._qt import timer
from app.gui.bridges.jobs_bridge import JobsBridge

__all__ = ["JobLogView"]

QUEUED = Qt.ConnectionType.QueuedConnection
_POLL_MS = 500
IDLE = "Select a job and press Logs to follow its log."


class JobLogView(QWidget):
    def __init__(self, bridge: JobsBridge, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._bridge = bridge
        self._device: str | None = None
        self._job: str | None = None
        self._offset = 0
        self.title = QLabel(IDLE)
        self.title.setTextFormat(Qt.TextFormat.PlainText)
        self.text = QPlainTextEdit(readOnly=True)
        self.text.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self._timer = timer(self, _POLL_MS, self._read_more, single_shot=True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.text, 1)
        bridge.logs_read.connect(self._on_logs, QUEUED)
        bridge.failed.connect(self._on_failed, QUEUED)

    def following(self) -> str | None:
        return self._job

    def follow(self, device_id: str, job_id: str, title: str) -> None:
        self.stop(title)
        self._device, self._job = device_id, job_id
        self._bridge.read_logs(device_id, job_id, 0)

    def stop(self, title: str = IDLE) -> None:
        self._device, self._job, self._offset = None, None, 0
        self._timer.stop()
        self.text.clear()
        self.title.setText(title)

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if self._job is not None:
            self._timer.start(0)  # catch up with what was written while out of sight

    @Slot(str, object)
    def _on_logs(self, device_id: str, logs: JobLogs) -> None:
        if (device_id, logs.job_id, logs.offset) != (self._device, self._job, self._offset):
            return  # an answer for a log no longer shown
        if logs.text:
            bar = self.text.verticalScrollBar()
            at_end = bar.value() == bar.maximum()
            self.text.moveCursor(QTextCursor.MoveOperation.End)
            self.text.insertPlainText(logs.text)
            if at_end:  # keep following, unless the technician scrolled up to read
                bar.setValue(bar.maximum())
        self._offset = logs.next_offset
        if logs.text:
            self._timer.start(0)
        elif not logs.finished:
            self._timer.start(_POLL_MS)
        else:
            self.title.setText(f"{self.title.text()} · finished")

    @Slot()
    def _read_more(self) -> None:
        if self._device is not None and self._job is not None and self.isVisible():
            self._bridge.read_logs(self._device, self._job, self._offset)

    @Slot(str, str)
    def _on_failed(self, operation: str, message: str) -> None:
        if operation == "job logs" and self._job is not None:
            self._timer.stop()
            self._job = None
            self.title.setText(f"{self.title.text()} · could not read more: {message}")
