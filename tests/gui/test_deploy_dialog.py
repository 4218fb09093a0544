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


def test_a_model_without_its_manifest_is_refused_before_sending(
    qtbot: QtBot,
    bridge: FleetBridge,
    tmp_path: Path,
) -> None:
    [model] = classifier_versions(tmp_path, "1")
    model.with_name("tiny.manifest.json").unlink()
    window = open_window(qtbot, bridge, Prompts(choose_model=lambda parent, start: model))
    dialog = open_deploy(window)
    with qtbot.waitSignal(bridge.failed, timeout=WAIT_MS):
        dialog.choose_button.click()
    qtbot.waitUntil(lambda: "has no manifest" in dialog.package.text())
    assert not dialog.deploy_button.isEnabled()
    assert window.findChildren(QMessageBox) == []  # said in the dialog, not in another window
    assert dialog.kits_label.text().startswith("No adopted kits yet")
