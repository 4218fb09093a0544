"""The pairing-code prompt: OK stays disabled until the code is 8 letters or digits; admin
rights only when the technician ticks the box."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from PySide6.QtTest import QTest
from pytestqt.qtbot import QtBot

from app.fleet.localagent import LocalAgent
from app.gui.bridges.fleet_bridge import FleetBridge
from app.gui.dialogs.adopt_dialog import AdoptAnswer, AdoptDialog, parse_pair_code
from app.gui.tables.kit_row import KitRow
from tests.gui import samples


@pytest.mark.parametrize(
    ("typed", "code"),
    [
        ("STKM-PVNE", "STKMPVNE"),
        ("stkm pvne", "STKMPVNE"),
        (" AB12CD34 ", "AB12CD34"),
        ("STKM-PVN", None),
        ("STKM-PVNE9", None),
        ("STKM_PVNE", None),
        ("", None),
    ],
)
def test_parse_pair_code(typed: str, code: str | None) -> None:
    assert parse_pair_code(typed) == code


def test_ok_enabled_only_for_a_valid_code(qtbot: QtBot) -> None:
    row = KitRow(samples.DEVICE_A).with_sighting(samples.sighting())
    dialog = AdoptDialog(row)
    qtbot.addWidget(dialog)
    assert "kit-a" in dialog.windowTitle()
    assert not dialog.ok_button.isEnabled()
    QTest.keyClicks(dialog.code_edit, "stkm-pvn")
    assert not dialog.ok_button.isEnabled()
    QTest.keyClicks(dialog.code_edit, "e")
    assert dialog.ok_button.isEnabled()
    assert dialog.code() == "STKMPVNE"
    with qtbot.waitSignal(dialog.accepted):
        dialog.ok_button.click()


def test_admin_box_is_off_by_default_and_asks_for_admin_when_ticked(qtbot: QtBot) -> None:
    dialog = AdoptDialog(KitRow(samples.DEVICE_A).with_sighting(samples.sighting()))
    qtbot.addWidget(dialog)
    assert not dialog.admin_box.isChecked()
    assert dialog.answer() is None  # no code yet
    QTest.keyClicks(dialog.code_edit, "stkm-pvne")
    assert dialog.answer() == AdoptAnswer("STKMPVNE", "operator")
    dialog.admin_box.click()
    assert dialog.answer() == AdoptAnswer("STKMPVNE", "admin")


@pytest.mark.parametrize(("tick", "scope", "tokens_status"), [(False, "operator", 403), (True, "admin", 200)])
def test_the_window_adopts_with_the_scope_the_dialog_asked_for(
    qtbot: QtBot,
    bridge: FleetBridge,
    start_agent: Callable[[str], LocalAgent],
    tick: bool,
    scope: str,
    tokens_status: int,
) -> None:
    """A real agent, adopted through the bridge with the dialog's answer: its token has exactly
    the scope asked for (the kit's token list is admin only)."""
    agent = start_agent(f"dialog-{scope}")
    dialog = AdoptDialog(KitRow(samples.DEVICE_A).with_sighting(samples.sighting()))
    qtbot.addWidget(dialog)
    QTest.keyClicks(dialog.code_edit, agent.pair_code())
    if tick:
        dialog.admin_box.click()
    answer = dialog.answer()
    assert answer is not None
    failures: list[tuple[str, str]] = []
    bridge.failed.connect(lambda op, message: failures.append((op, message)))
    bridge.start()
    with qtbot.waitSignal(bridge.adopted, timeout=20_000) as adopted:
        bridge.adopt(agent.address, answer.code, answer.scope)
    assert failures == []
    kit = adopted.args[0]
    assert kit.scope == scope
    with httpx.Client(
        base_url=f"https://{agent.address}",
        verify=False,
        timeout=10,
        headers={"Authorization": f"Bearer {kit.token}"},
    ) as client:
        assert client.get("/v1/tokens").status_code == tokens_status
