"""Bundles > Create Bundle and Receive Bundle in the window, offscreen: a real signed bundle written
for a kit, a kit's real receipt merged (once), and the kit's Bundles tab showing both. The kit
here is a data dir (identity, database, audit chain) the laptop cannot reach, as in the field."""

from __future__ import annotations

import json
from pathlib import Path

from pytestqt.qtbot import QtBot

from agent.audit import Actor, AuditLog
from agent.db import Database
from agent.identity import load_or_create
from agent.receipts import export
from app.fleet.bundles.ledger import Ledger
from app.fleet.inventory import Inventory, Kit
from app.fleet.settings import AppSettings
from app.fleet.signing import load_or_create as signing_key
from app.gui.bridges.fleet_bridge import FleetBridge
from app.gui.dialogs.create_bundle_dialog import CreateBundleDialog
from app.gui.dialogs.prompts import Prompts
from app.gui.dialogs.receive_dialog import ReceiveDialog
from tests.gui.onnx_files import classifier_versions
from tests.gui.windows import WAIT_MS, open_window


def away_kit(settings: AppSettings, data_dir: Path, name: str, trusts_laptop: bool = True) -> str:
    """A kit adopted earlier (its certificate pinned), now out of reach; it did some work."""
    data_dir.mkdir(mode=0o700, parents=True)
    identity = load_or_create(data_dir)
    db = Database.open(data_dir)
    try:
        for n in range(3):
            AuditLog(db).append(Actor("tok", "kitfleet (app-x)"), "job.submit", f"job{n}", "ok")
    finally:
        db.close()
    inventory = Inventory(settings.home)
    try:
        pem = identity.cert_path.read_text()
        inventory.save(Kit(device_id=identity.device_id, name=name, host="127.0.0.1", port=1, cert_pem=pem))
        if trusts_laptop:  # as adoption does: the kit learnt this laptop's signing key
            key = signing_key(settings.home).current
            Ledger(inventory).set_trusted_key(identity.device_id, key.key_id)
    finally:
        inventory.close()
    return identity.device_id


def test_receive_merges_a_receipt_once_and_the_kit_page_shows_it(
    qtbot: QtBot, bridge: FleetBridge, settings: AppSettings, tmp_path: Path
) -> None:
    device_id = away_kit(settings, tmp_path / "north", "north")
    stick = tmp_path / "stick"
    stick.mkdir()
    export(tmp_path / "north", stick)
    window = open_window(qtbot, bridge, Prompts())
    qtbot.waitUntil(lambda: len(window.model.rows()) == 1, timeout=WAIT_MS)
    window.receive_bundle_action.trigger()
    dialog = window.findChild(ReceiveDialog)
    assert dialog is not None
    assert not dialog.receive_button.isEnabled(), "nothing chosen yet"
    dialog.path.setText(str(stick))
    with qtbot.wait_signal(window.bundles.received, timeout=WAIT_MS):
        dialog.receive_button.click()
    shown = dialog.merged.toPlainText()
    assert "north: receipt 1: 0 job(s)" in shown
    assert "3 new audit entries" in shown
    assert "audit chain unbroken" in shown
    assert "1 receipt(s) merged, 0 merged before, 0 refused" in dialog.state.text()

    window.select_device(device_id)
    tab = window.bundles_tab
    qtbot.waitUntil(lambda: tab.receipts.rowCount() == 1, timeout=WAIT_MS)
    assert tab.receipts.item(0, 5).text() == "3"  # type: ignore[union-attr]

    with qtbot.wait_signal(window.bundles.received, timeout=WAIT_MS):
        dialog.receive_button.click()
    assert "north: receipt 1 was merged before; nothing new" in dialog.merged.toPlainText()
    assert tab.receipts.rowCount() == 1

    forged = tmp_path / "forged.kfr"
    data = next(stick.iterdir()).read_bytes()
    at = data.rindex(b'"seq":1')  # inside the receipt, past the signed manifest
    forged.write_bytes(data[:at] + b'"seq":7' + data[at + 7 :])
    dialog.path.setText(str(forged))
    with qtbot.wait_signal(window.bundles.received, timeout=WAIT_MS):
        dialog.receive_button.click()
    assert "REFUSED forged.kfr" in dialog.merged.toPlainText()
    assert "0 receipt(s) merged, 0 merged before, 1 refused" in dialog.state.text()


def test_create_bundle_writes_a_signed_file_and_the_kit_page_lists_it(
    qtbot: QtBot, bridge: FleetBridge, settings: AppSettings, tmp_path: Path
) -> None:
    device_id = away_kit(settings, tmp_path / "south", "south")
    away_kit(settings, tmp_path / "east", "east", trusts_laptop=False)
    [model] = classifier_versions(tmp_path / "models", "1")
    images = tmp_path / "street"
    images.mkdir()
    (images / "a.png").write_bytes(_png())
    spec = tmp_path / "job.json"
    spec.write_text(json.dumps({"kind": "batch-infer", "params": {"model": "tiny", "dataset": "street"}}))
    window = open_window(qtbot, bridge, Prompts())
    qtbot.waitUntil(lambda: len(window.model.rows()) == 2, timeout=WAIT_MS)
    window.create_bundle_action.trigger()
    dialog = window.findChild(CreateBundleDialog)
    assert dialog is not None
    names = [dialog.kits.item(i).text() for i in range(dialog.kits.count())]
    east = dialog.kits.item(names.index("east"))
    assert east is not None
    east.setCheckState(east.checkState().Checked)
    dialog.models.add(model)
    dialog.datasets.add(images)
    dialog.jobs.add(spec)
    out = tmp_path / "stick" / "south.kfb"
    dialog.out.setText(str(out))
    with qtbot.wait_signal(window.bundles.create_failed, timeout=WAIT_MS) as refused:
        dialog.create_button.click()
    assert "east never learnt this laptop's signing key" in refused.args[0]
    assert "Not written" in dialog.state.text()
    assert not out.exists()

    east.setCheckState(east.checkState().Unchecked)
    south = dialog.kits.item(names.index("south"))
    assert south is not None
    south.setCheckState(south.checkState().Checked)
    with qtbot.wait_signal(window.bundles.created, timeout=WAIT_MS):
        dialog.create_button.click()
    assert out.is_file()
    assert "Wrote" in dialog.state.text()
    assert "3 actions" in dialog.state.text()
    window.select_device(device_id)
    tab = window.bundles_tab
    qtbot.waitUntil(lambda: tab.sent.rowCount() == 1, timeout=WAIT_MS)
    assert tab.sent.item(0, 0).text() == "south.kfb"  # type: ignore[union-attr]
    assert tab.sent.item(0, 4).text() == "no receipt has mentioned it yet"  # type: ignore[union-attr]


def _png() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(buffer, format="PNG")
    return buffer.getvalue()
