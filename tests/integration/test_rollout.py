"""Staged rollouts against real agents (issue 21): a bad canary is found out by evaluation and
rolled back with the rest never activated; a good rollout reaches every kit, one of them stopped
during its wave and started again; a laptop process killed with SIGKILL mid-soak is resumed from
the recorded phase; a second rollout of the same model is refused."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from app.fleet.inventory import Inventory
from app.fleet.report import async_build_report
from app.fleet.report_html import render
from app.fleet.rollout import Event, Plan, RolloutStore, async_abort, async_resume_waiting, async_start
from app.fleet.rollout.plan import async_create
from app.fleet.service import Fleet
from tests.integration.conftest import AgentFactory
from tests.integration.helpers import kitfleet
from tests.integration.rollout_fixtures import (
    BASE_VERSION,
    MODEL,
    eval_set,
    installed,
    serve_base,
    serving,
    version_of_digits,
)


def _kits(start_agent: AgentFactory, adopt: Any, fleet: Fleet, *names: str) -> list[Any]:
    agents = [start_agent(name, mdns=False) for name in names]
    kits = [adopt(agent) for agent in agents]
    serve_base(fleet, kits)
    return agents


def test_a_canary_wrong_on_the_eval_set_is_rolled_back_and_the_rest_never_activated(
    start_agent: AgentFactory, fleet: Fleet, adopt: Any, tmp_path: Path
) -> None:
    _kits(start_agent, adopt, fleet, "canary", "second", "third")
    bad = version_of_digits(tmp_path / "models", "1.1", wrong_labels=True)
    labelled = eval_set(tmp_path / "digits")
    home = fleet.settings.home
    done = kitfleet(
        home, "rollout", str(bad), "--kit", "canary", "--kit", "second", "--kit", "third",
        "--canary", "canary", "--waves", "50%,100%", "--soak", "1", "--eval", str(labelled),
    )  # fmt: skip
    said = done.stdout + done.stderr
    assert done.returncode == 1, said
    assert "Traceback" not in said
    assert "canary: top-1 accuracy" in said, said  # the reason, on the canary's own line
    assert "rolled-back" in said, said
    kits = {k.name: k for k in fleet.inventory.kits()}
    assert serving(fleet, kits["canary"]) == BASE_VERSION  # rolled back
    for name in ("second", "third"):  # uploaded inactive, never activated
        assert serving(fleet, kits[name]) == BASE_VERSION
        assert "1.1" in installed(fleet, kits[name])
    [rollout] = RolloutStore(fleet.inventory).all()
    assert rollout.phase == "failed"
    states = {k.name: k.state for k in rollout.kits}
    assert states == {"canary": "rolled-back", "second": "uploaded", "third": "uploaded"}
    canary = rollout.kit(kits["canary"].device_id)
    assert canary.checks["top1 1.1"] < canary.checks["top1 1.0"]
    actions = [e.action for e in fleet.audit.entries(limit=500) if e.action.startswith("rollout.")]
    assert actions[0] == "rollout.start"
    assert "rollout.rollback" in actions
    assert actions[-1] == "rollout.failed"
    # the kit logged its own activation and rollback (the ordinary calls)
    kit_actions = [e.action for e in fleet.audit.entries(kits["canary"].device_id, 500)]
    assert "model.rollback" in kit_actions or "model.activate" in kit_actions, kit_actions
    page = render(asyncio.run(async_build_report(fleet, poll=False)))  # the field report says so too
    section = page[page.index("<h2>Rollouts</h2>") :]
    assert f"{rollout.rollout_id}: digits-cnn 1.1" in section
    assert '<span class="bad">rolled-back</span>' in section
    assert "stopped because wave 0: 1 kit(s) failed (canary), 0 allowed" in section


def test_a_version_failing_its_golden_check_on_the_canary_stops_before_any_activation(
    start_agent: AgentFactory, fleet: Fleet, adopt: Any, tmp_path: Path
) -> None:
    _kits(start_agent, adopt, fleet, "gold-a", "gold-b")
    broken = version_of_digits(tmp_path / "models", "1.4", wrong_golden=True)
    home = fleet.settings.home
    done = kitfleet(home, "rollout", str(broken), "--kit", "gold-a", "--kit", "gold-b", "--soak", "0")
    said = done.stdout + done.stderr
    assert done.returncode == 1, said
    assert "gold-a: upload refused:" in said, said
    assert "golden check failed" in said, said
    [rollout] = RolloutStore(fleet.inventory).all()
    assert rollout.phase == "failed"
    assert rollout.reason.startswith("wave 0: 1 kit(s) failed (gold-a)")
    assert not any(k.activated for k in rollout.kits)
    for kit in fleet.inventory.kits():
        assert serving(fleet, kit) == BASE_VERSION
        assert "1.4" not in installed(fleet, kit)  # a failed check never installs


def test_a_good_rollout_reaches_every_kit_including_one_stopped_during_its_wave(
    start_agent: AgentFactory, fleet: Fleet, adopt: Any, tmp_path: Path
) -> None:
    agents = _kits(start_agent, adopt, fleet, "alpha", "bravo", "charlie")
    good = version_of_digits(tmp_path / "models", "1.2")
    labelled = eval_set(tmp_path / "digits")
    kits = {k.name: k for k in fleet.inventory.kits()}
    away = agents[2]
    seen: list[Event] = []

    def follow(event: Event) -> None:
        seen.append(event)
        if event.text.startswith("wave 1/1") and away.process is not None:
            away.stop()  # charlie goes away as its wave starts, after its upload

    plan = Plan(
        model=good,
        kits=[kits["alpha"], kits["bravo"], kits["charlie"]],
        canaries=["alpha"],
        soak_s=0.5,
        eval_dataset=labelled,
    )
    rollout = asyncio.run(async_start(fleet, plan, follow))
    assert rollout.phase == "waiting", [e.text for e in seen]
    assert {k.name: k.state for k in rollout.kits} == {
        "alpha": "passed",
        "bravo": "passed",
        "charlie": "offline-waiting",
    }
    assert serving(fleet, kits["bravo"]) == "1.2"
    away.start()
    [rollout] = asyncio.run(async_resume_waiting(fleet))  # what a poll does once the kit is back
    assert rollout.phase == "done"
    assert all(k.state == "passed" for k in rollout.kits)
    for kit in kits.values():
        assert serving(fleet, kit) == "1.2"
    charlie = rollout.kit(kits["charlie"].device_id)
    assert charlie.checks["top1 1.2"] == charlie.checks["top1 1.0"]


def test_a_laptop_killed_during_the_soak_resumes_from_the_recorded_phase(
    start_agent: AgentFactory, fleet: Fleet, adopt: Any, tmp_path: Path
) -> None:
    _kits(start_agent, adopt, fleet, "first", "second")
    good = version_of_digits(tmp_path / "models", "1.3")
    home = fleet.settings.home
    env = dict(os.environ, KITFLEET_MDNS_INTERFACES="127.0.0.1")
    args = ["rollout", str(good), "--kit", "first", "--kit", "second", "--soak", "6"]
    laptop = subprocess.Popen(
        [sys.executable, "-m", "app", "--home", str(home), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        phase = _wait_for_phase(home, "soaking", laptop)
        laptop.send_signal(signal.SIGKILL)
        laptop.wait(10)
    finally:
        if laptop.poll() is None:
            laptop.kill()
            laptop.wait(10)
    assert phase == "soaking"
    store = RolloutStore(fleet.inventory)
    [killed] = store.all()
    assert (killed.phase, killed.wave) == ("soaking", 0)  # what the killed process recorded
    kits = {k.name: k for k in fleet.inventory.kits()}
    assert serving(fleet, kits["second"]) == BASE_VERSION  # its wave had not come
    resumed = kitfleet(home, "rollout", "resume", killed.rollout_id)
    said = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, said
    assert "resumed in soaking wave 0" in said, said
    [after] = store.all()
    assert after.phase == "done", said
    assert all(k.state == "passed" for k in after.kits)
    assert serving(fleet, kits["first"]) == serving(fleet, kits["second"]) == "1.3"
    status = kitfleet(home, "rollout", "status", killed.rollout_id[:6])
    assert status.returncode == 0
    assert "done" in status.stdout, status.stdout


def test_a_second_rollout_of_the_same_model_is_refused(
    start_agent: AgentFactory, fleet: Fleet, adopt: Any, tmp_path: Path
) -> None:
    kit = adopt(start_agent("only", mdns=False))
    first = version_of_digits(tmp_path / "models", "2.0")
    other = version_of_digits(tmp_path / "other", "2.1")
    live, _ = asyncio.run(async_create(fleet, Plan(model=first, kits=[kit], soak_s=0)))
    refused = kitfleet(fleet.settings.home, "rollout", str(other), "--kit", "only")
    assert refused.returncode == 1
    assert f"a rollout of digits-cnn is already under way ({live.rollout_id}" in refused.stderr, (
        refused.stderr
    )
    assert "Traceback" not in refused.stderr
    assert len(RolloutStore(fleet.inventory).all()) == 1
    aborted = asyncio.run(async_abort(fleet, live.rollout_id))
    assert aborted.phase == "aborted"
    asyncio.run(async_create(fleet, Plan(model=other, kits=[kit], soak_s=0)))  # accepted now


def _wait_for_phase(home: Path, phase: str, process: subprocess.Popen[bytes], timeout: float = 90) -> str:
    inventory = Inventory(home)
    try:
        store = RolloutStore(inventory)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                out = process.stdout.read().decode() if process.stdout else ""
                raise AssertionError(f"the rollout ended before {phase}: {out}")
            rollouts = store.all()
            if rollouts and rollouts[0].phase == phase:
                return phase
            time.sleep(0.1)
        raise AssertionError(f"no {phase} phase within {timeout} s")
    finally:
        inventory.close()


def test_choose_precision_each_kit_serves_the_variant_it_measured_best(
    start_agent: AgentFactory, fleet: Fleet, adopt: Any, tmp_path: Path
) -> None:
    kits = [adopt(start_agent(name, mdns=False)) for name in ("fp-one", "fp-two")]
    labelled = eval_set(tmp_path / "digits", per_label=1)
    done = kitfleet(
        fleet.settings.home, "rollout", str(MODEL), "--kit", "fp-one", "--kit", "fp-two",
        "--soak", "0", "--eval", str(labelled), "--choose-precision", "--max-accuracy-loss", "5",
    )  # fmt: skip
    said = done.stdout + done.stderr
    assert done.returncode == 0, said
    [rollout] = RolloutStore(fleet.inventory).all()
    assert rollout.phase == "done", said
    assert rollout.variants == [str(MODEL.with_name("digits-cnn-int8.onnx"))]  # found beside it
    for kit in kits:
        state = rollout.kit(kit.device_id)
        assert state.version in ("1.0", "1.0-int8")
        assert state.checks["precision"] == ("int8" if state.version == "1.0-int8" else "fp32")
        assert state.checks["precision_reason"], state.checks
        assert f"fp-{'one' if kit.name == 'fp-one' else 'two'}: takes {state.version}:" in said, said
        assert serving(fleet, kit) == state.version
        assert sorted(installed(fleet, kit)) == ["1.0", "1.0-int8"]  # both went up, inactive


def test_pause_stops_the_running_process_and_abort_rolls_the_canary_back(
    start_agent: AgentFactory, fleet: Fleet, adopt: Any, tmp_path: Path
) -> None:
    _kits(start_agent, adopt, fleet, "p-canary", "p-rest")
    good = version_of_digits(tmp_path / "models", "1.5")
    home = fleet.settings.home
    env = dict(os.environ, KITFLEET_MDNS_INTERFACES="127.0.0.1")
    laptop = subprocess.Popen(
        [sys.executable, "-m", "app", "--home", str(home), "rollout", str(good), "--kit", "p-canary",
         "--kit", "p-rest", "--soak", "120"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )  # fmt: skip
    try:
        _wait_for_phase(home, "soaking", laptop)
        [running] = RolloutStore(fleet.inventory).all()
        paused = kitfleet(home, "rollout", "pause", running.rollout_id)
        assert paused.returncode == 0, paused.stderr
        out, _ = laptop.communicate(timeout=30)  # it stops at its next look, long before the soak ends
    finally:
        if laptop.poll() is None:
            laptop.kill()
            laptop.wait(10)
    assert laptop.returncode == 0, out
    assert f"continue with `kitfleet rollout resume {running.rollout_id}`" in out.decode(), out
    kits = {k.name: k for k in fleet.inventory.kits()}
    assert serving(fleet, kits["p-canary"]) == "1.5"  # the canary serves it while paused
    aborted = kitfleet(home, "rollout", "abort", running.rollout_id)
    said = aborted.stdout + aborted.stderr
    assert aborted.returncode == 0, said
    assert "p-canary: back to digits-cnn 1.0" in said, said
    [after] = RolloutStore(fleet.inventory).all()
    assert after.phase == "aborted"
    assert {k.name: k.state for k in after.kits} == {"p-canary": "rolled-back", "p-rest": "uploaded"}
    assert serving(fleet, kits["p-canary"]) == serving(fleet, kits["p-rest"]) == BASE_VERSION
