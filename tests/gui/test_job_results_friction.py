"""The Jobs tab on a real kit (issue 20): an evaluation's result as a per-label table with the
pairs its model confuses (item 8), and a job gated on sensors the kit lacks said to be so, in the
New Job dialog and on the job (item 13)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import psutil

from pytestqt.qtbot import QtBot

from agent.wire import JobInfo, JobRequest
from app.fleet.localagent import LocalAgent
from app.fleet.settings import AppSettings
from app.gui.bridges.fleet_bridge import FleetBridge
from app.gui.dialogs.prompts import Prompts
from resources import datasets_dir
from tests.gui.job_windows import kit_with_digits, open_jobs_tab, open_new_job, submit, wait_state
from tests.gui.windows import WAIT_MS


def misfiled_digits(folder: Path) -> Path:
    """Two images of each digit, and two 3s filed under 8: the model confuses 8 with 3."""
    source = datasets_dir() / "digits-eval"
    for label in sorted(p for p in source.iterdir() if p.is_dir()):
        (folder / label.name).mkdir(parents=True)
        for image in sorted(label.glob("*.png"))[:2]:
            shutil.copy(image, folder / label.name / image.name)
    for n, image in enumerate(sorted((source / "3").glob("*.png"))[-2:]):
        shutil.copy(image, folder / "8" / f"misfiled-{n}.png")
    return folder


def test_an_evaluation_shows_a_label_table_and_its_confusions(
    qtbot: QtBot,
    settings: AppSettings,
    bridge: FleetBridge,
    start_agent: Callable[[str], LocalAgent],
    tmp_path: Path,
    screenshots: Path,
) -> None:
    device = kit_with_digits(settings, start_agent("eval-kit"))
    labelled = misfiled_digits(tmp_path / "labelled")
    failures: list[tuple[str, str]] = []
    window = open_jobs_tab(
        qtbot, bridge, Prompts(choose_images_folder=lambda parent, start: labelled), device, failures
    )
    tab = window.tabs.jobs
    dialog = open_new_job(qtbot, tab)
    dialog.form.set_choice(dialog.form.kind_combo, "evaluate")
    dialog.form.set_choice(dialog.form.source_combo, "upload")
    dialog.form.local_button.click()
    qtbot.waitUntil(lambda: dialog.upload is not None, timeout=WAIT_MS)
    job = submit(qtbot, tab, dialog)
    done = wait_state(qtbot, tab, job.job_id, "done", "failed")
    assert done.state == "done", done.error
    tab.select_job(job.job_id)
    qtbot.waitUntil(lambda: "precision" in tab.result.text.toPlainText(), timeout=WAIT_MS)
    text = tab.result.text.toPlainText()
    # before: "per_label: {"0": {"images": 2, "top1_accuracy": 1.0}, ...}" as one JSON line
    assert "per_label" not in text
    assert "label  precision   recall  images  predicted" in text
    assert "most confused (actual → predicted):" in text
    assert "  8 → 3: " in text
    window.grab().save(str(screenshots / "gui-jobs-evaluate-table.png"))
    assert not failures


def test_gates_the_kit_cannot_keep_are_said_at_submit_and_on_the_job(
    qtbot: QtBot,
    settings: AppSettings,
    bridge: FleetBridge,
    start_agent: Callable[[str], LocalAgent],
    screenshots: Path,
) -> None:
    device = kit_with_digits(settings, start_agent("gate-kit"))
    # what this machine can read decides what the kit (on it) must warn of
    no_battery = psutil.sensors_battery() is None
    no_thermal = not any(psutil.sensors_temperatures().values())
    failures: list[tuple[str, str]] = []
    window = open_jobs_tab(qtbot, bridge, Prompts(), device, failures)
    tab = window.tabs.jobs
    dialog = open_new_job(qtbot, tab)
    form = dialog.form
    form.set_choice(form.kind_combo, "stream")  # a folder is a backlog unless said to be a camera
    form.stream_source_edit.setText("incoming")
    request = dialog.submission().request
    assert isinstance(request, JobRequest)
    assert "live" not in request.params
    form.stream_live_box.setChecked(True)
    request = dialog.submission().request
    assert isinstance(request, JobRequest)
    assert request.params["live"] is True
    form.set_choice(form.kind_combo, "benchmark")
    form.runs_spin.setValue(3)
    form.battery_spin.setValue(50)
    form.temperature_spin.setValue(80)
    dialog.submit_button.click()
    expected = [no_battery, no_thermal].count(True)
    if expected:  # before: the dialog closed as for any job, and the job ran ungated, unsaid
        qtbot.waitUntil(lambda: "gate not enforceable" in dialog.error.text(), timeout=WAIT_MS)
        said = dialog.error.text()
        assert said.startswith("gate-kit: benchmark job queued, with a warning:")
        assert said.count("gate not enforceable") == expected
        assert ("reports no battery" in said) == no_battery
        assert ("no temperature sensor" in said) == no_thermal
        dialog.grab().save(str(screenshots / "gui-new-job-gate-warning.png"))
        dialog.buttons.rejected.emit()  # Close
    qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=WAIT_MS)
    info = dialog.submitted_info
    assert isinstance(info, JobInfo)
    done = wait_state(qtbot, tab, info.job_id, "done", "failed")
    assert done.state == "done", done.error  # the gates held nothing back
    tab.select_job(info.job_id)
    qtbot.waitUntil(lambda: tab.result.charted(), timeout=WAIT_MS)  # a benchmark's chart, and above it:
    assert tab.result.summary.text().count("Warning: gate not enforceable") == expected
    window.grab().save(str(screenshots / "gui-jobs-gate-warning.png"))
    assert not failures
