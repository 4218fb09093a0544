"""The Models tab against a real agent: versions arrive by the Deploy dialog, then are managed."""

from __future__ import annotations

from pathlib import Path

from pytestqt.qtbot import QtBot

from app.fleet.localagent import LocalAgent
from app.fleet.settings import AppSettings
from app.gui.bridges.fleet_bridge import FleetBridge
from app.gui.dialogs.prompts import DeleteAnswer, Prompts
from app.gui.main_window import MainWindow
from tests.gui.kits import adopt
from tests.gui.onnx_files import classifier_versions
from tests.gui.windows import WAIT_MS, choose_package, open_deploy, open_window, wait_status


def shown(window: MainWindow) -> list[tuple[str, str]]:
    """(version, state) of each row of the Models tab."""
    return [
        (r.version, "serving" if r.active else "previous" if r.previous else "")
        for r in window.tabs.models.model.rows()
    ]


def wait_shown(qtbot: QtBot, window: MainWindow, expected: list[tuple[str, str]]) -> None:
    qtbot.waitUntil(lambda: shown(window) == expected, timeout=WAIT_MS)


def test_deploy_two_versions_then_activate_roll_back_and_delete(
    qtbot: QtBot,
    settings: AppSettings,
    bridge: FleetBridge,
    agent: LocalAgent,
    tmp_path: Path,
    screenshots: Path,
) -> None:
    [device] = adopt(settings, agent)
    v1, v2 = classifier_versions(tmp_path, "1", "2")
    chosen, answers, asked = [v1], ["delete"], []

    def confirm(parent: object, name: str, version: str, serving: bool) -> DeleteAnswer:
        asked.append((name, version, serving))
        return "force" if answers[-1] == "force" else "delete"

    window = open_window(
        qtbot, bridge, Prompts(choose_model=lambda parent, start: chosen[0], confirm_delete=confirm)
    )
    failures: list[tuple[str, str]] = []

    def record(operation: str, message: str) -> None:
        if operation not in ("status", "facts update", "discovery"):  # background polls
            failures.append((operation, message))

    bridge.failed.connect(record)
    wait_status(qtbot, window, device, "online")
    window.select_device(device)
    window.tabs.setCurrentWidget(window.tabs.models)

    dialog = open_deploy(window)
    for model in (v1, v2):
        chosen[0] = model
        choose_package(qtbot, dialog)
        dialog.deploy_button.click()
        qtbot.waitUntil(lambda: dialog.kits.outcome(device).endswith("active"), timeout=WAIT_MS)
    wait_shown(qtbot, window, [("2", "serving"), ("1", "previous")])
    assert failures == []
    assert "tiny 2 · classification · fp32" in dialog.package.text()
    dialog.grab().save(str(screenshots / "gui-deploy-one-kit.png"))
    dialog.close()
    tab = window.tabs.models
    tab.select_version("tiny", "1")
    qtbot.wait(100)  # the deferred column fit, before the picture
    window.grab().save(str(screenshots / "gui-models-tab.png"))

    assert tab.activate_button.isEnabled()
    tab.activate_button.click()
    wait_shown(qtbot, window, [("2", "previous"), ("1", "serving")])
    tab.rollback_button.click()
    wait_shown(qtbot, window, [("2", "serving"), ("1", "previous")])

    tab.select_version("tiny", "2")
    tab.delete_button.click()  # answered "delete": the kit refuses the serving version
    qtbot.waitUntil(lambda: bool(failures), timeout=WAIT_MS)
    assert asked == [("tiny", "2", True)]
    [(operation, message)] = failures
    assert operation == "delete"
    assert "serving version" in message
    assert shown(window) == [("2", "serving"), ("1", "previous")]

    answers.append("force")
    tab.select_version("tiny", "2")
    tab.delete_button.click()
    wait_shown(qtbot, window, [("1", "previous")])  # nothing serves until 1 is activated
    qtbot.waitUntil(lambda: window.statusBar().currentMessage() == "gui-kit: tiny 2 deleted")
