"""New Job: the kind, a model deployed on the kit, its images or measurements, and when it runs.

Every refusal, the dialog's own or the kit's, is shown inside the dialog, which stays open
with the fields as they were so the technician can fix one thing and submit again.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QHBoxLayout, QVBoxLayout, QWidget

from agent.wire import JobInfo, ScheduleInfo
from app.fleet.datasets import LocalDataset
from app.fleet.jobs import SubmitOutcome, SubmitProgress
from app.fleet.jobspec import JobInputError
from app.gui.bridges.jobs_bridge import JobChoices, JobsBridge, Submission
from app.gui.dialogs.job_form import ERROR_STYLE, JobForm, note, refusal
from app.gui.dialogs.job_targets import JobTargets
from app.gui.dialogs.prompts import Prompts
from app.gui.tables.kit_row import KitRow
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
        rows: Sequence[KitRow] = (),
    ) -> None:
        """`rows`: the fleet's kits, for sending the job to a tag's kits or to every kit."""
        super().__init__(parent)
        self.setWindowTitle(f"New job on {kit_name}")
        self.setMinimumWidth(640)
        self._device, self._kit, self._bridge, self._prompts = device_id, kit_name, bridge, prompts
        self._local: Path | None = None
        self.upload: LocalDataset | None = None  # the chosen folder, once read
        self._folder_problem = ""  # why the chosen folder cannot be sent
        self._busy = False
        self._sending: list[str] = []  # the kits of the submission under way
        self._key: str | None = None  # resending to the kits that missed it: the same job, once
        self.submitted_info: JobInfo | ScheduleInfo | None = None
        self.targets = JobTargets(device_id, rows)
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
        layout.addWidget(self.targets)
        side_by_side = ("resources", "limits")  # short groups: one row of the dialog, not two
        for name, group in self.form.groups.items():
            if name not in side_by_side:
                layout.addWidget(group)
            if name == "resources":
                pair = QHBoxLayout()
                for other in side_by_side:
                    pair.addWidget(self.form.groups[other], 1)
                layout.addLayout(pair)
        layout.addWidget(self.error)
        layout.addStretch(1)
        layout.addWidget(self.buttons)

    def _connect(self) -> None:
        self._bridge.choices_loaded.connect(self._on_choices, QUEUED)
        self._bridge.folder_read.connect(self._on_folder_read, QUEUED)
        self._bridge.submit_progress.connect(self._on_progress, QUEUED)
        self._bridge.submitted_all.connect(self._on_submitted, QUEUED)
        self.targets.changed.connect(self._fit)
        self._bridge.failed.connect(self._on_failed, QUEUED)
        self.form.rows_changed.connect(self._fit)
        self.form.model_combo.currentIndexChanged.connect(self._update)
        self.form.kind_combo.currentIndexChanged.connect(
            lambda _: self._show_error("")
        )  # said of another kind
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
        upload, kits = submission.upload, self._kits_text()
        self._sending = submission.device_ids
        self.message.setText(
            f"Sending {upload.files} images from {upload.folder.name} to {kits} "
            "unless it has them already, then the job…"
            if upload
            else f"Sending the job to {kits}…"
        )
        self._bridge.submit(submission)

    def _kits_text(self) -> str:
        names = self.targets.target().names
        return names[0] if len(names) == 1 else f"{len(names)} kits" if names else self._kit

    def submission(self) -> Submission:
        """What Submit sends, checked against the wire contract, or a `JobInputError` saying what to fix."""
        spec = self.form.spec(self._kit, self._upload)
        upload = self._upload() if self.form.uploads() else None
        cron = self.form.cron()
        first, *others = self.targets.target().device_ids
        request = spec.request(self._key) if cron is None else spec.schedule(spec.schedule_name, cron, "skip")
        return Submission(first, request, upload, tuple(others))

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
        if not self._sending or device_id != self._sending[0] or not self._busy:
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

    @Slot(object)
    def _on_submitted(self, outcomes: list[SubmitOutcome]) -> None:
        if not self._busy or [o.kit.device_id for o in outcomes] != self._sending:
            return
        self._set_busy(False)
        took = [o for o in outcomes if o.job or o.schedule]
        missed = [o for o in outcomes if not (o.job or o.schedule)]
        if took:
            own = next((o for o in took if o.kit.device_id == self._device), took[0])
            self.submitted_info = own.job or own.schedule
        warned = _warnings(took)
        if not missed:
            self.status.emit(_done_text(took) + (f"; {warned[0]}" if warned else ""))
            if not warned:
                self.accept()
                return
        self.message.setText("")
        if not missed:  # queued, but not all as asked: said here until Close (Submit again is the same job)
            self._key = took[0].key
            self._show_error("\n".join([f"{_done_text(took)}, with a warning:", *warned]))
            return
        lines = [
            f"{o.kit.name} did not take the job: {o.message.removeprefix(f'{o.kit.name}: ')}" for o in missed
        ] + warned
        if took:
            # Narrowed to the kits that missed it, under the same key: a kit that took it
            # after all (an answer lost on the way) does not run it twice.
            self._key = missed[0].key
            self.targets.narrow([o.kit.device_id for o in missed], [o.kit.name for o in missed])
            lines.insert(0, f"Sent to {', '.join(o.kit.name for o in took)}.")
            lines.append("Submit sends it to the others only.")
        self._show_error("\n".join(lines))

    @Slot(str, str)
    def _on_failed(self, operation: str, message: str) -> None:
        if operation == "submit job" and self._busy:
            self._set_busy(False)
            self.message.setText("")
            self._show_error(f"{self._kit} did not take the job: {message.removeprefix(f'{self._kit}: ')}")
        elif operation == "job choices":
            self.message.setText(f"Could not read the models and datasets on {self._kit}: {message}")


def _warnings(took: list[SubmitOutcome]) -> list[str]:
    """What the kits said they cannot do as asked (a gate with no sensor behind it)."""
    return [f"{o.kit.name}: {w}" for o in took if o.job for w in o.job.warnings]


def _done_text(took: list[SubmitOutcome]) -> str:
    names = ", ".join(o.kit.name for o in took)
    info = took[0].job or took[0].schedule
    if isinstance(info, ScheduleInfo):
        return f"{names}: schedule “{info.name}” created ({info.cron})"
    return f"{names}: {info.kind if info else 'the'} job queued"
