"""The precision choice weighing energy (issue 24) on a real agent: each variant's benchmark job
on the kit reports joules per 1,000 inferences and how they were got; `--prefer energy` takes
the variant using the fewest, whichever way the figures fall on this machine, and its reason
names both figures and whether they were measured or estimated."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable

from app.fleet.inventory import Kit
from app.fleet.localagent import LocalAgent
from app.fleet.precision_choice import Variant, async_choose_precision
from app.fleet.rollout import RolloutStore
from app.fleet.service import Fleet
from resources import models_dir
from tests.integration.conftest import AgentFactory
from tests.integration.helpers import kitfleet
from tests.integration.test_precision_choice import installed

FP32 = Variant("digits-cnn", "1.0", "fp32")
INT8 = Variant("digits-cnn", "1.0-int8", "int8")
FIGURES = re.compile(
    r"\(([\d.e+-]+) vs ([\d.e+-]+) J per 1,000 inferences, (measured \(\w+\)|estimated[^)]*\))"
)


def test_the_variant_using_less_energy_is_chosen_and_the_reason_names_the_figures(
    start_agent: AgentFactory, fleet: Fleet, adopt: Callable[[LocalAgent], Kit]
) -> None:
    kit = adopt(start_agent("thrifty", mdns=False))
    installed(fleet, kit)
    decision = asyncio.run(
        async_choose_precision(fleet, kit.device_id, [FP32, INT8], rounds=1, runs=50, prefer="energy")
    )
    joules = {m.variant.precision: m.joules_per_1000 or 0.0 for m in decision.measures}
    assert all(j > 0 for j in joules.values()), joules
    bases = {m.energy_basis for m in decision.measures}
    assert all(b.startswith(("measured (", "estimated")) for b in bases), bases
    thriftier = INT8 if joules["int8"] < joules["fp32"] else FP32
    assert decision.chosen == thriftier
    found = FIGURES.search(decision.reason)
    assert found is not None, decision.reason
    int8, fp32 = joules["int8"], joules["fp32"]  # the reason compares INT8 with FP32 either way
    assert (float(found[1]), float(found[2])) == (float(f"{int8:.3g}"), float(f"{fp32:.3g}"))
    opening = (
        "INT8 (1.0-int8) uses" if thriftier == INT8 else "FP32 (1.0) kept for energy: INT8 (1.0-int8) uses"
    )
    assert decision.reason.startswith(opening), decision.reason


def test_deploy_prefer_energy_from_the_cli_says_the_energy_figures(
    start_agent: AgentFactory, fleet: Fleet, adopt: Callable[[LocalAgent], Kit]
) -> None:
    adopt(start_agent("by-cli-energy", mdns=False))
    home = fleet.settings.home
    fp32, int8 = (str(models_dir() / f"digits-cnn-{p}.onnx") for p in ("fp32", "int8"))
    said = kitfleet(
        home,
        "deploy",
        "--choose-precision",
        fp32,
        int8,
        "--kit",
        "by-cli-energy",
        "--prefer",
        "energy",
        "--json",
    )
    assert said.returncode == 0, said.stdout + said.stderr
    [row] = json.loads(said.stdout)
    assert row["ok"], row
    assert FIGURES.search(row["reason"]), row["reason"]
    wrong = kitfleet(
        home, "deploy", "--choose-precision", fp32, int8, "--kit", "by-cli-energy", "--prefer", "cheap"
    )
    assert wrong.returncode != 0
    assert "invalid choice: 'cheap'" in wrong.stderr


def test_a_rollout_choosing_by_energy_records_why_each_kit_took_its_variant(
    start_agent: AgentFactory, fleet: Fleet, adopt: Callable[[LocalAgent], Kit]
) -> None:
    kit = adopt(start_agent("rolled-energy", mdns=False))
    model = models_dir() / "digits-cnn-fp32.onnx"
    done = kitfleet(
        fleet.settings.home, "rollout", str(model), "--kit", "rolled-energy", "--soak", "0",
        "--choose-precision", "--prefer", "energy",
    )  # fmt: skip
    said = done.stdout + done.stderr
    assert done.returncode == 0, said
    [rollout] = RolloutStore(fleet.inventory).all()
    assert (rollout.phase, rollout.prefer) == ("done", "energy")
    state = rollout.kit(kit.device_id)
    assert FIGURES.search(state.checks["precision_reason"]), state.checks
    assert f"rolled-energy: takes {state.version}: {state.checks['precision_reason']}" in said, said
