"""The Rollout dialog and the Rollouts panel (issue 21) against a real agent: a rollout planned
in the dialog runs on the bridge's loop and the panel follows it to the end, per kit; a long soak
is stopped by one click on Abort, which rolls the canary back."""

from __future__ import annotations

import platform
from collections.abc import Callable
from pathlib import Path

from pytestqt.qtbot import QtBot

from agent.wire import Manifest, Requirements
from app.fleet.localagent import LocalAgent
from app.fleet.rollout import Rollout
from app.fleet.settings import AppSettings
from app.gui.bridges.fleet_bridge import FleetBridge
from app.gui.dialogs.prompts import Prompts
from app.gui.docks.rollouts_panel import RolloutsPanel
from app.gui.main_window import MainWindow
from tests.gui.kits import adopt
from tests.gui.onnx_files import classifier_versions
from tests.gui.windows import WAIT_MS, open_window, wait_status

ROLLOUT_MS = 4 * WAIT_MS
ELSEWHERE = "riscv64" if platform.machine() != "riscv64" else "s390x"


def open_rollout(qtbot: QtBot, bridge: FleetBridge, model: Path, kit: str) -> MainWindow:
    window = open_window(qtbot, bridge, Prompts(choose_model=lambda parent, start: model))
    wait_status(qtbot, window, kit, "online")
    window.rollouts.rollout_action.trigger()
    return window


def test_a_rollout_planned_in_the_dialog_is_followed_to_the_end_in_the_panel(
    qtbot: QtBot,
    settings: AppSettings,
    bridge: FleetBridge,
    start_agent: Callable[[str], LocalAgent],
    tmp_path: Path,
) -> None:
    [kit] = adopt(settings, start_agent("kit-canary"))
    [model] = classifier_versions(tmp_path, "1")
    window = open_rollout(qtbot, bridge, model, kit)
    dialog = window.rollouts.dialog
    assert dialog is not None
    assert not dialog.start_button.isEnabled()  # no model yet
    assert dialog.checked() == [kit]
    dialog.choose_button.click()
    dialog.waves.setText("bad")
    dialog.start_button.click()
    assert "--waves: 'bad' is not a share" in dialog.message.text()
    dialog.waves.setText("100%")
    dialog.soak.setValue(0)
    steps: list[object] = []
    bridge.rollouts.step.connect(steps.append)
    with qtbot.waitSignal(bridge.rollouts.ended, timeout=ROLLOUT_MS) as ended:
        dialog.start_button.click()
    rollout: Rollout = ended.args[0]
    assert rollout.phase == "done", rollout.reason
    panel = window.rollouts.panel
    assert window.rollouts.dock.isVisible()
    qtbot.waitUntil(lambda: "done" in (panel.list.currentItem().text() if panel.list.currentItem() else ""))
    assert panel.kits.rowCount() == 1
    assert [_cell(panel, c) for c in range(3)] == ["canary", "kit-canary", "passed"]
    lines = panel.log.toPlainText().splitlines()
    assert len(lines) == len(steps) > 0
    assert all(line.startswith(rollout.rollout_id) for line in lines)
    assert lines[-1].endswith("done: 1 passed")
    assert not panel.abort_button.isEnabled()  # finished: nothing to abort


def test_one_click_abort_stops_a_soak_and_rolls_the_canary_back(
    qtbot: QtBot,
    settings: AppSettings,
    bridge: FleetBridge,
    start_agent: Callable[[str], LocalAgent],
    tmp_path: Path,
) -> None:
    [kit] = adopt(settings, start_agent("kit-abort"))
    [model] = classifier_versions(tmp_path, "1")
    window = open_rollout(qtbot, bridge, model, kit)
    dialog = window.rollouts.dialog
    assert dialog is not None
    dialog.choose_button.click()
    dialog.soak.setValue(3600)
    panel = window.rollouts.panel

    def soaking() -> None:
        rollout = panel.selected()
        assert rollout is not None
        assert rollout.phase == "soaking"

    dialog.start_button.click()
    qtbot.waitUntil(soaking, timeout=ROLLOUT_MS)
    assert panel.abort_button.isEnabled()
    with qtbot.waitSignal(bridge.rollouts.ended, timeout=ROLLOUT_MS, check_params_cb=_aborted):
        panel.abort_button.click()
    qtbot.waitUntil(lambda: getattr(panel.selected(), "phase", "") == "aborted")
    assert _cell(panel, 2) == "rolled-back"
    assert "aborted by the technician" in panel.list.currentItem().text()


