"""A window on a real kit's Jobs tab, with the bundled digits model deployed, and ways to drive it."""

from __future__ import annotations

import shutil
from pathlib import Path

from pytestqt.qtbot import QtBot

from agent.wire import JobInfo
from app.fleet.localagent import LocalAgent
from app.fleet.settings import AppSettings
from app.gui.bridges.fleet_bridge import FleetBridge
from app.gui.dialogs.new_job_dialog import NewJobDialog
from app.gui.dialogs.prompts import Prompts
from app.gui.main_window import MainWindow
from app.gui.tabs.jobs_tab import JobsTab
from resources import datasets_dir, models_dir
from tests.gui.kits import adopt, deploy
from tests.gui.windows import WAIT_MS, open_window, wait_status

DIGITS = models_dir() / "digits-cnn-fp32.onnx"
JOB_WAIT_MS = 60_000
BACKGROUND = ("status", "facts update", "discovery")  # polls that may fail while a kit starts


def kit_with_digits(settings: AppSettings, agent: LocalAgent) -> str:
    """Adopt the kit and deploy the bundled digits model to it, as a technician would first."""
    [device] = adopt(settings, agent)
    deploy(settings, DIGITS)
    return device


def open_jobs_tab(
    qtbot: QtBot, bridge: FleetBridge, prompts: Prompts, device: str, failures: list[tuple[str, str]]
) -> MainWindow:
    """The window with the kit selected and its Jobs tab in front; failures are recorded."""
    window = open_window(qtbot, bridge, prompts)

    def record(operation: str, message: str) -> None:
        if operation not in BACKGROUND:
            failures.append((operation, message))

    bridge.failed.connect(record)
    wait_status(qtbot, window, device, "online")
    window.select_device(device)
    window.tabs.setCurrentWidget(window.tabs.jobs)
    qtbot.waitUntil(lambda: window.tabs.jobs.new_button.isEnabled(), timeout=WAIT_MS)
    return window


def open_new_job(qtbot: QtBot, tab: JobsTab) -> NewJobDialog:
    """Press New job… and wait until the kit's models are offered."""
    tab.new_button.click()
    dialog = tab.new_job_dialog
    assert dialog is not None
    assert dialog.isVisible()
    qtbot.waitUntil(lambda: dialog.form.model_combo.count() > 0, timeout=WAIT_MS)
    return dialog


def submit(qtbot: QtBot, tab: JobsTab, dialog: NewJobDialog) -> JobInfo:
    """Press Submit; the dialog closes and the new job is listed and selected."""
    dialog.submit_button.click()
    qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=JOB_WAIT_MS)
    info = dialog.submitted_info
    assert isinstance(info, JobInfo)
    qtbot.waitUntil(
        lambda: (tab.selected() or info).job_id == info.job_id and tab.model.position(info.job_id) >= 0,
        timeout=WAIT_MS,
    )
    return info


def state_of(tab: JobsTab, job_id: str) -> str | None:
    position = tab.model.position(job_id)
    return tab.model.row_at(position).state if position >= 0 else None


def wait_state(qtbot: QtBot, tab: JobsTab, job_id: str, *states: str) -> JobInfo:
    """Until the table (refreshed by the tab itself) shows the job in one of `states`."""
    qtbot.waitUntil(lambda: state_of(tab, job_id) in states, timeout=JOB_WAIT_MS)
    return tab.model.row_at(tab.model.position(job_id))


def small_digits(folder: Path, per_label: int = 2) -> list[Path]:
    """A few of the bundled labelled digit images, one sub-folder per label as the set has."""
    copied = []
    for label in sorted(p for p in (datasets_dir() / "digits-eval").iterdir() if p.is_dir()):
        (folder / label.name).mkdir(parents=True)
        for image in sorted(label.glob("*.png"))[:per_label]:
            copied.append(Path(shutil.copy(image, folder / label.name / image.name)))
    return copied
