"""The Jobs tab against a real agent: jobs sent from the dialog run on the kit and are followed to the end."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

from PySide6.QtWidgets import QSplitter
from pytestqt.qtbot import QtBot

from app.fleet.jobs import SubmitProgress
from app.fleet.localagent import LocalAgent
from app.fleet.settings import AppSettings
from app.gui.bridges.fleet_bridge import FleetBridge
from app.gui.dialogs.prompts import Prompts
from app.gui.tables.jobs_table import JOB_COLUMNS
from app.gui.tables.models_table import size_text
from app.gui.tabs.jobs_tab import JobsTab
from tests.gui.job_windows import (
    kit_with_digits,
    open_jobs_tab,
    open_new_job,
    small_digits,
    submit,
    wait_state,
)
from tests.gui.windows import WAIT_MS


def cell(tab: JobsTab, job_id: str, column: str) -> str:
    model = tab.model
    return str(model.index(model.position(job_id), JOB_COLUMNS.index(column)).data())


def test_batch_infer_and_benchmark_run_with_logs_saved_results_and_a_chart(
    qtbot: QtBot,
    settings: AppSettings,
    bridge: FleetBridge,
    start_agent: Callable[[str], LocalAgent],
    tmp_path: Path,
    screenshots: Path,
) -> None:
    device = kit_with_digits(settings, start_agent("jobs-kit"))
    images = small_digits(tmp_path / "Few Digits")
    saved, asked = tmp_path / "saved", []

    def confirm(parent: object, question: str, detail: str) -> bool:
        asked.append(question)
        return True

    prompts = Prompts(
        choose_images_folder=lambda parent, start: tmp_path / "Few Digits",
        choose_results_folder=lambda parent, start: saved,
        confirm_removal=confirm,
    )
    failures: list[tuple[str, str]] = []
    window = open_jobs_tab(qtbot, bridge, prompts, device, failures)
    tab = window.tabs.jobs
    progress: list[SubmitProgress] = []
    bridge.jobs.submit_progress.connect(lambda _, step: progress.append(step))
    qtbot.waitUntil(lambda: tab.message.text().startswith("No jobs on jobs-kit yet"), timeout=WAIT_MS)

    # batch inference over a folder of this laptop, uploaded as a dataset first
    dialog = open_new_job(qtbot, tab)
    assert dialog.form.model_combo.currentText() == "digits-cnn 1.0 (serving)"
    dialog.form.set_choice(dialog.form.kind_combo, "batch-infer")
    dialog.form.set_choice(dialog.form.source_combo, "upload")
    dialog.form.local_button.click()
    qtbot.waitUntil(lambda: dialog.upload is not None, timeout=WAIT_MS)
    upload = dialog.upload
    assert upload is not None
    assert upload.name.startswith("few-digits-")
    assert dialog.form.upload_note.text().startswith(
        f"20 images, {size_text(upload.size)}, as dataset {upload.name}"
    )
    dialog.form.label_edit.setText("twenty digits")
    batch = submit(qtbot, tab, dialog)
    assert batch.request.params["dataset"] == upload.name
    sent = [p for p in progress if p.stage == "uploading"]
    assert sent, "an upload reports its progress"
    assert sent[-1].done == sent[-1].total == upload.size, "progress counts the exact stream"
    done = wait_state(qtbot, tab, batch.job_id, "done", "failed")
    assert done.state == "done", done.error
    assert done.result is not None
    assert done.result["images"] == len(images) == 20
    assert cell(tab, batch.job_id, "Job") == "twenty digits"
    assert cell(tab, batch.job_id, "Progress") == "20/20"
    assert "images: 20" in tab.result.text.toPlainText()

    tab.select_job(batch.job_id)
    tab.logs_button.click()
    assert tab.details.currentWidget() is tab.log
    qtbot.waitUntil(lambda: tab.log.title.text().endswith("· finished"), timeout=WAIT_MS)
    log = tab.log.text.toPlainText()
    assert "model digits-cnn 1.0" in log
    assert "20 image(s)" in log

    tab.save_button.click()
    folder = saved / "jobs-kit" / batch.job_id  # where `kitfleet jobs results --out` puts them
    qtbot.waitUntil(lambda: f"Results saved to {folder}" in tab.message.text(), timeout=WAIT_MS)
    assert json.loads((folder / "job.json").read_text())["state"] == "done"
    rows = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]
    assert sorted(r["file"] for r in rows) == sorted(
        str(p.relative_to(tmp_path / "Few Digits")) for p in images
    )
    right = sum(r["classes"][0]["label"] == r["file"].split("/")[0] for r in rows)
    assert right >= 16, f"the digits model named {right} of 20 bundled digits correctly"
    with (folder / "results.csv").open() as table:
        assert len(list(csv.DictReader(table))) == 20

    # the same folder again: the kit has it, so only the job is sent
    dialog = open_new_job(qtbot, tab)
    offered = dialog.form.dataset_combo
    assert [offered.itemData(i) for i in range(offered.count())] == [upload.name]
    dialog.form.set_choice(dialog.form.kind_combo, "batch-infer")
    dialog.form.set_choice(dialog.form.source_combo, "upload")
    dialog.form.local_button.click()
    qtbot.waitUntil(lambda: dialog.upload is not None, timeout=WAIT_MS)
    assert dialog.upload == upload
    progress.clear()
    again = submit(qtbot, tab, dialog)
    assert again.request.params["dataset"] == upload.name
    assert [p.stage for p in progress] == ["submitting", "queued"]
    rerun = wait_state(qtbot, tab, again.job_id, "done", "failed")
    assert rerun.state == "done", rerun.error
    assert rerun.result is not None
    assert rerun.result["images"] == 20

    # a benchmark with two batch sizes and two thread counts, drawn as a chart
    dialog = open_new_job(qtbot, tab)
    dialog.form.set_choice(dialog.form.kind_combo, "benchmark")
    dialog.form.batch_sizes_edit.setText("1, 4")
    dialog.form.bench_threads_edit.setText("1 2")
    dialog.form.runs_spin.setValue(20)
    dialog.form.threads_spin.setValue(2)
    bench = submit(qtbot, tab, dialog)
    finished = wait_state(qtbot, tab, bench.job_id, "done", "failed")
    assert finished.state == "done", finished.error
    qtbot.waitUntil(tab.result.charted, timeout=WAIT_MS)
    assert tab.details.currentWidget() is tab.result
    chart = tab.result.chart.data
    assert chart is not None
    assert chart.groups == (
        "batch 1 · 1 thread",
        "batch 4 · 1 thread",
        "batch 1 · 2 threads",
        "batch 4 · 2 threads",
    )
    assert chart.title == "digits-cnn 1.0 · latency per call (ms)"
    window.resize(1440, 1000)
    splitter = window.centralWidget()
    assert isinstance(splitter, QSplitter)
    splitter.setSizes([220, 780])
    tab.splitter.setSizes([260, 420])
    qtbot.wait(200)
    window.grab().save(str(screenshots / "gui-jobs-tab.png"))

    # collect the batch job: gone from the kit, log and results too
    tab.select_job(batch.job_id)
    tab.delete_button.click()
    qtbot.waitUntil(lambda: tab.model.position(batch.job_id) < 0, timeout=WAIT_MS)
    assert asked == ["Delete the batch-infer job “twenty digits”?"]
    assert failures == []


def test_a_job_waiting_for_its_start_time_is_cancelled(
    qtbot: QtBot,
    settings: AppSettings,
    bridge: FleetBridge,
    start_agent: Callable[[str], LocalAgent],
) -> None:
    device = kit_with_digits(settings, start_agent("waiting-kit"))
    failures: list[tuple[str, str]] = []
    window = open_jobs_tab(qtbot, bridge, Prompts(), device, failures)  # held: qtbot keeps no reference
    tab = window.tabs.jobs

    dialog = open_new_job(qtbot, tab)
    dialog.form.set_choice(dialog.form.kind_combo, "benchmark")
    dialog.form.set_choice(dialog.form.when_combo, "at")  # an hour from now by default
    dialog.form.priority_spin.setValue(5)
    job = submit(qtbot, tab, dialog)
    assert job.state == "queued"
    qtbot.waitUntil(
        lambda: cell(tab, job.job_id, "Waiting / error").startswith("not before "), timeout=WAIT_MS
    )
    assert cell(tab, job.job_id, "Priority") == "5"
    assert tab.cancel_button.isEnabled()
    assert not tab.save_button.isEnabled()

    tab.cancel_button.click()
    wait_state(qtbot, tab, job.job_id, "cancelled")
    qtbot.waitUntil(
        lambda: window.statusBar().currentMessage() == "waiting-kit: job cancelled", timeout=WAIT_MS
    )
    assert not tab.cancel_button.isEnabled()
    assert tab.delete_button.isEnabled()
    assert tab.message.text() == "waiting-kit: 0 running, 0 queued, 1 finished"
    assert failures == []
