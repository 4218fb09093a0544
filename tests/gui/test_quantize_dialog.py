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
from app.gui.bridges import models_bridge
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

    def quantize_model(*args: Any, **kwargs: Any) -> quantize.QuantizeResult:
        threads.append(threading.current_thread())
        return quantize.quantize_model(*args, **kwargs)

    monkeypatch.setattr(models_bridge, "quantize_model", quantize_model)
    bridge.start()
    dialog = QuantizeDialog(
        bridge.models,
        Prompts(choose_model=lambda parent, start: source, choose_folder=lambda parent, start: images),
    )
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.source_button.click()
    assert dialog.output_edit.text() == str(tmp_path / "tiny-int8.onnx")
    assert dialog.mode == "static"
    assert not dialog.run_button.isEnabled()  # static mode needs its calibration images
    dialog.calibration_button.click()
    dialog.run_button.click()
    assert dialog.busy.isVisible()
    assert not dialog.run_button.isEnabled()
    qtbot.waitUntil(dialog.run_button.isEnabled, timeout=60_000)
    assert threads
    assert threads[0] is not threading.main_thread()

    output = tmp_path / "tiny-int8.onnx"
    assert load_package(output).precision == "int8"  # a package ready to deploy
    report = dialog.report.toPlainText()
    assert report.startswith(f"Wrote {output} (static INT8, opset 13 → ")
    assert "8 calibration images" in report
    assert "FP32 tiny.onnx" in report
    assert "INT8 tiny-int8.onnx" in report
    assert "latency p50" in report
    assert dialog.busy.isHidden()
    assert dialog.run_button.isEnabled()
    dialog.grab().save(str(screenshots / "gui-quantize-dialog.png"))


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
