"""The selected job's result: a chart for a finished benchmark, the summary as text for the rest."""

from __future__ import annotations

import json
from typing import Any

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from agent.wire import JobInfo
from app.fleet.energy import energy_lines, energy_summary
from app.fleet.evaluation import evaluation, evaluation_lines
from app.fleet.finetune import activatable, fine_tune, fine_tune_lines
from app.fleet.stream import summary_lines as stream_summary
from app.gui.charts.bench_chart import BenchChart, Metric

__all__ = ["JobResultView", "result_text"]

_METRICS: dict[str, Metric] = {
    "Latency p50 / p95 / p99 (ms per call)": "latency",
    "Throughput (items per second)": "throughput",
}


def result_text(job: JobInfo) -> str:
    """A job's outcome in words: its error, or its summary one field a line."""
    warnings = [f"Warning: {w}" for w in job.warnings]  # e.g. a gate not enforceable on this kit
    if job.state in ("queued", "running"):
        return "\n".join([f"The job is {job.state}; its result shows here when it is done.", *warnings])
    lines = [f"State: {job.state}", *warnings] + ([f"Error: {job.error}"] if job.error else [])
    scored = evaluation(job.result) if job.kind == "evaluate" else None
    if scored is not None:  # a per-label table and the confused pairs, as the CLI shows them
        table = [*evaluation_lines(scored), *energy_lines(job.result)]
        return "\n".join([*lines, f"Model: {_model(job.result or {})}", "", *table])
    tuned = fine_tune(job.result) if job.kind == "fine-tune" else None
    if tuned is not None:  # before/after, the per-class table and the matrix, as the CLI shows them
        return "\n".join([*lines, f"Backbone: {_model(job.result or {})}", "", *fine_tune_lines(tuned)])
    if job.kind == "stream" and job.result:
        return "\n".join([*lines, *stream_summary(job.result), *energy_lines(job.result)])
    for key, value in (job.result or {}).items():
        if key != "energy":  # in words below, as the CLI says it
            lines.append(f"{key}: {_value_text(value)}")
    return "\n".join([*lines, *energy_lines(job.result)])


def _model(result: dict[str, Any]) -> str:
    return f"{result.get('model', '?')} {result.get('version', '')}".strip()


def _value_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


class JobResultView(QWidget):
    # (model, version): a fine-tune job's new version, better than its backbone, to serve
    activate_requested = Signal(str, str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._job: JobInfo | None = None
        self._activatable: tuple[str, str] | None = None
        self.activate_button = QPushButton("&Activate the new version")
        self.activate_button.setToolTip(
            "Serve the fine-tuned version on this kit; the backbone stays for rollback"
        )
        self.activate_button.clicked.connect(self._activate)
        self.metric_combo = QComboBox()
        self.metric_combo.addItems(list(_METRICS))
        self.chart = BenchChart()
        self.text = QPlainTextEdit(readOnly=True)
        self.text.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.summary = QLabel()
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        chart_page = QWidget()
        chart_layout = QVBoxLayout(chart_page)
        chart_layout.setContentsMargins(0, 0, 0, 0)
        controls = QHBoxLayout()
        controls.addWidget(QLabel("Show:"))
        controls.addWidget(self.metric_combo)
        controls.addWidget(self.summary, 1)
        chart_layout.addLayout(controls)
        chart_layout.addWidget(self.chart, 1)
        self.pages = QStackedWidget()
        self.pages.addWidget(self.text)
        self.pages.addWidget(chart_page)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.pages)
        layout.addWidget(self.activate_button, 0, Qt.AlignmentFlag.AlignRight)
        self.metric_combo.currentIndexChanged.connect(self._redraw)
        self.show_job(None)

    @property
    def chart_metric(self) -> Metric:
        return _METRICS[self.metric_combo.currentText()]

    def charted(self) -> bool:
        return self.pages.currentIndex() == 1

    def show_job(self, job: JobInfo | None) -> None:
        self._show_activate(job)
        self._job = job
        if job is not None and job.kind == "benchmark" and job.state == "done" and job.result:
            self.pages.setCurrentIndex(1)
            rows = job.result.get("rows", [])
            self.summary.setText(
                f"{len(rows)} measurement{'' if len(rows) == 1 else 's'} · "
                f"sha256 {str(job.result.get('sha256', ''))[:12]}…"
                + (f" · {energy}" if (energy := energy_summary(job.result)) else "")
                + "".join(f" · Warning: {w}" for w in job.warnings)  # a gate not enforceable here
            )
            self.summary.setToolTip("\n".join(energy_lines(job.result)))
            self._redraw()
        else:
            self.pages.setCurrentIndex(0)
            self.chart.show_result(None)
            self.text.setPlainText(result_text(job) if job is not None else "Select a job to see its result.")

    def _show_activate(self, job: JobInfo | None) -> None:
        """The button under a finished fine-tune whose new version is better and not yet serving."""
        tuned = fine_tune(job.result) if job is not None and job.kind == "fine-tune" else None
        offer = activatable(tuned) if tuned is not None and job is not None and job.state == "done" else None
        if offer != self._activatable:  # a new offer is clickable again; a repeated poll changes nothing
            self._activatable = offer
            self.activate_button.setEnabled(offer is not None)
        self.activate_button.setVisible(offer is not None)
        if offer is not None:
            self.activate_button.setText(f"&Activate {offer[0]} {offer[1]}")

    @Slot()
    def _activate(self) -> None:
        if self._activatable is not None:
            self.activate_button.setEnabled(False)  # once: the kit's answer arrives with the next poll
            self.activate_requested.emit(*self._activatable)

    @Slot()
    def _redraw(self) -> None:
        if self._job is not None and self._job.result and self.charted():
            self.chart.show_result(self._job.result, self.chart_metric)
