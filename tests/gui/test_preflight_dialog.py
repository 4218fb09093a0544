"""Fleet > Pre-flight in the window, offscreen, against real agents: one row per kit, a cell per check."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from PySide6.QtWidgets import QTableWidgetItem
from pytestqt.qtbot import QtBot

from app.fleet.localagent import LocalAgent
from app.fleet.settings import AppSettings
from app.gui.bridges.fleet_bridge import FleetBridge
from app.gui.dialogs.preflight_dialog import PreflightDialog
from app.gui.dialogs.prompts import Prompts
from tests.gui.kits import adopt
from tests.gui.windows import WAIT_MS, open_window


def test_preflight_table_shows_each_kit_and_the_failing_check(
    qtbot: QtBot,
    bridge: FleetBridge,
    settings: AppSettings,
    start_agent: Callable[[str], LocalAgent],
    tmp_path: Path,
) -> None:
    (tmp_path / "skewed").mkdir()
    (tmp_path / "skewed" / "agent.json").write_text(
        json.dumps({"test_clock_offset_s": -300, "clock_control": "test-offset"})
    )
    adopt(settings, start_agent("steady"), start_agent("skewed"))
    window = open_window(qtbot, bridge, Prompts())
    qtbot.waitUntil(lambda: len(window.model.rows()) == 2, timeout=WAIT_MS)
    window.preflight_action.trigger()
    dialog = window.findChild(PreflightDialog)
    assert dialog is not None
    qtbot.waitUntil(lambda: dialog.table.rowCount() == 2, timeout=120_000)
    table = dialog.table
    headers = [_item(table.horizontalHeaderItem(c)).text() for c in range(table.columnCount())]
    clock = headers.index("clock")
    cells = {_item(table.item(r, 0)).text().split(":")[0]: _item(table.item(r, clock)) for r in range(2)}
    assert cells["steady"].text() == "ok"
    assert cells["skewed"].text() == "FAIL"
    assert "behind" in cells["skewed"].toolTip()
    assert "timedatectl" in cells["skewed"].toolTip()
    assert "1 of 2 kit(s) ready" in dialog.summary.text()
    # Set clocks: only the skewed kit's, through its agent (its own offset here), then checked again
    assert dialog.set_clocks.isEnabled()
    with qtbot.wait_signal(bridge.fleet_ops.clocks_set, timeout=WAIT_MS) as said:
        dialog.set_clocks.click()
    [line] = said.args[0]
    assert line.startswith("skewed: clock moved +")
    qtbot.waitUntil(lambda: "2 of 2 kit(s) ready" in dialog.summary.text(), timeout=120_000)
    assert not dialog.set_clocks.isEnabled()


def _item(item: QTableWidgetItem | None) -> QTableWidgetItem:
    assert item is not None
    return item
