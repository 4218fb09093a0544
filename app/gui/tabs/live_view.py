"""A kit's Live view: the latest annotated frame of a stream job, counts per label over time,
and the fps / latency / drop figures, all fed by `StreamBridge` signals (never a wait here).

The window keeps one, as its kits' Live tab (`LiveView(bridge.streams)`), and points it at
the selected kit with `show_row`; `bridge.streams` is the `StreamBridge` made beside the
window's other bridges.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QPixmap, QResizeEvent
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from agent.wire import JobInfo
from app.fleet.stream import LiveEvent, StreamOptions, tally
from app.gui.bridges.stream_bridge import StreamBridge
from app.gui.charts.counts_chart import CountsChart
from app.gui.tables.kit_row import KitRow

__all__ = ["FrameView", "LiveView", "detectors"]

FIGURES = (
    ("state", "State"),
    ("processed_fps", "Processed"),
    ("input_fps", "Source"),
    ("dropped", "Dropped"),
    ("latency", "Latency"),
    ("counts", "Seen so far"),
)


class FrameView(QLabel):
    """The latest annotated frame, scaled to fit and keeping its shape."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("no frame yet", parent)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setMinimumSize(240, 180)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.frame = QPixmap()

    def clear_frame(self) -> None:
        self.frame = QPixmap()
        self.clear()
        self.setText("no frame yet")

    def show_jpeg(self, jpeg: bytes) -> bool:
        pixmap = QPixmap()
        if not pixmap.loadFromData(jpeg, "JPEG"):
            return False
        self.frame = pixmap
        self._fit()
        return True

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        if not self.frame.isNull():
            self.setPixmap(
                self.frame.scaled(
                    self.size(),
                    Qt.AspectRatioMode.KeepAspectRatio,
                    Qt.TransformationMode.SmoothTransformation,
                )
            )


