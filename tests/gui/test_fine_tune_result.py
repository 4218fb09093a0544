"""A fine-tune job's result in the Jobs tab: before/after and the matrix, and Activate serving the
new version on a real kit (which then answers with the new labels)."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pytestqt.qtbot import QtBot

from agent.wire import InferResult, ModelInfo
from app.fleet.jobs import async_submit
from app.fleet.jobspec import JobSpec
from app.fleet.localagent import LocalAgent
from app.fleet.service import Fleet
from app.fleet.settings import AppSettings
from app.gui.bridges.fleet_bridge import FleetBridge
from app.gui.dialogs.prompts import Prompts
from tests.gui.job_windows import JOB_WAIT_MS, kit_with_digits, open_jobs_tab, wait_state
from tests.gui.kits import _with_fleet
from tests.integration.test_fine_tune import SHAPES, draw_shape, shapes_dataset


def submit_fine_tune(settings: AppSettings, dataset: str) -> str:
    async def send(fleet: Fleet) -> str:
        job = JobSpec(kind="fine-tune", params={"model": "digits-cnn", "dataset": dataset}).request()
        [outcome] = await async_submit(fleet, fleet.inventory.kits(), job)
        assert outcome.ok, outcome.message
        assert outcome.job is not None
        return outcome.job.job_id

    return _with_fleet(settings, send)


def digits_versions(settings: AppSettings) -> ModelInfo:
    async def read(fleet: Fleet) -> ModelInfo:
        [kit] = fleet.inventory.kits()
        infos = await fleet.async_call(kit, lambda c: c.models())
        return next(info for info in infos if info.name == "digits-cnn")

    return _with_fleet(settings, read)


def answer_label(settings: AppSettings, picture: bytes) -> str:
    """What the kit's serving digits-cnn names a picture, asked as Try-it asks."""

    async def ask(fleet: Fleet) -> str:
        [kit] = fleet.inventory.kits()
        result = await fleet.async_call(kit, lambda c: c.infer("digits-cnn", picture, "image/png"))
        assert isinstance(result, InferResult)
        assert result.classes
        return result.classes[0].label

    return _with_fleet(settings, ask)


def test_activate_serves_the_fine_tuned_version(
    qtbot: QtBot,
    settings: AppSettings,
    bridge: FleetBridge,
    start_agent: Callable[[str], LocalAgent],
    tmp_path: Path,
) -> None:
    agent = start_agent("tune-kit")
    device = kit_with_digits(settings, agent)
    shapes_dataset(agent.data_dir / "datasets" / "shapes", per_class=10)
    failures: list[tuple[str, str]] = []
    window = open_jobs_tab(qtbot, bridge, Prompts(), device, failures)
    tab = window.tabs.jobs
    job_id = submit_fine_tune(settings, "shapes")
    tab.reload()
    done = wait_state(qtbot, tab, job_id, "done", "failed")
    assert done.state == "done", done.error
    tab.select_job(job_id)
    view = tab.result
    text = view.text.toPlainText()
    assert "before: -  (the backbone has no label for circle, square, triangle" in text
    assert "confusion (rows: actual, columns: predicted)" in text
    assert "installed: digits-cnn 1.0-ft (not active)" in text
    assert view.activate_button.isVisibleTo(view)
    assert view.activate_button.text() == "&Activate digits-cnn 1.0-ft"
    assert digits_versions(settings).active_version == "1.0"

    view.activate_button.click()
    assert not view.activate_button.isEnabled()  # sent once
    qtbot.waitUntil(lambda: digits_versions(settings).active_version == "1.0-ft", timeout=JOB_WAIT_MS)
    assert not failures, failures
    square = io.BytesIO()
    draw_shape("square", np.random.default_rng(5)).save(square, "PNG")
    assert answer_label(settings, square.getvalue()) in SHAPES  # the new labels answer now

    tab.select_job(job_id)  # a job that is not a better fine-tune offers nothing
    view.show_job(done.model_copy(update={"result": {**(done.result or {}), "better": False}}))
    assert not view.activate_button.isVisibleTo(view)
    view.show_job(None)
    assert not view.activate_button.isVisibleTo(view)
