"""The window against a real agent: discovered over mDNS on 127.0.0.1, adopted, seen go away."""

from __future__ import annotations

import platform
from pathlib import Path

from pytestqt.qtbot import QtBot

from app.fleet.localagent import LocalAgent
from app.gui.bridge import FleetBridge
from app.gui.kit_row import KitRow
from app.gui.main_window import MainWindow
from app.gui.provision_dialog import ProvisionDialog
from tests.gui.trees import child_values, top_items

WAIT_MS = 20_000


def status_of(window: MainWindow, device_id: str) -> str | None:
    row = window.model.row(device_id)
    return row.row_status if row else None


def shown_arch(window: MainWindow) -> str | None:
    cpu = top_items(window.details.tree).get("CPU")
    return child_values(cpu).get("arch") if cpu else None


def test_discover_adopt_show_facts_then_offline(
    qtbot: QtBot, bridge: FleetBridge, agent: LocalAgent, screenshots: Path,
) -> None:
    # By device ID, never by name: any process on this machine may announce on loopback.
    device_id = agent.run_cli("identity").strip()
    code = agent.pair_code()  # read off the kit's console, as a technician would
    prompted: list[str] = []

    def prompt(parent: object, row: KitRow) -> str:
        prompted.append(row.name)
        return code

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
    assert int(online.family("cpu")["logical_cores"]) >= 1
    assert online.family("memory")["total_bytes"] > 0
    qtbot.wait(100)  # let the deferred column fit run before the picture
    window.grab().save(str(screenshots / "gui-online.png"))

    agent.stop()
    qtbot.waitUntil(lambda: status_of(window, device_id) == "offline", timeout=WAIT_MS)
    assert window.details.banner.isVisible()
    assert window.details.banner.text().startswith("offline — showing facts from")
    assert shown_arch(window) == platform.machine()
    window.grab().save(str(screenshots / "gui-offline.png"))
    assert failures == []
