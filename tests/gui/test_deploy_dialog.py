"""The Deploy dialog sends one package to several kits; a stopped kit fails alone."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtWidgets import QMessageBox
from pytestqt.qtbot import QtBot

from app.fleet.localagent import LocalAgent
from app.fleet.settings import AppSettings
from app.gui.bridges.fleet_bridge import FleetBridge
from app.gui.dialogs.prompts import Prompts
from tests import inspection_models as im
from tests.gui.kits import adopt
from tests.gui.onnx_files import classifier_versions
from tests.gui.windows import WAIT_MS, choose_package, open_deploy, open_window, wait_status


def test_one_kit_succeeds_while_the_stopped_one_fails(
    qtbot: QtBot,
    settings: AppSettings,
    bridge: FleetBridge,
    start_agent: Callable[[str], LocalAgent],
    tmp_path: Path,
    screenshots: Path,
) -> None:
    running, stopped = start_agent("kit-north"), start_agent("kit-south")
    good, gone = adopt(settings, running, stopped)
    stopped.stop()
    [model] = classifier_versions(tmp_path, "1")
    window = open_window(qtbot, bridge, Prompts(choose_model=lambda parent, start: model))
    wait_status(qtbot, window, good, "online")
    wait_status(qtbot, window, gone, "offline")

    dialog = open_deploy(window)
    assert dialog.kits.checked() == [good]  # online kits come ticked
    assert not dialog.deploy_button.isEnabled()  # nothing chosen yet
    choose_package(qtbot, dialog)
    dialog.kits.set_checked(gone, True)
    percents: list[int] = []
    dialog.kits.bar(good).valueChanged.connect(percents.append)
    with qtbot.waitSignal(bridge.models.deployed, timeout=WAIT_MS) as finished:
        dialog.deploy_button.click()
        assert not dialog.deploy_button.isEnabled()  # one deploy at a time
    outcomes = {o.kit.device_id: o for o in finished.args[0]}
    assert outcomes[good].ok
    assert not outcomes[gone].ok
    qtbot.waitUntil(lambda: dialog.deploy_button.isEnabled())  # the dialog has the outcome too
    assert dialog.kits.outcome(good) == "tiny 1 active"
    assert "unreachable" in dialog.kits.outcome(gone)
    assert percents[-1] == 100
    assert dialog.kits.bar(good).format() == "done"
    assert dialog.kits.bar(gone).format() == "failed"
    assert dialog.kits.bar(gone).value() < 100
    advice = [o.advice for o in outcomes.values() if o.advice]
    assert dialog.advice.isVisible() == bool(advice)
    assert all(line in dialog.advice.text() for line in advice)
    assert window.statusBar().currentMessage() == "Deployed to 1 of 2 kits"
    dialog.grab().save(str(screenshots / "gui-deploy-dialog.png"))


def test_a_plain_onnx_shows_its_inferred_manifest_and_deploys_as_edited(
    qtbot: QtBot,
    settings: AppSettings,
    bridge: FleetBridge,
    start_agent: Callable[[str], LocalAgent],
    tmp_path: Path,
    screenshots: Path,
) -> None:
    [kit] = adopt(settings, start_agent("kit-field"))
    model = im.yolov8(tmp_path / "yolov8n_v1.0.onnx", size="H", metadata=im.ultralytics_metadata())
    window = open_window(qtbot, bridge, Prompts(choose_model=lambda parent, start: model))
    wait_status(qtbot, window, kit, "online")
    dialog = open_deploy(window)
    choose_package(qtbot, dialog)
    form = dialog.form
    assert form.isVisible()
    assert "inferred from the file" in dialog.package.text()
    assert (form.name.text(), form.task.currentText()) == ("yolov8n_v1-0", "detection")
    assert form.input_size.text() == "32x32"  # the exporter's imgsz: the model leaves it free
    assert form.normalise.currentText() == "unit"
    assert form.letterbox.isChecked()
    assert "Ultralytics" in form.letterbox.toolTip()
    assert "3 names" in form.labels.placeholderText()
    assert "yolov8" in form.notes.text()
    form.name.setText("field-detector")
    form.score_threshold.setValue(0.4)
    dialog.grab().save(str(screenshots / "gui-deploy-inferred.png"))
    with qtbot.waitSignal(bridge.models.deployed, timeout=WAIT_MS) as finished:
        dialog.deploy_button.click()
    [outcome] = finished.args[0]
    assert outcome.ok, outcome.message
    assert outcome.message.startswith("field-detector ")
    assert not model.with_name("yolov8n_v1.0.manifest.json").exists()


def test_an_edit_that_contradicts_the_outputs_is_refused_in_the_dialog(
    qtbot: QtBot, bridge: FleetBridge, tmp_path: Path
) -> None:
    model = im.classifier(tmp_path / "net.onnx")
    window = open_window(qtbot, bridge, Prompts(choose_model=lambda parent, start: model))
    dialog = open_deploy(window)
    with qtbot.waitSignal(bridge.models.package_checked, timeout=WAIT_MS):
        dialog.choose_button.click()
    qtbot.waitUntil(lambda: dialog.form.isVisible())
    assert dialog.form.normalise.currentText() == "imagenet"
    assert not dialog.form.score_threshold.isEnabled()  # a classifier has none
    dialog.form.task.setCurrentText("detection")
    with qtbot.waitSignal(bridge.failed, timeout=WAIT_MS):
        dialog.form.recheck_button.click()
    qtbot.waitUntil(lambda: "does not fit" in dialog.package.text())
    assert "expected a detector's outputs" in dialog.package.text()
    assert not dialog.deploy_button.isEnabled()
    dialog.form.input_size.setText("big")
    dialog.form.recheck_button.click()
    assert "HEIGHTxWIDTH" in dialog.package.text()


def test_a_file_that_is_not_onnx_is_refused_before_sending(
    qtbot: QtBot,
    bridge: FleetBridge,
    tmp_path: Path,
) -> None:
    model = tmp_path / "notes.onnx"
    model.write_text("not a model\n")
    window = open_window(qtbot, bridge, Prompts(choose_model=lambda parent, start: model))
    dialog = open_deploy(window)
    with qtbot.waitSignal(bridge.failed, timeout=WAIT_MS):
        dialog.choose_button.click()
    qtbot.waitUntil(lambda: "is not an ONNX model" in dialog.package.text())
    assert not dialog.deploy_button.isEnabled()
    assert not dialog.form.isVisible()
    assert window.findChildren(QMessageBox) == []  # said in the dialog, not in another window
    assert dialog.kits_label.text().startswith("No adopted kits yet")
