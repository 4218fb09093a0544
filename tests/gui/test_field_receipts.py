"""The Field data tab while a kit is away: the unsure inputs its receipt brought back are listed
(marked as from a receipt, with their pictures), a label given to one is queued on the laptop,
and sent into the kit's dataset when the kit answers again. A real agent, a real batch-infer job
with keep_unsure, a real `kitfleet-agent export` and `bundle receive`."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from pytestqt.qtbot import QtBot

from agent.wire import JobRequest
from app.fleet.localagent import LocalAgent
from app.fleet.ops import FleetOps
from app.fleet.receipts import receive
from app.fleet.service import Fleet
from app.fleet.settings import AppSettings
from app.gui.bridges.fleet_bridge import FleetBridge
from tests.gui.test_field_panel import drawn, field_window
from tests.gui.windows import WAIT_MS, wait_status


def test_the_field_tab_lists_received_unsure_inputs_and_sends_a_queued_label_when_back(
    qtbot: QtBot, settings: AppSettings, bridge: FleetBridge, agent: LocalAgent, tmp_path: Path
) -> None:
    drawn(agent.data_dir / "datasets" / "seen", 6, "square", light=6)
    window, device = field_window(qtbot, settings, bridge, agent, tmp_path, [])
    stick = tmp_path / "stick"
    stick.mkdir()
    fleet = Fleet(settings)
    try:
        kit = fleet.inventory.get(device)
        params = {"model": "tiny", "dataset": "seen", "keep_unsure": {"top_below": 0.9, "max_items": 4}}
        request = JobRequest.model_validate({"kind": "batch-infer", "params": params})
        job, _ = asyncio.run(fleet.async_call(kit, lambda c: c.submit_job(request)))
        qtbot.waitUntil(
            lambda: asyncio.run(fleet.async_call(kit, lambda c: c.job(job.job_id))).state == "done",
            timeout=WAIT_MS,
        )
        on_kit = sorted(p.stem for p in (agent.data_dir / "unsure" / "tiny").glob("*.json"))
        assert len(on_kit) == 4
        exported = subprocess.run(
            [sys.executable, "-m", "agent", "export", "--data-dir", str(agent.data_dir), "--out", str(stick)],
            capture_output=True,
            text=True,
            check=True,
        )
        assert "4 unsure inputs" in exported.stdout
        [merged] = receive(FleetOps(fleet), stick).received
        assert merged.unsure_new == 4
    finally:
        fleet.close()

    agent.stop()  # the kit is away
    wait_status(qtbot, window, device, "offline")
    panel = window.tabs.field
    window.tabs.setCurrentWidget(panel)
    qtbot.waitUntil(lambda: sorted(panel.received_ids()) == on_kit, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: all(panel.has_picture(i) for i in on_kit), timeout=WAIT_MS)
    assert "receipts brought back" in panel.note.text()
    assert all(panel.entry_text(i).endswith("(receipt)") for i in on_kit)

    chosen = panel.unsure_ids()[0]
    panel.dataset_combo.setCurrentText("yard")
    panel.unsure.item(0).setSelected(True)
    assert not panel.label_button.isEnabled()  # no label typed yet
    panel.unsure_label.setText("square")
    assert panel.label_button.isEnabled(), "a received item is labelled while the kit is away"
    panel.label_button.click()
    qtbot.waitUntil(lambda: panel.entry_text(chosen) == "→ square (queued)", timeout=WAIT_MS)
    queued = next((settings.home / "unsure").rglob(f"{chosen}.label.json"))
    assert json.loads(queued.read_text()) == {"dataset": "yard", "label": "square"}
    assert not (agent.data_dir / "datasets" / "yard").exists()

    agent.start()  # back, at the same address
    wait_status(qtbot, window, device, "online")
    square = agent.data_dir / "datasets" / "yard" / "square"
    qtbot.waitUntil(lambda: square.is_dir() and len(list(square.iterdir())) == 1, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: len(panel.unsure_ids()) == 3 and not panel.received_ids(), timeout=WAIT_MS)
    assert chosen not in panel.unsure_ids(), "the kit moved its own copy into the dataset"
    assert not queued.exists()
