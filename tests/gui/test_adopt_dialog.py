"""The pairing-code prompt: OK stays disabled until the code is 8 letters or digits."""

from __future__ import annotations

import pytest

from PySide6.QtTest import QTest
from pytestqt.qtbot import QtBot

from app.gui.adopt_dialog import AdoptDialog, parse_pair_code
from app.gui.kit_row import KitRow
from tests.gui import samples


@pytest.mark.parametrize(("typed", "code"), [
    ("STKM-PVNE", "STKMPVNE"), ("stkm pvne", "STKMPVNE"), (" AB12CD34 ", "AB12CD34"),
    ("STKM-PVN", None), ("STKM-PVNE9", None), ("STKM_PVNE", None), ("", None),
])
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
