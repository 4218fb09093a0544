"""New Job: the kind, a model deployed on the kit, its images or measurements, and when it runs.

Every refusal, the dialog's own or the kit's, is shown inside the dialog, which stays open
with the fields as they were so the technician can fix one thing and submit again.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QVBoxLayout, QWidget

from agent.wire import JobInfo, ScheduleInfo
from app.fleet.datasets import LocalDataset
from app.fleet.jobs import SubmitProgress
from app.fleet.jobspec import JobInputError
from app.gui.bridges.jobs_bridge import JobChoices, JobsBridge, Submission
from app.gui.dialogs.job_form import ERROR_STYLE, JobForm, note, refusal
from app.gui.dialogs.prompts import Prompts
from app.gui.tables.models_table import size_text

__all__ = ["NewJobDialog"]

QUEUED = Qt.ConnectionType.QueuedConnection


class NewJobDialog(QDialog):
    status = Signal(str)

    def __init__(
        self,
        device_id: str,
        kit_name: str,
        bridge: JobsBridge,
        prompts: Prompts,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"New job on {kit_name}")
        self.setMinimumWidth(640)
        self._device, self._kit, self._bridge, self._prompts = device_id, kit_name, bridge, prompts
        self._local: Path | None = None
        self.upload: LocalDataset | None = None  # the chosen folder, once read
        self._folder_problem = ""  # why the chosen folder cannot be sent
        self._busy = False
        self.submitted_info: JobInfo | ScheduleInfo | None = None
        self.form = JobForm(self)
        self.message, self.error = note(), note()
        self.error.setStyleSheet(ERROR_STYLE)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.submit_button = self.buttons.addButton("&Submit", QDialogButtonBox.ButtonRole.ActionRole)
        self._lay_out()
        self._connect()
        self.form.show_rows()
        self._update()
        bridge.load_choices(device_id)

    def _lay_out(self) -> None:
        self._layout = layout = QVBoxLayout(self)
        layout.addWidget(self.message)
        for group in self.form.groups.values():
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
        self.form.rows_changed.connect(self._fit)
        self.form.model_combo.currentIndexChanged.connect(self._update)
        self.form.local_button.clicked.connect(self.choose_local)
        self.submit_button.clicked.connect(self.submit)
        self.buttons.rejected.connect(self.reject)

    # the fields ------------------------------------------------------------------------

    @Slot()
    def choose_local(self) -> None:
        chosen = self._prompts.choose_images_folder(self, self._local)
        if chosen is not None:
            self._local, self.upload, self._folder_problem = chosen, None, ""
            self.form.local_label.setText(str(chosen))
            self.form.show_upload_note("Reading the folder…", ok=True)
            self._bridge.read_folder(chosen)

    @Slot()
    def _update(self) -> None:
        self.submit_button.setEnabled(not self._busy and self.form.model_combo.count() > 0)

    @Slot()
    def _fit(self) -> None:
        """Grow or shrink to the rows shown and the notes' lines (wrapped labels need telling)."""
        self._layout.activate()
        self.resize(self.width(), self._layout.heightForWidth(self.width()))

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
        self.message.setText(
            f"Sending {upload.files} images from {upload.folder.name} to {self._kit} "
            "unless it has them already, then the job…"
            if upload
            else f"Sending the job to {self._kit}…"
        )
        self._bridge.submit(submission)

    def submission(self) -> Submission:
        """What Submit sends, checked against the wire contract, or a `JobInputError` saying what to fix."""
        spec = self.form.spec(self._kit, self._upload)
        upload = self._upload() if self.form.uploads() else None
        cron = self.form.cron()
        if cron is None:
            return Submission(self._device, spec.request(), upload)
        return Submission(self._device, spec.schedule(spec.schedule_name, cron, "skip"), upload)

    def _upload(self) -> LocalDataset:
        if self._local is None:
            raise refusal("Images: choose a folder on this laptop to upload")
        if self._folder_problem:
            raise refusal(f"Images: {self._folder_problem}")
        if self.upload is None:
            raise refusal("Images: the folder is still being read; submit again in a moment")
        return self.upload

    def _show_error(self, text: str) -> None:
        self.error.setText(text)
        self._fit()

    def _set_busy(self, busy: bool) -> None:
        self._busy = busy
        self.form.set_enabled(not busy)
        self._update()

    # answers -------------------------------------------------------------------------------

    @Slot(str, object)
    def _on_choices(self, device_id: str, choices: JobChoices) -> None:
        if device_id != self._device:
            return
        self.form.show_choices(choices)
        self.message.setText(
            "" if choices.models else f"{self._kit} has no models yet: deploy one first (Models ▸ Deploy…)."
        )
        self._update()
        self._fit()

    @Slot(object, object)
    def _on_folder_read(self, folder: Path, answer: LocalDataset | str) -> None:
        if folder != self._local:  # another folder was chosen meanwhile
            return
        if isinstance(answer, str):
            self._folder_problem = answer
            self.form.show_upload_note(answer, ok=False)
            return
        self.upload = answer
        self.form.show_upload_note(
            f"{answer.files} images, {size_text(answer.size)}, as dataset "
            f"{answer.name} (not sent again to a kit that has it)",
            ok=True,
        )

    @Slot(str, object)
    def _on_progress(self, device_id: str, progress: SubmitProgress) -> None:
        if device_id != self._device or not self._busy:
            return
        if progress.stage == "uploading" and progress.total:
            percent = 100 * progress.done // progress.total
            self.message.setText(
                f"Uploading the images to {self._kit}: {percent}% of {size_text(progress.total)}…"
            )
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