class LiveView(QWidget):
    def __init__(self, bridge: StreamBridge, device_id: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bridge, self.device_id = bridge, device_id
        self.job_id: str | None = None
        self.frames_seen = 0
        self.frame_view, self.chart = FrameView(self), CountsChart(self)
        self.figures = {key: QLabel("–", self) for key, _ in FIGURES}
        self.jobs = QComboBox(self)
        # The kit's deployed detectors (last known, so a kit away still lists them); editable,
        # so a model deployed since the last poll can be typed.
        self.model_combo, self.source_edit = QComboBox(self), QLineEdit(self)
        self.model_combo.setEditable(True)
        self.model_combo.setMinimumContentsLength(16)
        self.fps_spin = QDoubleSpinBox(self)
        self._layout()
        self.setEnabled(bool(device_id))  # nothing to start or watch until a kit is chosen
        bridge.live.connect(self._on_event)
        bridge.frame.connect(self._on_frame)
        bridge.streams_loaded.connect(self._on_streams)
        bridge.started.connect(self._on_started)
        bridge.watch_ended.connect(self._on_watch_ended)

    # building ----------------------------------------------------------------------

    def _layout(self) -> None:
        top = QHBoxLayout()
        top.addWidget(QLabel("Stream job:", self))
        top.addWidget(self.jobs, 1)
        for text, slot in (("Refresh", self.refresh), ("Watch", self._watch_chosen), ("Stop", self.stop)):
            button = QPushButton(text, self)
            button.clicked.connect(slot)
            top.addWidget(button)
        figures = QFormLayout()
        for key, title in FIGURES:
            self.figures[key].setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            figures.addRow(title, self.figures[key])
        middle = QHBoxLayout()
        middle.addWidget(self.frame_view, 3)
        middle.addLayout(figures, 2)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addLayout(middle, 3)
        layout.addWidget(self.chart, 2)
        layout.addLayout(self._start_row())

    def _start_row(self) -> QHBoxLayout:
        line = self.model_combo.lineEdit()
        if line is not None:
            line.setPlaceholderText("deploy a detector first (Models ▸ Deploy…)")
        self.source_edit.setPlaceholderText("/dev/video0, rtsp://…, or a file/folder on the kit")
        self.fps_spin.setRange(0, 240)
        self.fps_spin.setSpecialValueText("source fps")
        row = QHBoxLayout()
        row.addWidget(QLabel("Detector:", self))
        for widget in (self.model_combo, self.source_edit, self.fps_spin):
            row.addWidget(widget, 2 if widget is self.source_edit else 1)
        start = QPushButton("Start stream", self)
        start.clicked.connect(self._start_clicked)
        row.addWidget(start)
        return row

    # actions (GUI thread) -------------------------------------------------------------

    def show_row(self, row: KitRow | None) -> None:
        """Follow the selected kit: the previous kit's live view is closed, this one's streams read."""
        device_id = row.device_id if row is not None and row.kit is not None else ""
        self._offer_detectors(detectors(row) if device_id else [])
        if device_id == self.device_id:
            return
        self.close_view()
        self.device_id, self.job_id, self.frames_seen = device_id, None, 0
        self.jobs.clear()
        self.chart.clear()
        self.frame_view.clear_frame()
        for label in self.figures.values():
            label.setText("–")
        self.setEnabled(bool(device_id))
        if device_id and row is not None and row.row_status == "online":
            self.refresh()

    def _offer_detectors(self, names: list[str]) -> None:
        combo = self.model_combo
        if [combo.itemText(i) for i in range(combo.count())] == names:
            return
        typed = combo.currentText()
        combo.clear()
        combo.addItems(names)
        combo.setCurrentIndex(names.index(typed) if typed in names else 0 if names else -1)

    def refresh(self) -> None:
        if self.device_id:
            self.bridge.load_streams(self.device_id)

    def watch(self, job_id: str) -> None:
        """Follow `job_id`; the previous job's view is closed first."""
        if self.job_id is not None and self.job_id != job_id:
            self.bridge.unwatch(self.device_id, self.job_id)
        self.job_id, self.frames_seen = job_id, 0
        self.chart.clear()
        self.figures["state"].setText("connecting…")
        self.bridge.watch(self.device_id, job_id)

    def stop(self) -> None:
        if self.job_id is not None:
            self.bridge.stop_stream(self.device_id, self.job_id)

    def close_view(self) -> None:
        if self.job_id is not None:
            self.bridge.unwatch(self.device_id, self.job_id)
            self.job_id = None

    def _watch_chosen(self) -> None:
        job_id = self.jobs.currentData()
        if isinstance(job_id, str):
            self.watch(job_id)

    def _start_clicked(self) -> None:
        options = StreamOptions(
            model=self.model_combo.currentText().strip(),
            source=self.source_edit.text().strip(),
            fps=self.fps_spin.value() or None,
        )
        self.bridge.start_stream(self.device_id, options)

    # answers (GUI thread, through queued signals) ---------------------------------------------

    def _mine(self, device_id: str, job_id: str) -> bool:
        return device_id == self.device_id and job_id == self.job_id

    def _on_event(self, device_id: str, job_id: str, event: LiveEvent) -> None:
        if not self._mine(device_id, job_id):
            return
        if event.kind == "frame":
            self.frames_seen += 1
        elif event.kind == "stats":
            self._show_stats(event.data)
            self.chart.add(event.data)
        elif event.kind == "end":
            error = event.data.get("error")
            self.figures["state"].setText(str(event.data.get("state")) + (f": {error}" if error else ""))

    def _show_stats(self, stats: dict[str, Any]) -> None:
        latency = stats.get("latency_ms") or {}
        totals = stats.get("totals") or stats.get("counts") or {}  # never reset by a loop
        loops = int(stats.get("loops") or 0)
        self.figures["state"].setText(f"{stats.get('state', '?')} (attempt {stats.get('attempt', '?')})")
        self.figures["processed_fps"].setText(
            f"{_num(stats.get('processed_fps'))} fps ({stats.get('processed', 0)} frames)"
        )
        self.figures["input_fps"].setText(f"{_num(stats.get('input_fps'))} fps")
        self.figures["dropped"].setText(str(stats.get("dropped", 0)))
        self.figures["latency"].setText(
            f"p50 {_num(latency.get('p50'))} ms, p99 {_num(latency.get('p99'))} ms"
        )
        self.figures["counts"].setText(tally(totals) + (f" (video looped {loops}x)" if loops else ""))

    def _on_frame(self, device_id: str, job_id: str, jpeg: bytes) -> None:
        if self._mine(device_id, job_id):
            self.frame_view.show_jpeg(jpeg)

    def _on_streams(self, device_id: str, jobs: list[JobInfo]) -> None:
        if device_id != self.device_id:
            return
        self.jobs.clear()
        for job in jobs:
            self.jobs.addItem(f"{job.label or job.job_id} ({job.state})", job.job_id)

    def _on_started(self, device_id: str, job: JobInfo) -> None:
        if device_id == self.device_id:
            self.jobs.addItem(f"{job.label or job.job_id} ({job.state})", job.job_id)
            self.jobs.setCurrentIndex(self.jobs.count() - 1)
            self.watch(job.job_id)

    def _on_watch_ended(self, device_id: str, job_id: str) -> None:
        if self._mine(device_id, job_id) and self.figures["state"].text() == "connecting…":
            self.figures["state"].setText("live view closed")


def detectors(row: KitRow | None) -> list[str]:
    """The detection models serving on the kit, as it last told of them."""
    snapshot = row.view.snapshot if row is not None and row.view is not None else None
    if snapshot is None:
        return []
    return sorted(m.name for m in snapshot.models if m.task == "detection" and m.active_version)


def _num(value: Any) -> str:
    return "–" if value is None else f"{float(value):.1f}"
