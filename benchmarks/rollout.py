"""Staging overhead: a model rolled out to N local kits in waves vs a plain deploy to all at once.

Issue 21 asks for 20 simulated kits; each one here is a real agent process (uvicorn, SQLite, a
warm ONNX Runtime checker and a job worker), and 20 of them on this 2-core machine measure the
machine, not the rollout, so the default is 8 (`--kits 20` runs the full count where the
machine takes it). Every kit first serves the bundled digits model 1.0; then, alternating:
- plain: `kitfleet deploy --activate` of a new version to every kit at once;
- staged: `kitfleet rollout` of another new version, one canary, waves 25%,100%, soak 0 s
  (the soak is a wait the technician chooses: add waves x soak to the figure), each kit's
  checks on the kit itself: the serving version, a 30-run benchmark of the new and the previous
  version, and its jobs' failures; with --eval also the evaluate job on 20 labelled images.
Prints seconds per run and the staged/plain ratio, and where the staged time goes by phase.
Run: .venv/bin/python -m benchmarks.rollout [--kits 8] [--runs 2] [--eval]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import tempfile
import time
from pathlib import Path

from app.fleet.deploy import async_deploy
from app.fleet.inventory import Kit
from app.fleet.localagent import LocalAgent
from app.fleet.rollout import Event, Plan, async_start
from app.fleet.service import Fleet
from app.fleet.settings import AppSettings
from tests.integration.rollout_fixtures import MODEL, eval_set, version_of_digits


def _start(root: Path, count: int) -> list[LocalAgent]:
    agents = [LocalAgent(root / "agents" / f"kit-{n:02d}", f"kit-{n:02d}", mdns=False) for n in range(count)]
    for agent in agents:
        agent.start(timeout=90)
    return agents


async def _adopt(fleet: Fleet, agents: list[LocalAgent]) -> list[Kit]:
    kits = []
    for agent in agents:
        await fleet.async_adopt(agent.address, agent.pair_code(), "admin")
        kits.append(fleet.inventory.resolve(agent.name))
    return kits


async def _plain(fleet: Fleet, kits: list[Kit], model: Path) -> float:
    started = time.perf_counter()
    outcomes = await async_deploy(fleet, model, kits, activate=True)
    assert all(o.ok for o in outcomes), [o.message for o in outcomes if not o.ok]
    return time.perf_counter() - started


async def _staged(
    fleet: Fleet, kits: list[Kit], model: Path, labelled: Path | None
) -> tuple[float, dict[str, float]]:
    marks: list[tuple[float, str]] = []

    def follow(event: Event) -> None:
        if not event.kit:
            marks.append((time.perf_counter(), event.text.split(":")[0]))

    plan = Plan(model=model, kits=kits, waves=(0.25, 1.0), soak_s=0.0, eval_dataset=labelled)
    started = time.perf_counter()
    rollout = await async_start(fleet, plan, follow)
    ended = time.perf_counter()
    assert rollout.phase == "done", (rollout.phase, rollout.reason, [k.detail for k in rollout.kits])
    phases: dict[str, float] = {}
    points = [(started, "upload"), *marks[1:], (ended, "end")]  # marks[0] is the start line
    for (at, name), (until, _) in itertools.pairwise(points):
        phases[name] = phases.get(name, 0.0) + until - at
    return ended - started, phases


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kits", type=int, default=8)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--eval", action="store_true", help="also evaluate on 20 labelled images per kit")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kitfleet-rollout-bench-") as tmp:
        root = Path(tmp)
        agents = _start(root, args.kits)
        fleet = Fleet(AppSettings.resolve(home=root / "home", mdns_interfaces=["127.0.0.1"]))
        try:
            _run(fleet, agents, root, args)
        finally:
            fleet.close()
            for agent in agents:
                agent.stop()


def _run(fleet: Fleet, agents: list[LocalAgent], root: Path, args: argparse.Namespace) -> None:
    kits = asyncio.run(_adopt(fleet, agents))
    asyncio.run(_plain(fleet, kits, MODEL))  # every kit serves 1.0: what the rollouts replace
    labelled = eval_set(root / "digits") if args.eval else None
    plain: list[float] = []
    staged: list[float] = []
    split: dict[str, list[float]] = {}
    for run in range(args.runs):
        plain.append(asyncio.run(_plain(fleet, kits, version_of_digits(root / "m", f"3.{run}"))))
        model = version_of_digits(root / "m", f"4.{run}")
        seconds, phases = asyncio.run(_staged(fleet, kits, model, labelled))
        staged.append(seconds)
        for name, value in phases.items():
            split.setdefault(name, []).append(value)
        print(f"run {run + 1}: plain deploy {plain[-1]:.2f} s, staged rollout {seconds:.2f} s", flush=True)
    p, s = statistics.median(plain), statistics.median(staged)
    print(f"\n{args.kits} kits (real local agents, 2 shared cores), median of {args.runs} run(s)")
    print(f"{'plain deploy --activate to all':<52}{p:8.2f} s   1.00x")
    what = "staged rollout, 1 canary + 25%,100%, soak 0" + (", eval" if args.eval else "")
    print(f"{what:<52}{s:8.2f} s   {s / p:.2f}x")
    print("staged time by phase (median s):")
    for name, values in split.items():
        print(f"  {name:<50}{statistics.median(values):8.2f}")


if __name__ == "__main__":
    main()
