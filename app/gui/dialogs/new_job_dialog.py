"""New Job: the kind, a model deployed on the kit, its images or measurements, and when it runs.

Every refusal, the dialog's own or the kit's, is shown inside the dialog, which stays open
with the fields as they were so the technician can fix one thing and submit again.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QDateTime, Qt, Signal, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDateTimeEdit,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from agent.wire import JobInfo, ScheduleInfo
from app.fleet.datasets import LocalDataset
from app.fleet.jobs import SubmitProgress
from app.fleet.jobspec import JobInputError, JobSpec, parse_numbers
from app.gui.bridges.jobs_bridge import JobChoices, JobsBridge, Submission
from app.gui.dialogs.cron_hint import cron_hint
from app.gui.dialogs.prompts import Prompts
from app.gui.tables.models_table import size_text
from app.gui.tabs.try_it import model_choices

__all__ = ["NewJobDialog"]

QUEUED = Qt.ConnectionType.QueuedConnection
KINDS = {"batch-infer": "Batch inference: label every image in a folder",
         "benchmark": "Benchmark: latency and throughput of the model on this kit",
         "evaluate": "Evaluate: accuracy on a labelled set (one sub-folder per label)",
         "quantize": "Quantize: make an INT8 version of the model on the kit"}
SOURCES = {"kit-folder": "a folder on the kit", "dataset": "a dataset uploaded earlier",
           "upload": "a folder on this laptop (uploaded first)"}
WHEN = {"now": "as soon as the kit can", "at": "not before a given time", "cron": "on a schedule (cron)"}
_IMAGE_KINDS = ("batch-infer", "evaluate")
_ERROR_STYLE = "color: #b3261e;"
_HINT_STYLE = "color: #5f6368;"


class NewJobDialog(QDialog):
    status = Signal(str)

    def __init__(self, device_id: str, kit_name: str, bridge: JobsBridge, prompts: Prompts,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"New job on {kit_name}")
        self.setMinimumWidth(640)
        self._device, self._kit, self._bridge, self._prompts = device_id, kit_name, bridge, prompts
        self._local: Path | None = None
        self.upload: LocalDataset | None = None  # the chosen folder, once read
        self._folder_problem = ""  # why the chosen folder cannot be sent
        self._busy = False
        self.submitted_info: JobInfo | ScheduleInfo | None = None
        self._make_fields()
        self._lay_out()
        self._connect()
        self._update()
        self._on_cron_changed()
        bridge.load_choices(device_id)

    def _make_fields(self) -> None:
        self.kind_combo, self.source_combo, self.when_combo = _combo(KINDS), _combo(SOURCES), _combo(WHEN)
        self.label_edit = QLineEdit(placeholderText="optional: how the job reads in the queue")
        self.model_combo = QComboBox()
        self.model_combo.setMinimumContentsLength(24)
        self.folder_edit = QLineEdit(placeholderText="e.g. digits (under the kit's data folder)")
        self.dataset_combo = QComboBox()
        self.local_label = QLabel("no folder chosen")
        self.local_button = QPushButton("C&hoose folder…")
        self.upload_note = _note()
        self.top_k_spin = _spin(1, 100, 5)
        self.batch_sizes_edit = QLineEdit("1, 8")
        self.bench_threads_edit = QLineEdit(placeholderText="e.g. 1, 2; empty: the job's threads")
        self.runs_spin, self.warmup_spin = _spin(1, 100_000, 50), _spin(0, 1000, 5)
        self.output_version_edit = QLineEdit(placeholderText="default: <version>-int8")
        self.per_channel_box = QCheckBox("per-channel weights (usually more accurate)")
        self.priority_spin, self.threads_spin = _spin(-100, 100, 0), _spin(1, 4096, 1)
        self.memory_spin = _spin(1, 1 << 20, 256)
        self.memory_spin.setSuffix(" MiB")
        self.at_edit = QDateTimeEdit(QDateTime.currentDateTime().addSecs(3600))
        self.at_edit.setDisplayFormat("yyyy-MM-dd HH:mm")
        self.at_edit.setCalendarPopup(True)
        self.cron_edit = QLineEdit("0 2 * * *")
        self.cron_hint = _note()
        self.message, self.error = _note(), _note()
        self.error.setStyleSheet(_ERROR_STYLE)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.submit_button = self.buttons.addButton("&Submit", QDialogButtonBox.ButtonRole.ActionRole)

    def _lay_out(self) -> None:
        self.job_form, self.images_form = QFormLayout(), QFormLayout()
        self.bench_form, self.quantize_form = QFormLayout(), QFormLayout()
        self.resources_form, self.when_form = QFormLayout(), QFormLayout()
        _rows(self.job_form, ("Kind:", self.kind_combo), ("Model:", self.model_combo),
              ("Label:", self.label_edit))
        self.local_row = QWidget()
        chooser = QHBoxLayout(self.local_row)
        chooser.setContentsMargins(0, 0, 0, 0)
        chooser.addWidget(self.local_label, 1)
        chooser.addWidget(self.local_button)
        _rows(self.images_form, ("Images from:", self.source_combo), ("Folder on the kit:", self.folder_edit),
              ("Dataset:", self.dataset_combo), ("Folder here:", self.local_row),
              ("Sent as:", self.upload_note), ("Top labels kept:", self.top_k_spin))
        _rows(self.bench_form, ("Batch sizes:", self.batch_sizes_edit),
              ("Thread counts:", self.bench_threads_edit), ("Timed runs each:", self.runs_spin),
              ("Warm-up runs:", self.warmup_spin))
        _rows(self.quantize_form, ("INT8 version:", self.output_version_edit), ("", self.per_channel_box))
        _rows(self.resources_form, ("Priority:", self.priority_spin), ("Threads:", self.threads_spin),
              ("Memory:", self.memory_spin))
        _rows(self.when_form, ("Run:", self.when_combo), ("Not before:", self.at_edit),
              ("Cron (kit's clock):", self.cron_edit), ("", self.cron_hint))
        self.groups = {name: _group(title, form) for name, title, form in (
            ("job", "Job", self.job_form), ("images", "Images", self.images_form),
            ("benchmark", "Measurements", self.bench_form), ("quantize", "INT8 model", self.quantize_form),
            ("resources", "Priority and resources the job holds", self.resources_form),
            ("when", "When", self.when_form))}
        self._layout = layout = QVBoxLayout(self)
        layout.addWidget(self.message)
        for group in self.groups.values():
            layout.addWidget(group)
        layout.addWidget(self.error)
        layout.addStretch(1)
        layout.addWidget(self.buttons)

    def _connect(self) -> None:
        self._bridge.choices_loaded.connect(self._on_choices, QUEUED)
        self._bridge.folder_read.connect(self._on_folder_read, QUEUED)
        self._bridge.submit_progress.connect(self._on_progress, QUEUED)
        self._bridge.submitted.connect(self._on_submitted, QUEUED)
        self._bridge.failed.connect(self._on_failed, QUEUED)
        for combo in (self.kind_combo, self.source_combo, self.when_combo, self.model_combo):
            combo.currentIndexChanged.connect(self._update)
        self.cron_edit.textChanged.connect(self._on_cron_changed)
        self.local_button.clicked.connect(self.choose_local)
        self.submit_button.clicked.connect(self.submit)
        self.buttons.rejected.connect(self.reject)

    # the fields ------------------------------------------------------------------------

    def choice(self, combo: QComboBox) -> str:
        return str(combo.currentData())

    def set_choice(self, combo: QComboBox, value: str) -> None:
        combo.setCurrentIndex(combo.findData(value))

    @Slot()
    def choose_local(self) -> None:
        chosen = self._prompts.choose_images_folder(self, self._local)
        if chosen is not None:
            self._local, self.upload, self._folder_problem = chosen, None, ""
            self.local_label.setText(str(chosen))
            self._show_upload_note("Reading the folder…", ok=True)
            self._bridge.read_folder(chosen)

    @Slot()
    def _update(self) -> None:
        kind, source, when = (self.choice(c) for c in (self.kind_combo, self.source_combo, self.when_combo))
        self.groups["images"].setVisible(kind in _IMAGE_KINDS)
        self.groups["benchmark"].setVisible(kind == "benchmark")
        self.groups["quantize"].setVisible(kind == "quantize")
        self.images_form.setRowVisible(self.top_k_spin, kind == "batch-infer")
        self.images_form.setRowVisible(self.folder_edit, source == "kit-folder")
        self.images_form.setRowVisible(self.dataset_combo, source == "dataset")
        self.images_form.setRowVisible(self.local_row, source == "upload")
        self.images_form.setRowVisible(self.upload_note, source == "upload")
        self.when_form.setRowVisible(self.at_edit, when == "at")
        self.when_form.setRowVisible(self.cron_edit, when == "cron")
        self.when_form.setRowVisible(self.cron_hint, when == "cron")
        self.submit_button.setEnabled(not self._busy and self.model_combo.count() > 0)
        self._fit()

    def _fit(self) -> None:
        """Grow or shrink to the rows shown and the notes' lines (wrapped labels need telling)."""
        self._layout.activate()
        self.resize(self.width(), self._layout.heightForWidth(self.width()))

    @Slot()
    def _on_cron_changed(self) -> None:
        hint = cron_hint(self.cron_edit.text())
        self.cron_hint.setText(hint.text)
        self.cron_hint.setStyleSheet(_HINT_STYLE if hint.ok else _ERROR_STYLE)
        self._fit()

    # submitting ------------------------------------------------------------------------

    @Slot()
    def submit(self) -> None:
        if self._busy:
            return
        try:
            submission = self.submission()
        except JobInputError as exc:
            self._show_error("\n".join(exc.problems))
            return
        self._show_error("")
        self._set_busy(True)
        upload = submission.upload
        self.message.setText(f"Sending {upload.files} images from {upload.folder.name} to {self._kit} "
                             "unless it has them already, then the job…" if upload
                             else f"Sending the job to {self._kit}…")
        self._bridge.submit(submission)

    def submission(self) -> Submission:
        """What Submit sends, checked against the wire contract, or a `JobInputError` saying what to fix."""
        kind = self.choice(self.kind_combo)
        params = {**self._model_params(), **self._kind_params(kind)}
        uploads = kind in _IMAGE_KINDS and self.choice(self.source_combo) == "upload"
        upload = self._upload() if uploads else None
        spec = JobSpec(kind, params,
                       priority=self.priority_spin.value(), threads=self.threads_spin.value(),
                       memory_mb=self.memory_spin.value(), not_before=self._not_before(),
                       label=self.label_edit.text().strip())
        if self.choice(self.when_combo) != "cron":
            return Submission(self._device, spec.request(), upload)
        return Submission(self._device, spec.schedule(spec.schedule_name, self._cron(), "skip"), upload)

    def _model_params(self) -> dict[str, str]:
        choice = self.model_combo.currentData()
        if choice is None:
            raise _refusal(f"Model: {self._kit} has no models yet; deploy one first (Models ▸ Deploy…)")
        name, version = choice
        return {"model": name} | ({"version": version} if version else {})

    def _kind_params(self, kind: str) -> dict[str, Any]:
        if kind == "benchmark":
            return {"batch_sizes": parse_numbers(self.batch_sizes_edit.text(), "Batch sizes"),
                    "runs": self.runs_spin.value(), "warmup": self.warmup_spin.value(),
                    "threads": parse_numbers(self.bench_threads_edit.text(), "Thread counts")}
        if kind == "quantize":
            version = self.output_version_edit.text().strip()
            return {"per_channel": self.per_channel_box.isChecked()} | (
                {"output_version": version} if version else {})
        images = self._images()
        return images | {"top_k": self.top_k_spin.value()} if kind == "batch-infer" else images

    def _images(self) -> dict[str, str]:
        source = self.choice(self.source_combo)
        if source == "kit-folder":
            folder = self.folder_edit.text().strip()
            if not folder:
                raise _refusal("Images: enter a folder on the kit, e.g. digits (under its data folder)")
            return {"folder": folder}
        if source == "dataset":
            if self.dataset_combo.currentData() is None:
                raise _refusal("Images: no dataset on this kit yet; upload a folder from this laptop")
            return {"dataset": str(self.dataset_combo.currentData())}
        return {"dataset": self._upload().name}

    def _upload(self) -> LocalDataset:
        if self._local is None:
            raise _refusal("Images: choose a folder on this laptop to upload")
        if self._folder_problem:
            raise _refusal(f"Images: {self._folder_problem}")
        if self.upload is None:
            raise _refusal("Images: the folder is still being read; submit again in a moment")
        return self.upload

    def _not_before(self) -> float | None:
        if self.choice(self.when_combo) != "at":
            return None
        when = float(self.at_edit.dateTime().toSecsSinceEpoch())
        if when <= time.time():
            raise _refusal(f"Not before: that time has passed; choose a later one, or “{WHEN['now']}”")
        return when

    def _cron(self) -> str:
        hint = cron_hint(self.cron_edit.text())
        if not hint.ok:
            raise _refusal("Cron: the expression is not usable; the note under it says why")
        return self.cron_edit.text().strip()

    def _show_upload_note(self, text: str, ok: bool) -> None:
        self.upload_note.setText(text)
        self.upload_note.setStyleSheet(_HINT_STYLE if ok else _ERROR_STYLE)
        self._fit()

    def _show_error(self, text: str) -> None:
        self.error.setText(text)
        self._fit()

    def _set_busy(self, busy: bool) -> None:
        self._busy = busy
        for group in self.groups.values():
            group.setEnabled(not busy)
        self._update()

    # answers -------------------------------------------------------------------------------

    @Slot(str, object)
    def _on_choices(self, device_id: str, choices: JobChoices) -> None:
        if device_id != self._device:
            return
        self.model_combo.clear()
        for text, choice in model_choices(list(choices.models)):
            self.model_combo.addItem(text, choice)
        self.dataset_combo.clear()
        for dataset in choices.datasets:
            self.dataset_combo.addItem(f"{dataset.name} ({dataset.files} files)", dataset.name)
        self.message.setText("" if choices.models else
                             f"{self._kit} has no models yet: deploy one first (Models ▸ Deploy…).")
        self._update()

    @Slot(object, object)
    def _on_folder_read(self, folder: Path, answer: LocalDataset | str) -> None:
        if folder != self._local:  # another folder was chosen meanwhile
            return
        if isinstance(answer, str):
            self._folder_problem = answer
            self._show_upload_note(answer, ok=False)
            return
        self.upload = answer
        self._show_upload_note(f"{answer.files} images, {size_text(answer.size)}, as dataset {answer.name} "
                               "(not sent again to a kit that has it)", ok=True)

    @Slot(str, object)
    def _on_progress(self, device_id: str, progress: SubmitProgress) -> None:
        if device_id != self._device or not self._busy:
            return
        if progress.stage == "uploading" and progress.total:
            percent = 100 * progress.done // progress.total
            self.message.setText(f"Uploading the images to {self._kit}: {percent}% of "
                                 f"{size_text(progress.total)}…")
        elif progress.stage == "retrying":
            self.message.setText(f"{self._kit} did not answer; trying again ({progress.message})…")
        elif progress.stage == "submitting":
            self.message.setText(f"Sending the job to {self._kit}…")

    @Slot(str, object)
    def _on_submitted(self, device_id: str, info: JobInfo | ScheduleInfo) -> None:
        if device_id != self._device or not self._busy:
            return
        self._set_busy(False)
        self.submitted_info = info
        if isinstance(info, ScheduleInfo):
            self.status.emit(f"{self._kit}: schedule “{info.name}” created ({info.cron})")
        else:
            self.status.emit(f"{self._kit}: {info.kind} job queued")
        self.accept()

    @Slot(str, str)
    def _on_failed(self, operation: str, message: str) -> None:
        if operation == "submit job" and self._busy:
            self._set_busy(False)
            self.message.setText("")
            self._show_error(f"{self._kit} did not take the job: {message.removeprefix(f'{self._kit}: ')}")
        elif operation == "job choices":
            self.message.setText(f"Could not read the models and datasets on {self._kit}: {message}")


def _refusal(problem: str) -> JobInputError:
    return JobInputError([problem])


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


def _note() -> QLabel:
    label = QLabel()
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
    return label


def _rows(form: QFormLayout, *rows: tuple[str, QWidget]) -> None:
    for label, widget in rows:
        form.addRow(label, widget)


def _group(title: str, form: QFormLayout) -> QGroupBox:
    group = QGroupBox(title)
    group.setLayout(form)
    return group
