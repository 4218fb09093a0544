"""The Deploy dialog names the kits a manifest's hardware gates refuse, with the reasons, and
deploys to them only when forced (issue 21); the Models tab shows a kit's precision choice."""

from __future__ import annotations

import platform
from collections.abc import Callable
from pathlib import Path

from pytestqt.qtbot import QtBot

from agent.wire import Manifest, Requirements
from app.fleet.inventory import Inventory
from app.fleet.localagent import LocalAgent
from app.fleet.precision_store import PrecisionChoices, StoredChoice
from app.fleet.settings import AppSettings
from app.gui.bridges.fleet_bridge import FleetBridge
from app.gui.dialogs.prompts import Prompts
from tests.gui.kits import adopt
from tests.gui.onnx_files import classifier_versions
from tests.gui.windows import WAIT_MS, choose_package, open_deploy, open_window, wait_status

ELSEWHERE = "riscv64" if platform.machine() != "riscv64" else "s390x"


def gated(model: Path) -> None:
    beside = model.with_name(f"{model.stem}.manifest.json")
    manifest = Manifest.model_validate_json(beside.read_text())
    manifest.requires = Requirements(arch=[ELSEWHERE])
    beside.write_text(manifest.model_dump_json())


def test_refused_kits_are_named_and_only_a_forced_deploy_reaches_them(
    qtbot: QtBot,
    settings: AppSettings,
    bridge: FleetBridge,
    start_agent: Callable[[str], LocalAgent],
    tmp_path: Path,
) -> None:
    [kit] = adopt(settings, start_agent("kit-gate"))
    [model] = classifier_versions(tmp_path, "1")
    gated(model)
    window = open_window(qtbot, bridge, Prompts(choose_model=lambda parent, start: model))
    wait_status(qtbot, window, kit, "online")
    dialog = open_deploy(window)
    assert not dialog.force_box.isVisible()
    choose_package(qtbot, dialog)
    qtbot.waitUntil(lambda: dialog.gates.isVisible(), timeout=WAIT_MS)
    assert dialog.gates.text().startswith(f"kit-gate is refused: architecture: needs {ELSEWHERE}")
    assert dialog.force_box.isVisible()
    dialog.kits.set_checked(kit, False)
    assert not dialog.gates.isVisible()  # only the ticked kits are listed
    dialog.kits.set_checked(kit, True)

    with qtbot.waitSignal(bridge.models.deployed, timeout=WAIT_MS) as refused:
        dialog.deploy_button.click()
    [outcome] = refused.args[0]
    assert not outcome.ok
    assert outcome.message.startswith("refused: tiny 1 needs what kit-gate lacks: architecture")
    qtbot.waitUntil(lambda: dialog.deploy_button.isEnabled(), timeout=WAIT_MS)

    dialog.force_box.setChecked(True)
    with qtbot.waitSignal(bridge.models.deployed, timeout=WAIT_MS) as forced:
        dialog.deploy_button.click()
    [outcome] = forced.args[0]
    assert outcome.ok, outcome.message
    assert outcome.forced
    qtbot.waitUntil(lambda: dialog.deploy_button.isEnabled(), timeout=WAIT_MS)
    assert dialog.kits.outcome(kit) == "tiny 1 active (forced past its gates)"


def test_the_models_tab_says_which_precision_was_chosen_and_why(
    qtbot: QtBot,
    settings: AppSettings,
    bridge: FleetBridge,
    start_agent: Callable[[str], LocalAgent],
    tmp_path: Path,
) -> None:
    [kit] = adopt(settings, start_agent("kit-choice"))
    inventory = Inventory(settings.home)
    reason = "INT8 (1-int8) runs 1.40x the throughput of FP32 (1) here (140.0 vs 100.0 inferences/s)"
    PrecisionChoices(inventory).record(StoredChoice(kit, "tiny", "1-int8", "int8", reason, [], 1.0))
    inventory.close()
    window = open_window(qtbot, bridge, Prompts())
    wait_status(qtbot, window, kit, "online")
    window.select_device(kit)
    window.tabs.setCurrentWidget(window.tabs.models)
    tab = window.tabs.models
    qtbot.waitUntil(lambda: tab.precision.isVisible(), timeout=WAIT_MS)
    assert tab.precision.text() == f"Precision chosen here: tiny 1-int8 (int8): {reason}"
