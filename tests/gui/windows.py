"""Open the main window on a bridge and wait for kits, as the model and deploy tests need."""

from __future__ import annotations

from pytestqt.qtbot import QtBot

from app.gui.bridges.fleet_bridge import FleetBridge
from app.gui.dialogs.deploy_dialog import DeployDialog
from app.gui.dialogs.prompts import Prompts
from app.gui.main_window import MainWindow

WAIT_MS = 20_000


def open_window(qtbot: QtBot, bridge: FleetBridge, prompts: Prompts) -> MainWindow:
    window = MainWindow(bridge, prompts=prompts)
    qtbot.addWidget(window)
    window.show()
    bridge.start()
    return window


def wait_status(qtbot: QtBot, window: MainWindow, device_id: str, status: str) -> None:
    def reached() -> None:
        row = window.model.row(device_id)
        assert row is not None
        assert row.row_status == status

    qtbot.waitUntil(reached, timeout=WAIT_MS)


def open_deploy(window: MainWindow) -> DeployDialog:
    window.deploy_action.trigger()
    dialog = window.model_actions.deploy_dialog
    assert dialog is not None
    assert dialog.isVisible()
    return dialog


def choose_package(qtbot: QtBot, dialog: DeployDialog) -> None:
    """Press Choose (the prompt is replaced) and wait for the manifest to be checked."""
    dialog.choose_button.click()
    qtbot.waitUntil(lambda: dialog.deploy_button.isEnabled(), timeout=WAIT_MS)
