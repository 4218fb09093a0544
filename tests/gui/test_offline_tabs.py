"""A kit that is stopped keeps its models and jobs in the Models, Jobs and Try-it tabs: last known,
greyed, with their age, in this window and in the next one started while the kit is still off."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from pytestqt.qtbot import QtBot

from app.fleet.localagent import LocalAgent
from app.fleet.settings import AppSettings
from app.gui.bridges.fleet_bridge import FleetBridge
from app.gui.dialogs.prompts import Prompts
from app.gui.main_window import MainWindow
from app.gui.tables.rows import STALE_COLOUR
from app.gui.window_layout import LAPTOP
from tests.gui.job_windows import DIGITS
from tests.gui.kits import adopt, deploy
from tests.gui.test_laptop_size import queue_jobs, save_picture
from tests.gui.windows import WAIT_MS, open_window, wait_status

QUEUED = 3


def greyed(model: object) -> bool:
    index = model.index(0, 0)  # type: ignore[attr-defined]
    colour = index.data(Qt.ItemDataRole.ForegroundRole)
    return isinstance(colour, QColor) and colour.name() == STALE_COLOUR


def shows_last_known(qtbot: QtBot, window: MainWindow, device: str) -> None:
    """Every tab that reads the kit shows what it last said, greyed, and says how old that is."""
    window.select_device(device)
    tabs = window.tabs
    qtbot.waitUntil(lambda: tabs.models.model.rowCount() == 1, timeout=WAIT_MS)
    assert tabs.models.model.row_at(0).key == ("digits-cnn", "1.0")
    assert greyed(tabs.models.model)
    assert "is not online: greyed below are the models it held" in tabs.models.message.text()
    assert " ago (last known)" in tabs.models.message.text()
    assert not tabs.models.activate_button.isEnabled()

    tabs.setCurrentWidget(tabs.jobs)
    qtbot.waitUntil(lambda: tabs.jobs.model.rowCount() == QUEUED, timeout=WAIT_MS)
    assert greyed(tabs.jobs.model)
    assert {j.label for j in tabs.jobs.model.rows()} == {f"overnight benchmark {n}" for n in (1, 2, 3)}
    assert "greyed below is its queue as it was" in tabs.jobs.message.text()
    assert not tabs.jobs.new_button.isEnabled()

    tabs.setCurrentWidget(tabs.try_it)
    assert tabs.try_it.model_combo.currentText() == "digits-cnn 1.0 (serving)"
    assert "is not online: the models listed are those it held" in tabs.try_it.note.text()
    assert "Run needs the kit online" in tabs.try_it.note.text()
    assert not tabs.try_it.run_button.isEnabled()


def test_a_stopped_kit_shows_its_last_known_models_and_jobs(
    qtbot: QtBot,
    settings: AppSettings,
    bridge: FleetBridge,
    start_agent: Callable[[str], LocalAgent],
    screenshots: Path,
) -> None:
    (settings.home / "settings.json").write_text(json.dumps({"alerts": {"offline_warn_min": 0}}))
    agent = start_agent("away-kit")
    [device] = adopt(settings, agent)
    deploy(settings, DIGITS)
    queue_jobs(settings, QUEUED)
    window = open_window(qtbot, bridge, Prompts())
    window.resize(*LAPTOP)
    wait_status(qtbot, window, device, "online")
    window.select_device(device)

    def polled() -> None:
        row = window.model.row(device)
        assert row is not None
        assert row.view is not None
        assert row.view.snapshot is not None
        assert len(row.view.snapshot.jobs) == QUEUED

    qtbot.waitUntil(polled, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: window.tabs.models.model.rowCount() == 1, timeout=WAIT_MS)
    assert not greyed(window.tabs.models.model)  # live
    assert not window.fleet_ops.alerts_dock.isVisible()

    agent.stop()
    wait_status(qtbot, window, device, "offline")
    shows_last_known(qtbot, window, device)
    # the kit away is an alert: the collapsed Alerts dock opens for it
    qtbot.waitUntil(lambda: window.fleet_ops.alerts_dock.isVisible(), timeout=WAIT_MS)
    window.tabs.setCurrentWidget(window.tabs.jobs)
    save_picture(window, screenshots, "offline-kit-jobs.png")
    window.tabs.setCurrentWidget(window.tabs.models)
    save_picture(window, screenshots, "offline-kit-models.png")
    window.close()
    bridge.close()

    # the next start, the kit still off: the inventory remembers
    later = FleetBridge(settings, poll_interval=1.0)
    try:
        reopened = open_window(qtbot, later, Prompts())
        wait_status(qtbot, reopened, device, "offline")
        shows_last_known(qtbot, reopened, device)
        reopened.close()
    finally:
        later.close()
