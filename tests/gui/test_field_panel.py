"""Field data in the window, against a real agent: Try-it's Label as… adds the picture to a field
dataset on the kit, the Field data tab counts its classes and labels the inputs a real
batch-infer job kept as unsure, and Fine-tune… submits a fine-tune job."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from PySide6.QtWidgets import QLabel, QTableWidgetItem
from pytestqt.qtbot import QtBot

from agent.wire import JobRequest
from app.fleet.localagent import LocalAgent
from app.fleet.service import Fleet
from app.fleet.settings import AppSettings
from app.gui.bridges.fleet_bridge import FleetBridge
from app.gui.dialogs.prompts import Prompts
from app.gui.main_window import MainWindow
from tests.gui import detector
from tests.gui.kits import adopt, deploy
from tests.gui.onnx_files import classifier_versions
from tests.gui.windows import WAIT_MS, open_window, wait_status


def drawn(folder: Path, count: int, shape: str = "circle", light: int = 255) -> list[Path]:
    """Shapes on noise; dim ones (a low `light`) leave the tiny classifier unsure of its answer."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(shape))
    paths = []
    for n in range(count):
        image = Image.fromarray(rng.integers(0, max(light // 20, 2), (24, 32, 3), dtype=np.uint8))
        draw = ImageDraw.Draw(image)
        (draw.ellipse if shape == "circle" else draw.rectangle)((4 + n, 4, 20, 20), fill=(light,) * 3)
        paths.append(folder / f"{shape}-{n:02d}.png")
        image.save(paths[-1])
    return paths


def field_window(
    qtbot: QtBot,
    settings: AppSettings,
    bridge: FleetBridge,
    agent: LocalAgent,
    tmp_path: Path,
    inputs: list[Path],
) -> tuple[MainWindow, str]:
    [device] = adopt(settings, agent)
    [model] = classifier_versions(tmp_path, "1")
    deploy(settings, model)
    chosen = iter(inputs)
    window = open_window(qtbot, bridge, Prompts(choose_input=lambda parent, start: next(chosen)))
    wait_status(qtbot, window, device, "online")
    window.select_device(device)
    return window, device


def test_label_as_adds_the_tried_picture_and_the_field_tab_counts_it(
    qtbot: QtBot, settings: AppSettings, bridge: FleetBridge, agent: LocalAgent, tmp_path: Path
) -> None:
    pictures = drawn(tmp_path / "pics", 2)
    window, _ = field_window(qtbot, settings, bridge, agent, tmp_path, pictures)
    tabs = window.tabs
    tabs.setCurrentWidget(tabs.try_it)
    bar = tabs.try_it.label_as
    assert not bar.label_button.isEnabled()  # no picture yet
    tabs.try_it.choose_button.click()
    bar.dataset_combo.setCurrentText("yard")
    bar.label_combo.setCurrentText("../up")
    assert not bar.label_button.isEnabled()  # a label that is no folder name is not offered
    bar.label_combo.setCurrentText("circle")
    assert bar.label_button.isEnabled()
    bar.label_button.click()
    qtbot.waitUntil(lambda: bar.result.text().startswith("Added to yard"), timeout=WAIT_MS)
    assert "1 image(s) of circle" in bar.result.text()
    [kept] = (agent.data_dir / "datasets" / "yard" / "circle").iterdir()
    assert kept.read_bytes() == pictures[0].read_bytes()

    tabs.try_it.choose_button.click()
    bar.label_button.click()
    qtbot.waitUntil(lambda: "2 image(s) of circle" in bar.result.text(), timeout=WAIT_MS)

    panel = tabs.field
    tabs.setCurrentWidget(panel)
    qtbot.waitUntil(lambda: panel.total.text() == "2 image(s) in 1 class(es)", timeout=WAIT_MS)
    assert panel.dataset_combo.currentText() == "yard"
    assert [_cell(panel.classes.item(0, c)) for c in (0, 1)] == ["circle", "2"]


def test_the_field_tab_labels_unsure_inputs_and_submits_a_fine_tune(
    qtbot: QtBot, settings: AppSettings, bridge: FleetBridge, agent: LocalAgent, tmp_path: Path
) -> None:
    drawn(agent.data_dir / "datasets" / "seen", 8, "square", light=6)
    window, device = field_window(qtbot, settings, bridge, agent, tmp_path, [])
    fleet = Fleet(settings)
    try:
        kit = fleet.inventory.get(device)
        params = {"model": "tiny", "dataset": "seen", "keep_unsure": {"top_below": 0.9, "max_items": 5}}
        request = JobRequest.model_validate({"kind": "batch-infer", "params": params})
        job, _ = asyncio.run(fleet.async_call(kit, lambda c: c.submit_job(request)))
        qtbot.waitUntil(
            lambda: asyncio.run(fleet.async_call(kit, lambda c: c.job(job.job_id))).state == "done",
            timeout=WAIT_MS,
        )
    finally:
        fleet.close()

    panel = window.tabs.field
    window.tabs.setCurrentWidget(panel)
    panel.refresh_button.click()
    qtbot.waitUntil(lambda: len(panel.unsure_ids()) == 5, timeout=WAIT_MS)  # the buffer's bound
    qtbot.waitUntil(lambda: all(panel.has_picture(i) for i in panel.unsure_ids()), timeout=WAIT_MS)
    first, second = panel.unsure_ids()[:2]
    panel.dataset_combo.setCurrentText("yard")
    panel.unsure.item(0).setSelected(True)
    panel.unsure.item(1).setSelected(True)
    assert not panel.label_button.isEnabled()  # no label typed yet
    panel.unsure_label.setText("square")
    panel.label_button.click()
    qtbot.waitUntil(lambda: len(panel.unsure_ids()) == 3, timeout=WAIT_MS)
    assert first not in panel.unsure_ids()
    assert second not in panel.unsure_ids()
    qtbot.waitUntil(lambda: panel.total.text() == "2 image(s) in 1 class(es)", timeout=WAIT_MS)
    assert len(list((agent.data_dir / "datasets" / "yard" / "square").iterdir())) == 2

    qtbot.waitUntil(lambda: panel._models == ["tiny"], timeout=WAIT_MS)  # the Models list reached it
    panel.fine_tune_button.click()
    dialog = panel.dialog
    assert dialog is not None
    assert dialog.model_combo.currentText() == "tiny"
    dialog.epochs.setValue(30)
    dialog.buttons.accepted.emit()
    qtbot.waitUntil(lambda: "Fine-tune job" in panel.note.text(), timeout=WAIT_MS)
    fleet = Fleet(settings)
    try:
        jobs = asyncio.run(fleet.async_call(fleet.inventory.get(device), lambda c: c.jobs()))
    finally:
        fleet.close()
    tuned = [j for j in jobs if j.kind == "fine-tune"]
    assert len(tuned) == 1
    assert panel.note.text().startswith(f"Fine-tune job {tuned[0].job_id[:8]}")
    sent: dict[str, Any] = dict(tuned[0].request.params)
    assert {k: sent[k] for k in ("model", "dataset", "epochs", "activate")} == {
        "model": "tiny",
        "dataset": "yard",
        "epochs": 30,
        "activate": False,
    }


def _shows(label: QLabel, wanted: str) -> Callable[[], bool]:
    return lambda: wanted in label.text()


def _cell(item: QTableWidgetItem | None) -> str:
    assert item is not None
    return item.text()


def test_from_the_window_two_new_classes_are_labelled_trained_and_answered(
    qtbot: QtBot, settings: AppSettings, bridge: FleetBridge, agent: LocalAgent, tmp_path: Path
) -> None:
    """The issue's "done when": label two new classes in Try-it, fine-tune from the Field data
    tab (activating when better), and Try-it answers with the new labels."""
    circles, squares = drawn(tmp_path / "c", 7, "circle"), drawn(tmp_path / "s", 7, "square")
    window, device = field_window(qtbot, settings, bridge, agent, tmp_path, [*circles, *squares, circles[0]])
    tabs = window.tabs
    tabs.setCurrentWidget(tabs.try_it)
    bar = tabs.try_it.label_as
    bar.dataset_combo.setCurrentText("shapes")
    for shape in ("circle", "square"):
        bar.label_combo.setCurrentText(shape)
        for n in range(1, 8):
            tabs.try_it.choose_button.click()
            bar.label_button.click()
            qtbot.waitUntil(_shows(bar.result, f"{n} image(s) of {shape}"), timeout=WAIT_MS)

    panel = tabs.field
    tabs.setCurrentWidget(panel)
    panel.dataset_combo.setCurrentText("shapes")
    qtbot.waitUntil(lambda: panel.total.text() == "14 image(s) in 2 class(es)", timeout=WAIT_MS)
    qtbot.waitUntil(lambda: panel._models == ["tiny"], timeout=WAIT_MS)
    panel.fine_tune_button.click()
    assert panel.dialog is not None
    panel.dialog.activate.setChecked(True)
    panel.dialog.min_per_class.setValue(3)
    panel.dialog.buttons.accepted.emit()
    qtbot.waitUntil(lambda: "Fine-tune job" in panel.note.text(), timeout=WAIT_MS)

    fleet = Fleet(settings)
    try:
        kit = fleet.inventory.get(device)
        [job] = [j for j in asyncio.run(fleet.async_call(kit, lambda c: c.jobs())) if j.kind == "fine-tune"]
        qtbot.waitUntil(
            lambda: asyncio.run(fleet.async_call(kit, lambda c: c.job(job.job_id))).state != "queued",
            timeout=WAIT_MS,
        )
        qtbot.waitUntil(
            lambda: (
                asyncio.run(fleet.async_call(kit, lambda c: c.job(job.job_id))).state in ("done", "failed")
            ),
            timeout=120_000,
        )
        done = asyncio.run(fleet.async_call(kit, lambda c: c.job(job.job_id)))
    finally:
        fleet.close()
    assert done.state == "done", done.error
    assert done.result is not None
    assert done.result["better"] is True
    assert done.result["installed"]["activated"] is True

    try_it = tabs.try_it
    tabs.setCurrentWidget(try_it)
    try_it.show_row(None)  # the kit chosen again, as a technician would: its models are read anew
    window.select_device(device)
    qtbot.waitUntil(lambda: "(serving)" in try_it.model_combo.itemText(0), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: "-ft (serving)" in try_it.model_combo.itemText(0), timeout=WAIT_MS)
    try_it.select_model("tiny")
    try_it.choose_button.click()
    try_it.run_button.click()
    qtbot.waitUntil(lambda: try_it.results.texts(0) != [], timeout=WAIT_MS)
    assert sorted(try_it.results.texts(0)) == ["circle", "square"]


def test_label_as_keeps_only_the_top_box_of_a_detection_when_asked(
    qtbot: QtBot, settings: AppSettings, bridge: FleetBridge, agent: LocalAgent, tmp_path: Path
) -> None:
    fixed = tmp_path / "shapes" / "shapes-fixed.onnx"
    detector.detector(fixed)
    [device] = adopt(settings, agent)
    deploy(settings, fixed)
    picture = detector.shapes_picture(tmp_path / "shapes.png")
    window = open_window(qtbot, bridge, Prompts(choose_input=lambda parent, start: picture))
    wait_status(qtbot, window, device, "online")
    window.select_device(device)
    try_it = window.tabs.try_it
    window.tabs.setCurrentWidget(try_it)
    qtbot.waitUntil(lambda: try_it.model_combo.count() == 1, timeout=WAIT_MS)
    try_it.choose_button.click()
    bar = try_it.label_as
    assert not bar.crop_check.isEnabled()  # no answer yet, so no box
    try_it.run_button.click()
    qtbot.waitUntil(bar.crop_check.isEnabled, timeout=WAIT_MS)
    top = try_it.picture.detections()[0]
    bar.crop_check.setChecked(True)
    bar.dataset_combo.setCurrentText("boxes")
    bar.label_combo.setCurrentText(top.label)
    bar.label_button.click()
    qtbot.waitUntil(lambda: bar.result.text().startswith("Added to boxes"), timeout=WAIT_MS)
    [kept] = (agent.data_dir / "datasets" / "boxes" / top.label).iterdir()
    x1, y1, x2, y2 = top.box
    with Image.open(kept) as crop:
        assert crop.size == (round(x2) - int(x1), round(y2) - int(y1))
    with Image.open(picture) as whole:
        assert crop.width * crop.height < whole.width * whole.height / 2
