"""The window against a real agent: discovered over mDNS on 127.0.0.1, adopted, seen go away."""

from __future__ import annotations

import platform
import sqlite3
from pathlib import Path

from pytestqt.qtbot import QtBot

from app.fleet.localagent import LocalAgent
from app.fleet.settings import AppSettings
from app.gui.bridges.fleet_bridge import FleetBridge
from app.gui.dialogs.adopt_dialog import AdoptAnswer
from app.gui.dialogs.provision_dialog import ProvisionDialog
from app.gui.main_window import MainWindow
from app.gui.tables.kit_row import KitRow
from tests.gui.kits import adopt
from tests.gui.trees import child_item, child_values, top_items

WAIT_MS = 20_000


def status_of(window: MainWindow, device_id: str) -> str | None:
    row = window.model.row(device_id)
    return row.row_status if row else None


def shown_arch(window: MainWindow) -> str | None:
    cpu = top_items(window.details.tree).get("CPU")
    return child_values(cpu).get("arch") if cpu else None


def test_discover_adopt_show_facts_then_offline(
    qtbot: QtBot,
    bridge: FleetBridge,
    agent: LocalAgent,
    screenshots: Path,
) -> None:
    # By device ID, never by name: any process on this machine may announce on loopback.
    device_id = agent.run_cli("identity").strip()
    code = agent.pair_code()  # read off the kit's console, as a technician would
    prompted: list[str] = []

    def prompt(parent: object, row: KitRow) -> AdoptAnswer:
        prompted.append(row.name)
        return AdoptAnswer(code)

    window = MainWindow(bridge, prompt_code=prompt)
    qtbot.addWidget(window)
    window.show()
    failures: list[tuple[str, str]] = []
    bridge.failed.connect(lambda op, message: failures.append((op, message)))
    bridge.start()

    qtbot.waitUntil(lambda: status_of(window, device_id) == "unadopted", timeout=WAIT_MS)
    window.select_device(device_id)
    assert window.adopt_action.isEnabled()
    assert "not adopted" in window.details.placeholder.text()
    window.grab().save(str(screenshots / "gui-discovered.png"))

    adopted: list[object] = []
    bridge.adopted.connect(adopted.append)
    window.adopt_action.trigger()
    assert prompted == ["gui-kit"]
    qtbot.waitUntil(lambda: bool(adopted or failures), timeout=WAIT_MS)
    assert failures == []

    def shows_live_facts() -> None:
        assert status_of(window, device_id) == "online"
        assert shown_arch(window) == platform.machine()

    qtbot.waitUntil(shows_live_facts, timeout=WAIT_MS)
    assert window.tabs.live.device_id == device_id  # the Live tab follows the selected kit
    assert window.tabs.live.isEnabled()
    window.provision_action.trigger()
    [dialog] = window.findChildren(ProvisionDialog)
    assert dialog.isVisible()
    dialog.close()
    assert not window.adopt_action.isEnabled()
    assert window.details.banner.isHidden()
    online = window.model.row(device_id)
    assert online is not None
    assert online.kit is not None
    assert online.kit.kit_model == "Test kit"
    assert online.families is not None
    assert online.families.cpu is not None
    assert (online.families.cpu.logical_cores or 0) >= 1
    assert online.families.memory is not None
    assert (online.families.memory.total_bytes or 0) > 0
    runtime = top_items(window.details.tree)["Runtime"]
    favoured = child_values(child_item(runtime, "precision by provider"))
    assert favoured["CPUExecutionProvider"] in ("int8", "fp32")
    qtbot.wait(100)  # let the deferred column fit run before the picture
    window.grab().save(str(screenshots / "gui-online.png"))

    agent.stop()
    qtbot.waitUntil(lambda: status_of(window, device_id) == "offline", timeout=WAIT_MS)
    assert window.details.banner.isVisible()
    assert window.details.banner.text().startswith("offline — showing facts from")
    assert shown_arch(window) == platform.machine()
    window.grab().save(str(screenshots / "gui-offline.png"))
    assert failures == []


def test_another_device_announcing_an_adopted_kits_name_is_a_conflict(
    qtbot: QtBot,
    bridge: FleetBridge,
    settings: AppSettings,
    tmp_path: Path,
) -> None:
    """Two real agents announce "twin-kit" on 127.0.0.1; only one is adopted. The other is shown
    as a name conflict, the adopted kit stays where it is, and the other gets no token."""
    real = LocalAgent(tmp_path / "real", "twin-kit", kit_model="Test kit").start()
    other = LocalAgent(tmp_path / "other", "twin-kit", kit_model="Test kit").start()
    try:
        [real_id] = adopt(settings, real)
        other_id = other.run_cli("identity").strip()
        window = MainWindow(bridge)
        qtbot.addWidget(window)
        window.show()
        messages: list[tuple[str, str]] = []
        bridge.failed.connect(lambda operation, message: messages.append((operation, message)))
        bridge.start()
        qtbot.waitUntil(lambda: status_of(window, other_id) == "conflict", timeout=WAIT_MS)
        qtbot.waitUntil(lambda: status_of(window, real_id) == "online", timeout=WAIT_MS)
        kept = window.model.row(real_id)
        assert kept is not None
        assert kept.kit is not None
        assert kept.kit.address == real.address, "the adopted kit is not moved to the other device"
        # the bridge's signals reach this thread queued, one by one: the row's status can show
        # before the message that follows it has arrived
        qtbot.waitUntil(
            lambda: any(op == "discovery" and "conflict" in message for op, message in messages),
            timeout=WAIT_MS,
        )
        window.select_device(other_id)
        assert "announces the name of an adopted kit" in window.details.placeholder.text()
        window.grab().save(str(tmp_path / "conflict.png"))
    finally:
        real.stop()
        other.stop()
    with sqlite3.connect(other.data_dir / "agent.db") as db:
        assert db.execute("SELECT COUNT(*) FROM tokens").fetchone()[0] == 0, "no token reached it"
