"""The New Job form: its fields in groups, which rows show for the kind chosen, and what they ask.

The dialog (`new_job_dialog`) lays the groups out and talks to the kit; this module only reads
the fields into a `JobSpec`, or raises `JobInputError` naming the field to fix.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QDateTime, QObject, Qt, Signal, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDateTimeEdit,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from app.fleet.datasets import LocalDataset
from app.fleet.jobspec import JobInputError, JobSpec, parse_numbers
from app.gui.bridges.jobs_bridge import JobChoices
from app.gui.dialogs.cron_hint import cron_hint
from app.gui.tabs.try_it import model_choices

__all__ = ["ERROR_STYLE", "HINT_STYLE", "KINDS", "SOURCES", "WHEN", "JobForm", "note", "refusal"]

KINDS = {
    "batch-infer": "Batch inference: label every image in a folder",
    "benchmark": "Benchmark: latency and throughput of the model on this kit",
    "evaluate": "Evaluate: accuracy on a labelled set (one sub-folder per label)",
    "quantize": "Quantize: make an INT8 version of the model on the kit",
    "stream": "Stream: detect continuously on a camera, video or image folder on the kit",
}
SOURCES = {
    "kit-folder": "a folder on the kit",
    "dataset": "a dataset uploaded earlier",
    "upload": "a folder on this laptop (uploaded first)",
}
WHEN = {"now": "as soon as the kit can", "at": "not before a given time", "cron": "on a schedule (cron)"}
_IMAGE_KINDS = ("batch-infer", "evaluate")
ERROR_STYLE = "color: #b3261e;"
HINT_STYLE = "color: #5f6368;"


class JobForm(QObject):
    """The fields and their groups (`groups`), laid out by the dialog.

    Call `show_rows` once the groups are in the dialog: a group shown without a parent would
    open as a window of its own.
    """

    rows_changed = Signal()  # rows shown or hidden, or a note's text changed: the dialog refits

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._make_fields()
        self._lay_out()
        for combo in (self.kind_combo, self.source_combo, self.when_combo):
            combo.currentIndexChanged.connect(self.show_rows)
        self.cron_edit.textChanged.connect(self._on_cron_changed)
        self._on_cron_changed()

    def _make_fields(self) -> None:
        self.kind_combo, self.source_combo, self.when_combo = _combo(KINDS), _combo(SOURCES), _combo(WHEN)
        self.label_edit = QLineEdit(placeholderText="optional: how the job reads in the queue")
        self.model_combo = QComboBox()
        self.model_combo.setMinimumContentsLength(24)
        self.folder_edit = QLineEdit(placeholderText="e.g. digits (under the kit's data folder)")
        self.dataset_combo = QComboBox()
        self.local_label = QLabel("no folder chosen")
        self.local_button = QPushButton("C&hoose folder…")
        self.upload_note = note()
        self.top_k_spin = _spin(1, 100, 5)
        self.batch_sizes_edit = QLineEdit("1, 8")
        self.bench_threads_edit = QLineEdit(placeholderText="e.g. 1, 2; empty: the job's threads")
        self.runs_spin, self.warmup_spin = _spin(1, 100_000, 50), _spin(0, 1000, 5)
        self.output_version_edit = QLineEdit(placeholderText="default: <version>-int8")
        self.per_channel_box = QCheckBox("per-channel weights (usually more accurate)")
        self.stream_source_edit = QLineEdit(
            placeholderText="/dev/video0, rtsp://…, or a video or folder on the kit"
        )
        self.stream_fps_spin = QDoubleSpinBox()
        self.stream_fps_spin.setRange(0, 240)
        self.stream_fps_spin.setSpecialValueText("as the source gives")
        self.stream_pace_box = QCheckBox(
            "play a video at a camera's pace, dropping frames (else every frame)"
        )
        self.stream_pace_box.setChecked(True)
        self.stream_loop_box = QCheckBox("start a video again when it ends")
        # a folder is a backlog, every image read, unless it stands for a camera
        self.stream_live_box = QCheckBox(
            "a folder as a live camera: skip images the model cannot keep up with"
        )
        self.priority_spin, self.threads_spin = _spin(-100, 100, 0), _spin(1, 4096, 1)
        self.timeout_spin = _spin(1, 7 * 24 * 60, 60)
        self.timeout_spin.setSuffix(" min")
        self.retries_spin = _spin(0, 20, 0)
        # 0 is no gate: no job waits for a battery above 0 % or a kit below 0 °C
        self.battery_spin = _gate(" % battery", "no battery gate", 100)
        self.temperature_spin = _gate(" °C on its hottest sensor", "no temperature gate", 200)
        self.memory_spin = _spin(1, 1 << 20, 256)
        self.memory_spin.setSuffix(" MiB")
        self.at_edit = QDateTimeEdit(QDateTime.currentDateTime().addSecs(3600))
        self.at_edit.setDisplayFormat("yyyy-MM-dd HH:mm")
        self.at_edit.setCalendarPopup(True)
        self.cron_edit = QLineEdit("0 2 * * *")
        self.cron_hint = note()

    def _lay_out(self) -> None:
        self.job_form, self.images_form = QFormLayout(), QFormLayout()
        self.bench_form, self.quantize_form = QFormLayout(), QFormLayout()
        self.resources_form, self.when_form = QFormLayout(), QFormLayout()
        _rows(
            self.job_form,
            ("Kind:", self.kind_combo),
            ("Model:", self.model_combo),
            ("Label:", self.label_edit),
        )
        self.local_row = QWidget()
        chooser = QHBoxLayout(self.local_row)
        chooser.setContentsMargins(0, 0, 0, 0)
        chooser.addWidget(self.local_label, 1)
        chooser.addWidget(self.local_button)
        _rows(
            self.images_form,
            ("Images from:", self.source_combo),
            ("Folder on the kit:", self.folder_edit),
            ("Dataset:", self.dataset_combo),
            ("Folder here:", self.local_row),
            ("Sent as:", self.upload_note),
            ("Top labels kept:", self.top_k_spin),
        )
        _rows(
            self.bench_form,
            ("Batch sizes:", self.batch_sizes_edit),
            ("Thread counts:", self.bench_threads_edit),
            ("Timed runs each:", self.runs_spin),
            ("Warm-up runs:", self.warmup_spin),
        )
        _rows(self.quantize_form, ("INT8 version:", self.output_version_edit), ("", self.per_channel_box))
        self.stream_form, self.limits_form = QFormLayout(), QFormLayout()
        _rows(
            self.stream_form,
            ("Source:", self.stream_source_edit),
            ("Frames per second:", self.stream_fps_spin),
            ("", self.stream_pace_box),
            ("", self.stream_loop_box),
            ("", self.stream_live_box),
        )
        _rows(
            self.limits_form,
            ("Timeout per attempt:", self.timeout_spin),
            ("Retries after a failure:", self.retries_spin),
            ("Start only above:", self.battery_spin),
            ("Start only below:", self.temperature_spin),
        )
        _rows(
            self.resources_form,
            ("Priority:", self.priority_spin),
            ("Threads:", self.threads_spin),
            ("Memory:", self.memory_spin),
        )
        _rows(
            self.when_form,
            ("Run:", self.when_combo),
            ("Not before:", self.at_edit),
            ("Cron (kit's clock):", self.cron_edit),
            ("", self.cron_hint),
        )
        self.groups = {
            name: _group(title, form)
            for name, title, form in (
                ("job", "Job", self.job_form),
                ("images", "Images", self.images_form),
                ("benchmark", "Measurements", self.bench_form),
                ("quantize", "INT8 model", self.quantize_form),
                ("stream", "Stream", self.stream_form),
                ("resources", "Priority and resources the job holds", self.resources_form),
                (
                    "limits",
                    "Limits, and gates checked before each start",
                    self.limits_form,
                ),
                ("when", "When", self.when_form),
            )
        }

    # showing ---------------------------------------------------------------------------

    def choice(self, combo: QComboBox) -> str:
        return str(combo.currentData())

    def set_choice(self, combo: QComboBox, value: str) -> None:
        combo.setCurrentIndex(combo.findData(value))

    @Slot()
    def show_rows(self) -> None:
        """Only the groups and rows the chosen kind, image source and timing ask for."""
        kind, source, when = (self.choice(c) for c in (self.kind_combo, self.source_combo, self.when_combo))
        self.groups["images"].setVisible(kind in _IMAGE_KINDS)
        self.groups["benchmark"].setVisible(kind == "benchmark")
        self.groups["quantize"].setVisible(kind == "quantize")
        self.groups["stream"].setVisible(kind == "stream")
        self.images_form.setRowVisible(self.top_k_spin, kind == "batch-infer")
        self.images_form.setRowVisible(self.folder_edit, source == "kit-folder")
        self.images_form.setRowVisible(self.dataset_combo, source == "dataset")
        self.images_form.setRowVisible(self.local_row, source == "upload")
        self.images_form.setRowVisible(self.upload_note, source == "upload")
        self.when_form.setRowVisible(self.at_edit, when == "at")
        self.when_form.setRowVisible(self.cron_edit, when == "cron")
        self.when_form.setRowVisible(self.cron_hint, when == "cron")
        self.rows_changed.emit()

    @Slot()
    def _on_cron_changed(self) -> None:
        hint = cron_hint(self.cron_edit.text())
        self.cron_hint.setText(hint.text)
        self.cron_hint.setStyleSheet(HINT_STYLE if hint.ok else ERROR_STYLE)
        self.rows_changed.emit()

    def show_upload_note(self, text: str, ok: bool) -> None:
        self.upload_note.setText(text)
        self.upload_note.setStyleSheet(HINT_STYLE if ok else ERROR_STYLE)
        self.rows_changed.emit()

    def show_choices(self, choices: JobChoices) -> None:
        """Offer the kit's deployed models and uploaded datasets."""
        self.model_combo.clear()
        for text, choice in model_choices(list(choices.models)):
            self.model_combo.addItem(text, choice)
        self.dataset_combo.clear()
        for dataset in choices.datasets:
            self.dataset_combo.addItem(f"{dataset.name} ({dataset.files} files)", dataset.name)

    def set_enabled(self, enabled: bool) -> None:
        for group in self.groups.values():
            group.setEnabled(enabled)

    # reading ----------------------------------------------------------------------------

    def uploads(self) -> bool:
        """Whether the job's images are a folder on this laptop, sent first."""
        return self.choice(self.kind_combo) in _IMAGE_KINDS and self.choice(self.source_combo) == "upload"

    def spec(self, kit: str, upload: Callable[[], LocalDataset]) -> JobSpec:
        """The job the fields describe; `upload()` gives the chosen folder or refuses (`JobInputError`)."""
        kind = self.choice(self.kind_combo)
        params = {**self._model_params(kit), **self._kind_params(kind, upload)}
        return JobSpec(
            kind,
            params,
            priority=self.priority_spin.value(),
            threads=self.threads_spin.value(),
            memory_mb=self.memory_spin.value(),
            not_before=self._not_before(),
            label=self.label_edit.text().strip(),
            timeout_s=self.timeout_spin.value() * 60.0,
            max_retries=self.retries_spin.value(),
            min_battery_percent=float(self.battery_spin.value()) or None,
            max_temperature_c=float(self.temperature_spin.value()) or None,
        )

    def cron(self) -> str | None:
        """The schedule's cron expression, or None when the job runs once."""
        if self.choice(self.when_combo) != "cron":
            return None
        if not cron_hint(self.cron_edit.text()).ok:
            raise refusal("Cron: the expression is not usable; the note under it says why")
        return self.cron_edit.text().strip()

    def _model_params(self, kit: str) -> dict[str, str]:
        choice = self.model_combo.currentData()
        if choice is None:
            raise refusal(f"Model: {kit} has no models yet; deploy one first (Models ▸ Deploy…)")
        name, version = choice
        return {"model": name} | ({"version": version} if version else {})

    def _kind_params(self, kind: str, upload: Callable[[], LocalDataset]) -> dict[str, Any]:
        if kind == "benchmark":
            return {
                "batch_sizes": parse_numbers(self.batch_sizes_edit.text(), "Batch sizes"),
                "runs": self.runs_spin.value(),
                "warmup": self.warmup_spin.value(),
                "threads": parse_numbers(self.bench_threads_edit.text(), "Thread counts"),
            }
        if kind == "stream":
            return self._stream_params()
        if kind == "quantize":
            version = self.output_version_edit.text().strip()
            return {"per_channel": self.per_channel_box.isChecked()} | (
                {"output_version": version} if version else {}
            )
        images = self._images(upload)
        return images | {"top_k": self.top_k_spin.value()} if kind == "batch-infer" else images

    def _stream_params(self) -> dict[str, Any]:
        source = self.stream_source_edit.text().strip()
        if not source:
            raise refusal(
                "Source: enter a camera (/dev/video0), a stream URL, or a video or folder on the kit"
            )
        fps = self.stream_fps_spin.value()
        return (
            {
                "source": source,
                "realtime": self.stream_pace_box.isChecked(),
                "loop": self.stream_loop_box.isChecked(),
            }
            | ({"fps": fps} if fps else {})
            | ({"live": True} if self.stream_live_box.isChecked() else {})
        )

    def _images(self, upload: Callable[[], LocalDataset]) -> dict[str, str]:
        source = self.choice(self.source_combo)
        if source == "kit-folder":
            folder = self.folder_edit.text().strip()
            if not folder:
                raise refusal("Images: enter a folder on the kit, e.g. digits (under its data folder)")
            return {"folder": folder}
        if source == "dataset":
            if self.dataset_combo.currentData() is None:
                raise refusal("Images: no dataset on this kit yet; upload a folder from this laptop")
            return {"dataset": str(self.dataset_combo.currentData())}
        return {"dataset": upload().name}

    def _not_before(self) -> float | None:
        if self.choice(self.when_combo) != "at":
            return None
        when = float(self.at_edit.dateTime().toSecsSinceEpoch())
        if when <= time.time():
            raise refusal(f"Not before: that time has passed; choose a later one, or “{WHEN['now']}”")
        return when


def refusal(problem: str) -> JobInputError:
    return JobInputError([problem])


def note() -> QLabel:
    """A wrapped plain-text label: notes may quote what a kit or a folder said."""
    label = QLabel()
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
    return label


def _combo(choices: dict[str, str]) -> QComboBox:
    combo = QComboBox()
    for value, text in choices.items():
        combo.addItem(text, value)
    return combo


def _spin(low: int, high: int, value: int) -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(low, high)
    spin.setValue(value)
    return spin


def _gate(suffix: str, off: str, high: int) -> QSpinBox:
    spin = _spin(0, high, 0)
    spin.setSuffix(suffix)
    spin.setSpecialValueText(off)
    return spin


def _rows(form: QFormLayout, *rows: tuple[str, QWidget]) -> None:
    for label, widget in rows:
        form.addRow(label, widget)


def _group(title: str, form: QFormLayout) -> QGroupBox:
    group = QGroupBox(title)
    group.setLayout(form)
    return group