def _cell(panel: RolloutsPanel, column: int) -> str:
    item = panel.kits.item(0, column)
    assert item is not None
    return item.text()


def _aborted(rollout: Rollout) -> bool:
    return rollout.phase == "aborted"


def test_the_dialog_names_the_kits_a_gated_model_would_leave_out(
    qtbot: QtBot,
    settings: AppSettings,
    bridge: FleetBridge,
    start_agent: Callable[[str], LocalAgent],
    tmp_path: Path,
) -> None:
    [kit] = adopt(settings, start_agent("kit-gated"))
    [model] = classifier_versions(tmp_path, "1")
    beside = model.with_name("tiny.manifest.json")
    manifest = Manifest.model_validate_json(beside.read_text())
    manifest.requires = Requirements(arch=[ELSEWHERE])
    beside.write_text(manifest.model_dump_json())
    window = open_rollout(qtbot, bridge, model, kit)
    dialog = window.rollouts.dialog
    assert dialog is not None
    dialog.choose_button.click()
    qtbot.waitUntil(lambda: dialog.gates.isVisible(), timeout=WAIT_MS)
    assert dialog.gates.text().startswith(f"kit-gated is refused: architecture: needs {ELSEWHERE}")
    dialog.force_box.setChecked(True)
    assert dialog.plan().force
    assert not dialog.energy_box.isEnabled()  # it weighs the precision choice only
    dialog.precision_box.setChecked(True)
    dialog.energy_box.setChecked(True)
    dialog.variants = [model]  # as "Add variant…" would
    plan = dialog.plan()
    assert (plan.choose_precision, plan.prefer) == (True, "energy")


def test_a_kit_away_during_the_rollout_picks_it_up_when_it_returns_without_a_command(
    qtbot: QtBot,
    settings: AppSettings,
    bridge: FleetBridge,
    start_agent: Callable[[str], LocalAgent],
    tmp_path: Path,
) -> None:
    here, away = start_agent("kit-here"), start_agent("kit-away")
    [kit, gone] = adopt(settings, here, away)
    [model] = classifier_versions(tmp_path, "1")
    window = open_window(qtbot, bridge, Prompts(choose_model=lambda parent, start: model))
    wait_status(qtbot, window, kit, "online")
    wait_status(qtbot, window, gone, "online")
    window.rollouts.rollout_action.trigger()  # both ticked: both online
    dialog = window.rollouts.dialog
    assert dialog is not None
    assert sorted(dialog.checked()) == sorted([kit, gone])
    dialog.choose_button.click()
    dialog.waves.setText("100%")
    dialog.soak.setValue(0)
    away.stop()
    wait_status(qtbot, window, gone, "offline")  # the window saw it go
    with qtbot.waitSignal(bridge.rollouts.ended, timeout=ROLLOUT_MS) as ended:
        dialog.start_button.click()
    waiting: Rollout = ended.args[0]
    assert waiting.phase == "waiting", waiting.reason
    panel = window.rollouts.panel
    qtbot.waitUntil(lambda: getattr(panel.selected(), "phase", "") == "waiting", timeout=WAIT_MS)
    assert sorted(_cell_at(panel, r, 2) for r in range(2)) == ["offline-waiting", "passed"]

    with qtbot.waitSignal(bridge.rollouts.ended, timeout=ROLLOUT_MS, check_params_cb=_done):
        away.start()  # nothing else: the window's poll sees it back and the rollout goes on
    qtbot.waitUntil(lambda: getattr(panel.selected(), "phase", "") == "done", timeout=WAIT_MS)
    assert [_cell_at(panel, r, 2) for r in range(2)] == ["passed", "passed"]
    assert "done" in panel.list.currentItem().text()
    assert panel.log.toPlainText().splitlines()[-1].endswith("done: 2 passed")


def _cell_at(panel: RolloutsPanel, row: int, column: int) -> str:
    item = panel.kits.item(row, column)
    assert item is not None
    return item.text()


def _done(rollout: Rollout) -> bool:
    return rollout.phase == "done"
