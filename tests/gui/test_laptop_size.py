"""The window at a field laptop's 1366x768, against a real kit and kits switched off a minute ago:
enough rows of the fleet table and of a kit's job queue show, the key widgets are on screen,
docks stay collapsed until an alert needs them, and chosen columns and splitters are remembered."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QRect, QSettings
from PySide6.QtWidgets import QTableView, QWidget
from pytestqt.qtbot import QtBot

from agent.wire import JobRequest
from app.fleet.inventory import Inventory, Kit
from app.fleet.jobs import async_submit
from app.fleet.localagent import LocalAgent
from app.fleet.service import Fleet
from app.fleet.settings import AppSettings
from app.gui.bridges.fleet_bridge import FleetBridge
from app.gui.dialogs.prompts import Prompts
from app.gui.main_window import MainWindow
from app.gui.ops_window import STATE_FILE
from app.gui.tables.kit_row import COLUMNS
from app.gui.window_layout import LAPTOP
from tests.gui.job_windows import DIGITS
from tests.gui.kits import adopt, deploy
from tests.gui.windows import WAIT_MS, open_window, wait_status

NOTES_SCREENS = Path("/work/notes/screens")
AWAY = 9  # kits in the inventory that were switched off a minute ago
QUEUED = 7


def queue_jobs(settings: AppSettings, count: int) -> None:
    """Benchmarks that wait an hour before they may start: a full queue that costs the kit nothing."""

    async def send() -> None:
        fleet = Fleet(settings)
        try:
            for number in range(count):
                job = JobRequest(
                    kind="benchmark",
                    params={"model": "digits-cnn", "runs": 1},
                    not_before=time.time() + 3600,
                    label=f"overnight benchmark {number + 1}",
                )
                [outcome] = await async_submit(fleet, fleet.inventory.kits(), job)
                assert outcome.ok, outcome.message
        finally:
            fleet.close()

    asyncio.run(send())


def away_kits(settings: AppSettings, count: int) -> None:
    """Adopted kits that were seen a minute ago and are now switched off (nothing listens there)."""
    inventory = Inventory(settings.home)
    try:
        pem = inventory.kits()[0].cert_pem  # a real certificate; nothing answers at their port anyway
        for number in range(count):
            inventory.save(
                Kit(
                    device_id=f"{number:02x}" * 32,
                    name=f"field-kit-{number + 1:02d}",
                    host="127.0.0.1",
                    port=9,  # discard: closed on loopback, so the poll is refused at once
                    cert_pem=pem,
                    kit_model="Rugged server R2",
                    adopted_at=time.time() - 86400,
                    last_seen_at=time.time() - 60,
                )
            )
    finally:
        inventory.db.close()


def full_rows(table: QTableView) -> int:
    """Rows wholly inside the table's viewport."""
    height, model = table.viewport().height(), table.model()
    return sum(
        (rect := table.visualRect(model.index(row, 0))).top() >= 0 and rect.bottom() < height
        for row in range(model.rowCount())
    )


def on_screen(window: QWidget, widget: QWidget) -> None:
    assert widget.isVisible(), widget
    assert widget.width() > 0, widget
    assert widget.height() > 0, widget
    place = QRect(widget.mapTo(window, widget.rect().topLeft()), widget.size())
    assert window.rect().contains(place), (widget, place, window.rect())


def save_picture(window: QWidget, screenshots: Path, name: str) -> None:
    picture = screenshots / name
    assert window.grab().save(str(picture))
    NOTES_SCREENS.mkdir(parents=True, exist_ok=True)
    shutil.copy(picture, NOTES_SCREENS / name)


