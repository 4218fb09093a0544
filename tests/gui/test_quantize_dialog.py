"""The Quantize dialog: INT8 made off the GUI thread, written beside a manifest, report shown."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from pytestqt.qtbot import QtBot

from app.fleet import quantize
from app.fleet.models import load_package
from app.gui.bridges.fleet_bridge import FleetBridge
from app.gui.dialogs.prompts import Prompts
from app.gui.dialogs.quantize_dialog import QuantizeDialog
from tests.onnx_models import classifier


def calibration_images(folder: Path, count: int = 8) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(3)
    for i in range(count):
        pixels = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.png")
    return folder


def test_static_quantization_writes_the_model_and_shows_the_report(
    qtbot: QtBot,
    bridge: FleetBridge,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    screenshots: Path,
) -> None:
    source = tmp_path / "tiny.onnx"
    classifier(source, size=16)
    images = calibration_images(tmp_path / "calibration")
    threads: list[threading.Thread] = []
    original = quantize.quantize_model

    def quantize_model(*args: Any, **kwargs: Any) -> quantize.QuantizeResult:
        threads.append(threading.current_thread())
        return original(*args, **kwargs)

    monkeypatch.setattr(quantize, "quantize_model", quantize_model)  # the bridge imports it when used
    bridge.start()
    dialog = QuantizeDialog(
        bridge.models,
        Prompts(choose_model=lambda parent, start: source, choose_folder=lambda parent, start: images),
    )
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.source_button.click()
    models = bridge.settings.models_dir
    assert dialog.output_edit.text() == str(models / "tiny-int8.onnx")  # not beside the source
    assert dialog.mode == "static"
    assert not dialog.run_button.isEnabled()  # static mode needs its calibration images
    dialog.calibration_button.click()
    dialog.run_button.click()
    assert dialog.busy.isVisible()
    assert not dialog.run_button.isEnabled()
    qtbot.waitUntil(dialog.run_button.isEnabled, timeout=60_000)
    assert threads
    assert threads[0] is not threading.main_thread()

    output = models / "tiny-int8.onnx"
    assert load_package(output).precision == "int8"  # a package ready to deploy
    assert not (tmp_path / "tiny-int8.onnx").exists()
    report = dialog.report.toPlainText()
    assert report.startswith(f"Wrote {output} (static INT8, opset 13 → ")
    assert "8 calibration images" in report
    assert "FP32 tiny.onnx" in report
    assert "INT8 tiny-int8.onnx" in report
    assert "latency p50" in report
    advice = report.splitlines()[-1]  # the same recommendation the CLI prints, from the same figures
    assert advice == dialog_result(dialog).report.recommendation().text()
    assert advice.startswith("Recommendation: ")
    assert "ready" not in report
    assert dialog.busy.isHidden()
    assert dialog.run_button.isEnabled()
    dialog.grab().save(str(screenshots / "gui-quantize-dialog.png"))


def dialog_result(dialog: QuantizeDialog) -> quantize.QuantizeResult:
    assert dialog.last_result is not None
    return dialog.last_result


def test_the_output_goes_to_the_models_folder_until_another_place_is_chosen(
    qtbot: QtBot, bridge: FleetBridge, tmp_path: Path
) -> None:
    source, elsewhere = tmp_path / "usb" / "net.onnx", tmp_path / "mine" / "net-small.onnx"
    source.parent.mkdir()
    classifier(source, size=16)
    dialog = QuantizeDialog(
        bridge.models,
        Prompts(choose_model=lambda parent, start: source, choose_output=lambda parent, start: elsewhere),
    )
    qtbot.addWidget(dialog)
    models = bridge.settings.models_dir

    dialog.source_button.click()
    assert dialog.output_edit.text() == str(models / "net-int8.onnx")
    dialog.set_mode("fp16")
    assert dialog.output_edit.text() == str(models / "net-fp16.onnx")
    dialog.output_button.click()
    assert dialog.output_edit.text() == str(elsewhere)
    dialog.set_mode("dynamic")  # a chosen place is kept when the mode changes
    assert dialog.output_edit.text() == str(elsewhere)


def test_fp16_from_the_dialog_writes_an_fp16_package(
    qtbot: QtBot, bridge: FleetBridge, tmp_path: Path
) -> None:
    source = tmp_path / "tiny.onnx"
    classifier(source, size=16)
    bridge.start()
    dialog = QuantizeDialog(bridge.models, Prompts(choose_model=lambda parent, start: source))
    qtbot.addWidget(dialog)
    dialog.source_button.click()
    dialog.set_mode("fp16")
    dialog.run_button.click()
    qtbot.waitUntil(lambda: dialog.last_result is not None, timeout=60_000)

    output = bridge.settings.models_dir / "tiny-fp16.onnx"
    assert load_package(output).precision == "fp16"
    report = dialog.report.toPlainText()
    assert report.startswith(f"Wrote {output} (FP16, opset 13")
    assert "FP16 vs FP32" in report
    assert report.splitlines()[-1].startswith("Recommendation: ")


def test_a_refused_input_is_explained_in_the_dialog(
    qtbot: QtBot,
    bridge: FleetBridge,
    tmp_path: Path,
) -> None:
    source = tmp_path / "not-a-model.onnx"
    source.write_text("hello")
    bridge.start()
    dialog = QuantizeDialog(bridge.models, Prompts(choose_model=lambda parent, start: source))
    qtbot.addWidget(dialog)
    dialog.source_button.click()
    dialog.set_mode("dynamic")
    assert dialog.run_button.isEnabled()  # no images needed
    dialog.run_button.click()
    qtbot.waitUntil(dialog.run_button.isEnabled, timeout=10_000)
    assert dialog.report.toPlainText().startswith("Quantization failed: ")
    assert "is not an ONNX model" in dialog.report.toPlainText()
    assert dialog.run_button.isEnabled()
