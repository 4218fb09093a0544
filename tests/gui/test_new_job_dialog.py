"""The New Job dialog against a real agent: mistakes, its own and the kit's, are told in the dialog;
a cron schedule shows its next runs while typed, and is then paused and deleted from the tab."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import psutil

from PySide6.QtWidgets import QMenu
from pytestqt.qtbot import QtBot

from agent.wire import JobInfo, JobRequest, ScheduleInfo
from app.fleet.inventory import Inventory
from app.fleet.jobs import async_each
from app.fleet.localagent import LocalAgent
from app.fleet.service import Fleet
from app.fleet.settings import AppSettings
from app.fleet.snapshot import Tags
from app.gui.bridges.fleet_bridge import FleetBridge
from app.gui.dialogs.new_job_dialog import NewJobDialog
from app.gui.dialogs.prompts import Prompts
from app.gui.tabs.schedules_panel import SchedulesPanel
from resources import models_dir
from tests.gui.job_windows import DIGITS, kit_with_digits, open_jobs_tab, open_new_job
from tests.gui.kits import adopt, deploy
from tests.gui.windows import WAIT_MS

SHAPES = models_dir() / "shapes-yolo-fp32.onnx"


def refused(dialog: NewJobDialog, expected: str) -> None:
    """Submit is refused in the dialog itself: it stays open and says what to fix."""
    dialog.submit_button.click()
    assert expected in dialog.error.text(), dialog.error.text()
    assert dialog.isVisible()
    assert dialog.submitted_info is None


def test_mistakes_are_explained_in_the_dialog_and_nothing_is_queued(
    qtbot: QtBot,
    settings: AppSettings,
    bridge: FleetBridge,
    start_agent: Callable[[str], LocalAgent],
    tmp_path: Path,
    screenshots: Path,
) -> None:
    device = kit_with_digits(settings, start_agent("form-kit"))
    empty = tmp_path / "no-images"
    empty.mkdir()
    failures: list[tuple[str, str]] = []
    window = open_jobs_tab(
        qtbot, bridge, Prompts(choose_images_folder=lambda parent, start: empty), device, failures
    )
    tab = window.tabs.jobs
    dialog = open_new_job(qtbot, tab)

    dialog.form.set_choice(dialog.form.kind_combo, "benchmark")
    dialog.form.batch_sizes_edit.setText("1, x")
    refused(dialog, "Batch sizes '1, x': give whole numbers separated by commas")
    dialog.form.batch_sizes_edit.setText("0")
    refused(dialog, "batch_sizes must be between 1 and 256")  # the wire contract's own check
    dialog.form.batch_sizes_edit.setText(" ")
    refused(dialog, "batch_sizes needs at least 1 value")
    dialog.form.batch_sizes_edit.setText("1")

    dialog.form.set_choice(dialog.form.when_combo, "cron")
    assert dialog.form.cron_hint.text().startswith("Next runs: ")  # the default, 0 2 * * *
    dialog.form.cron_edit.setText("61 * * * *")
    assert dialog.form.cron_hint.text().startswith("Not a usable cron expression")
    assert "0 2 * * *" in dialog.form.cron_hint.text()  # how to write one
    refused(dialog, "Cron: the expression is not usable")
    dialog.form.cron_edit.setText("@daily")
    assert "it has 1 field;" in dialog.form.cron_hint.text()
    refused(dialog, "Cron: the expression is not usable")

    dialog.form.set_choice(dialog.form.when_combo, "now")
    dialog.form.set_choice(dialog.form.kind_combo, "batch-infer")
    dialog.form.set_choice(dialog.form.source_combo, "kit-folder")
    refused(dialog, "Images: enter a folder on the kit")
    dialog.form.set_choice(dialog.form.source_combo, "dataset")
    refused(dialog, "no dataset on this kit yet")
    dialog.form.set_choice(dialog.form.source_combo, "upload")
    refused(dialog, "Images: choose a folder on this laptop")

    dialog.form.local_button.click()  # a folder without images: the upload is refused on the laptop
    qtbot.waitUntil(lambda: "no images" in dialog.form.upload_note.text(), timeout=WAIT_MS)
    refused(dialog, f"Images: no images (.bmp, .jpeg, .jpg, .png, .webp) under {empty}")

    dialog.form.set_choice(dialog.form.source_combo, "kit-folder")
    dialog.form.folder_edit.setText("nowhere")  # the kit is the judge of its own folders
    dialog.submit_button.click()
    qtbot.waitUntil(lambda: "'nowhere' is not a folder on this kit" in dialog.error.text(), timeout=WAIT_MS)
    assert dialog.error.text().startswith("form-kit did not take the job:")
    assert dialog.isVisible()
    assert dialog.submit_button.isEnabled()  # fix it and try again
    dialog.grab().save(str(screenshots / "gui-new-job-refused.png"))

    # the dialog shows the refusal on `submitted_all`; `failed` is a second signal from the
    # bridge's thread, which may reach this thread a moment later
    qtbot.waitUntil(lambda: [op for op, _ in failures] == ["submit job"], timeout=WAIT_MS)
    assert window._error_box is None  # shown in the dialog, not in a window on top
    tab.reload()
    qtbot.waitUntil(lambda: tab.message.text().startswith("No jobs on form-kit yet"), timeout=WAIT_MS)


def test_a_cron_schedule_is_created_paused_and_deleted(
    qtbot: QtBot,
    settings: AppSettings,
    bridge: FleetBridge,
    start_agent: Callable[[str], LocalAgent],
) -> None:
    device = kit_with_digits(settings, start_agent("cron-kit"))
    failures: list[tuple[str, str]] = []
    prompts = Prompts(confirm_removal=lambda parent, question, detail: True)
    window = open_jobs_tab(qtbot, bridge, prompts, device, failures)  # held: qtbot keeps no reference
    tab = window.tabs.jobs
    dialog = open_new_job(qtbot, tab)
    dialog.form.set_choice(dialog.form.kind_combo, "benchmark")
    dialog.form.label_edit.setText("nightly latency")
    dialog.form.set_choice(dialog.form.when_combo, "cron")
    dialog.form.cron_edit.setText("30 3 * * 1-5")
    assert dialog.form.cron_hint.text().startswith("Next runs: ")
    assert dialog.form.cron_hint.text().count("03:30") == 3
    dialog.submit_button.click()
    qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=WAIT_MS)
    made = dialog.submitted_info
    assert isinstance(made, ScheduleInfo)
    assert made.next_run_at is not None
    panel = tab.schedules
    qtbot.waitUntil(lambda: len(panel.schedules()) == 1, timeout=WAIT_MS)
    assert tab.details.currentWidget() is panel
    assert tab.details.tabText(2) == "Schedules (1)"
    name, cron, job, next_run, last_run, state = texts(panel)
    assert (name, cron, job, last_run, state) == (
        "nightly latency",
        "30 3 * * 1-5",
        "benchmark digits-cnn",
        "",
        "active",
    )
    assert next_run.endswith("03:30")

    panel.select(made.schedule_id)
    assert panel.pause_button.text() == "&Pause"
    panel.pause_button.click()
    qtbot.waitUntil(lambda: texts(panel)[-1] == "paused", timeout=WAIT_MS)
    assert texts(panel)[3] == ""  # no next run while paused
    assert panel.pause_button.text() == "&Resume"
    panel.pause_button.click()
    qtbot.waitUntil(lambda: texts(panel)[-1] == "active", timeout=WAIT_MS)

    panel.delete_button.click()
    qtbot.waitUntil(lambda: not panel.schedules(), timeout=WAIT_MS)
    assert failures == []


def texts(panel: SchedulesPanel) -> list[str]:
    items = [panel.table.item(0, column) for column in range(panel.table.columnCount())]
    return [item.text() if item is not None else "" for item in items]


def test_a_job_goes_to_a_tags_kits_with_gates_retries_and_timeout_and_misses_none_twice(
    qtbot: QtBot,
    settings: AppSettings,
    bridge: FleetBridge,
    start_agent: Callable[[str], LocalAgent],
    screenshots: Path,
) -> None:
    north_a, north_b = start_agent("north-a"), start_agent("north-b")
    ids = adopt(settings, north_a, north_b, start_agent("south-c"))
    deploy(settings, DIGITS)
    deploy(settings, SHAPES)
    inventory = Inventory(settings.home)
    try:
        for device, tags in zip(ids, (["north"], ["north", "box 2"], ["south"]), strict=True):
            Tags(inventory).set(device, tags)
    finally:
        inventory.close()
    failures: list[tuple[str, str]] = []
    window = open_jobs_tab(qtbot, bridge, Prompts(), ids[0], failures)
    qtbot.waitUntil(lambda: all((r.view and r.view.tags) for r in window.model.rows()), timeout=60_000)

    # the Live tab offers the kit's deployed detectors, not its classifier
    window.tabs.setCurrentWidget(window.tabs.live)
    live = window.tabs.live.model_combo
    assert [live.itemText(i) for i in range(live.count())] == ["shapes-yolo"]
    # one View entry for the audit log
    view = next(
        m for a in window.menuBar().actions() if isinstance(m := a.menu(), QMenu) and a.text() == "&View"
    )
    assert [a.text() for a in view.actions() if "audit" in a.text().lower()] == ["&Audit Log"]

    window.tabs.setCurrentWidget(window.tabs.jobs)
    dialog = open_new_job(qtbot, window.tabs.jobs)
    targets = dialog.targets.combo
    assert [targets.itemText(i) for i in range(targets.count())] == [
        "only north-a",
        "every kit tagged “box 2” (1 kit)",
        "every kit tagged “north” (2 kits)",
        "every kit tagged “south” (1 kit)",
        "every adopted kit (3 kits)",
    ]
    form = dialog.form
    form.set_choice(form.kind_combo, "stream")
    refused(dialog, "Source: enter a camera")
    form.stream_source_edit.setText("clip.mp4")
    form.stream_loop_box.setChecked(True)
    stream = dialog.submission().request
    assert isinstance(stream, JobRequest)
    assert stream.params.items() >= {"model": "digits-cnn", "source": "clip.mp4", "loop": True}.items()

    form.set_choice(form.kind_combo, "benchmark")
    form.runs_spin.setValue(3)
    form.set_choice(form.when_combo, "at")  # waits an hour: the kits' queues stay still
    dialog.targets.choose("every kit tagged “north”")
    assert dialog.targets.note.text().startswith("north-a, north-b")
    form.timeout_spin.setValue(5)
    form.retries_spin.setValue(2)
    form.battery_spin.setValue(40)
    form.temperature_spin.setValue(85)
    dialog.grab().save(str(screenshots / "gui-new-job-tag.png"))
    north_b.stop()  # away when Submit is pressed
    dialog.submit_button.click()
    qtbot.waitUntil(lambda: "north-b did not take the job" in dialog.error.text(), timeout=60_000)
    assert dialog.error.text().startswith("Sent to north-a.")
    assert dialog.error.text().endswith("Submit sends it to the others only.")
    assert dialog.targets.target().names == ("north-b",)
    first = dialog.submitted_info
    assert isinstance(first, JobInfo)
    request = first.request
    assert (request.timeout_s, request.max_retries) == (300.0, 2)
    assert (request.gates.min_battery_percent, request.gates.max_temperature_c) == (40.0, 85.0)

    north_b.start()  # back: Submit sends the same job (same key) to it alone
    qtbot.waitUntil(
        lambda: (r := window.model.row(ids[1])) is not None and r.row_status == "online", timeout=WAIT_MS
    )
    dialog.submit_button.click()
    if psutil.sensors_battery() is None or not any(psutil.sensors_temperatures().values()):
        # queued, and the dialog stays to say a gate has no sensor behind it on this machine
        qtbot.waitUntil(lambda: "gate not enforceable" in dialog.error.text(), timeout=60_000)
        dialog.buttons.rejected.emit()  # Close
    qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=60_000)
    queued = queues(settings)
    assert [len(queued[name]) for name in ("north-a", "north-b", "south-c")] == [1, 1, 0]
    assert queued["north-a"][0].request.idempotency_key == queued["north-b"][0].request.idempotency_key
    assert queued["north-b"][0].request.gates == request.gates


def queues(settings: AppSettings) -> dict[str, list[JobInfo]]:
    """Each adopted kit's jobs, read apart from the window (as `kitfleet jobs list` does)."""

    async def read() -> dict[str, list[JobInfo]]:
        fleet = Fleet(settings)
        try:
            answers = await async_each(fleet, fleet.inventory.kits(), lambda c: c.jobs(limit=10))
        finally:
            fleet.close()
        return {a.kit.name: list(a.value or []) for a in answers}

    return asyncio.run(read())