def test_the_window_works_at_1366x768_and_remembers_its_columns(
    qtbot: QtBot,
    settings: AppSettings,
    bridge: FleetBridge,
    start_agent: Callable[[str], LocalAgent],
    screenshots: Path,
) -> None:
    [device] = adopt(settings, start_agent("laptop-kit"))
    deploy(settings, DIGITS)
    queue_jobs(settings, QUEUED)
    away_kits(settings, AWAY)
    window = open_window(qtbot, bridge, Prompts())
    assert (window.width(), window.height()) == LAPTOP  # its size by default
    wait_status(qtbot, window, device, "online")
    qtbot.waitUntil(lambda: len(window.model.rows()) == AWAY + 1, timeout=WAIT_MS)
    qtbot.waitUntil(
        lambda: all(r.row_status == "offline" for r in window.model.rows() if r.device_id != device),
        timeout=WAIT_MS,
    )
    window.select_device(device)
    jobs = window.tabs.jobs
    window.tabs.setCurrentWidget(jobs)
    qtbot.waitUntil(lambda: jobs.model.rowCount() == QUEUED, timeout=WAIT_MS)
    qtbot.wait(300)  # the deferred column fit
    save_picture(window, screenshots, "laptop-1366x768-jobs.png")

    assert (window.width(), window.height()) == LAPTOP
    assert full_rows(window.table) >= 8, full_rows(window.table)
    assert full_rows(jobs.table) >= 6, full_rows(jobs.table)
    for widget in (window.table, window.tabs, jobs.table, jobs.new_button, jobs.details, window.summary):
        on_screen(window, widget)
    header, kit_model = window.table.horizontalHeader(), COLUMNS.index("Kit model")
    assert not window.table.isColumnHidden(kit_model)
    right = header.sectionViewportPosition(kit_model) + header.sectionSize(kit_model)
    assert right <= window.table.viewport().width(), "Kit model is scrolled off"
    assert window.table.isColumnHidden(COLUMNS.index("Device ID"))  # least used: hidden at first
    assert not window.fleet_ops.alerts_dock.isVisible()  # nothing needs attention
    assert not window.fleet_ops.audit_dock.isVisible()

    window.tabs.setCurrentWidget(window.tabs.models)
    qtbot.waitUntil(lambda: window.tabs.models.model.rowCount() > 0, timeout=WAIT_MS)
    save_picture(window, screenshots, "laptop-1366x768-models.png")

    # the header's menu shows a hidden column; the choice and the splitters outlive the window
    fleet_columns = window.layout_state.columns["fleet"]
    [device_id_entry] = [a for a in fleet_columns.menu().actions() if a.text() == "Device ID"]
    device_id_entry.trigger()
    assert not window.table.isColumnHidden(COLUMNS.index("Device ID"))
    window.splitter.setSizes([200, 500])
    kept = window.splitter.sizes()
    window.close()

    again = FleetBridge(settings)
    try:
        reopened = MainWindow(again, prompts=Prompts())
        qtbot.addWidget(reopened)
        reopened.resize(*LAPTOP)
        reopened.show()
        assert not reopened.table.isColumnHidden(COLUMNS.index("Device ID"))
        assert reopened.table.isColumnHidden(COLUMNS.index("Address"))
        assert abs(reopened.splitter.sizes()[0] - kept[0]) <= 2, (reopened.splitter.sizes(), kept)
        reopened.close()
    finally:
        again.close()


def test_a_layout_saved_before_the_laptop_layout_does_not_reopen_its_docks(
    qtbot: QtBot, settings: AppSettings
) -> None:
    bridge = FleetBridge(settings)
    try:
        first = MainWindow(bridge, prompts=Prompts())
        qtbot.addWidget(first)
        first.show()
        first.fleet_ops.alerts_dock.show()
        first.fleet_ops.audit_dock.show()
        older = first.saveState()  # version 0, as kitfleet saved it before
        first.close()
        saved = QSettings(str(settings.home / STATE_FILE), QSettings.Format.IniFormat)
        saved.setValue("state", older)
        saved.sync()
        second = MainWindow(bridge, prompts=Prompts())
        qtbot.addWidget(second)
        second.show()
        assert not second.fleet_ops.alerts_dock.isVisible()
        assert not second.fleet_ops.audit_dock.isVisible()
        second.close()
    finally:
        bridge.close()
