"""Per-kit precision choice (issue 21) vs always FP32 and always INT8, on the bundled models.

One real agent on this machine is the kit. For each bundled model (the digits CNN with its
bundled INT8 variant; the shapes detector with an INT8 variant made here by `app.fleet.quantize`,
static, calibrated on the bundled images) both variants are installed inactive, then:
- choose: `async_choose_precision` (3 alternating benchmark jobs per variant on the kit, the best
  of each counting, as a rollout does);
- check: `--rounds` more benchmark jobs per variant, alternating FP32/INT8 so they share the
  machine's load alike; each variant's best round (load only slows a round down) says what each
  policy would serve at.
Prints, per model, those figures, the choice and its reason, and the throughput of the chosen
variant as a ratio to always-FP32 and to always-INT8 (1.00 = the same; above 1, the choice wins),
then their geometric means over the models, and whether each choice matched the check's winner.
Run: .venv/bin/python -m benchmarks.precision_choice [--rounds 5] [--runs 100]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from agent.facts.cpu import collect as cpu_facts
from app.fleet.deploy import async_deploy
from app.fleet.inventory import Kit
from app.fleet.localagent import LocalAgent
from app.fleet.precision_choice import PrecisionDecision, Variant, async_choose_precision, async_measure
from app.fleet.quantize import quantize_model
from app.fleet.service import Fleet
from app.fleet.settings import AppSettings
from resources import images_dir, models_dir


@dataclass(frozen=True)
class Pair:
    label: str
    fp32: Path
    int8: Path


@dataclass(frozen=True)
class Outcome:
    pair: Pair
    decision: PrecisionDecision
    choose_s: float
    fp32_per_s: float
    int8_per_s: float

    @property
    def chosen_per_s(self) -> float:
        return self.int8_per_s if self.decision.chosen.precision == "int8" else self.fp32_per_s

    @property
    def right(self) -> bool:
        winner = "int8" if self.int8_per_s > self.fp32_per_s else "fp32"
        return self.decision.chosen.precision == winner


def pairs(scratch: Path) -> list[Pair]:
    digits = Pair("digits-cnn", models_dir() / "digits-cnn-fp32.onnx", models_dir() / "digits-cnn-int8.onnx")
    shapes_int8 = scratch / "shapes-yolo-int8.onnx"
    calibration = scratch / "calibration"
    calibration.mkdir()
    for image in sorted(images_dir().glob("shapes-*.png")):
        (calibration / image.name).write_bytes(image.read_bytes())
    quantize_model(models_dir() / "shapes-yolo-fp32.onnx", shapes_int8, "static", calibration, runs=5)
    return [digits, Pair("shapes-yolo", models_dir() / "shapes-yolo-fp32.onnx", shapes_int8)]


async def variants(fleet: Fleet, kit: Kit, pair: Pair) -> tuple[Variant, Variant]:
    found = []
    for model in (pair.fp32, pair.int8):
        [outcome] = await async_deploy(fleet, model, [kit], activate=False)
        assert outcome.ok, outcome.message
        assert outcome.info is not None
        version = max(outcome.info.versions, key=lambda v: v.installed_at)
        found.append(Variant(outcome.info.name, version.version, version.precision))
    return found[0], found[1]


async def one_model(fleet: Fleet, kit: Kit, pair: Pair, rounds: int, runs: int) -> Outcome:
    fp32, int8 = await variants(fleet, kit, pair)
    started = time.perf_counter()
    decision = await async_choose_precision(fleet, kit.device_id, [fp32, int8], runs=runs)
    choose_s = time.perf_counter() - started
    rates: dict[str, list[float]] = {"fp32": [], "int8": []}
    for n in range(rounds):
        for variant in (fp32, int8) if n % 2 == 0 else (int8, fp32):
            measured = await async_measure(fleet, kit, variant, runs=runs)
            assert measured.throughput_per_s is not None, measured.skipped
            rates[variant.precision].append(measured.throughput_per_s)
    return Outcome(pair, decision, choose_s, max(rates["fp32"]), max(rates["int8"]))


def report(outcomes: list[Outcome]) -> None:
    print(
        f"{'model':<12} {'FP32/s':>9} {'INT8/s':>9} {'chosen':>7} {'vs FP32':>8} {'vs INT8':>8} "
        f"{'right':>6} {'choose s':>9}"
    )
    for o in outcomes:
        print(
            f"{o.pair.label:<12} {o.fp32_per_s:>9.1f} {o.int8_per_s:>9.1f} {o.decision.chosen.precision:>7} "
            f"{o.chosen_per_s / o.fp32_per_s:>7.2f}x {o.chosen_per_s / o.int8_per_s:>7.2f}x "
            f"{'yes' if o.right else 'no':>6} {o.choose_s:>9.1f}"
        )
        print(f"  why: {o.decision.reason}")
    vs_fp32 = math.prod(o.chosen_per_s / o.fp32_per_s for o in outcomes) ** (1 / len(outcomes))
    vs_int8 = math.prod(o.chosen_per_s / o.int8_per_s for o in outcomes) ** (1 / len(outcomes))
    print(
        f"geometric mean over {len(outcomes)} models: per-kit choice = {vs_fp32:.2f}x always-FP32, "
        f"{vs_int8:.2f}x always-INT8; {sum(o.right for o in outcomes)}/{len(outcomes)} choices matched "
        "the check's winner"
    )


async def main(rounds: int, runs: int) -> None:
    with tempfile.TemporaryDirectory(prefix="kitfleet-bench-precision-") as tmp:
        root = Path(tmp)
        pairs_made = await asyncio.to_thread(pairs, root)
        agent = LocalAgent(root / "agent", "bench-kit", mdns=False).start(timeout=90)
        fleet = Fleet(AppSettings.resolve(home=root / "home", mdns_interfaces=["127.0.0.1"]))
        try:
            await fleet.async_adopt(agent.address, agent.pair_code(), "admin")
            kit = fleet.inventory.resolve("bench-kit")
            outcomes = [await one_model(fleet, kit, pair, rounds, runs) for pair in pairs_made]
        finally:
            fleet.close()
            agent.stop()
    cpu = cpu_facts()
    print(f"kit: this machine, {cpu.model} ({cpu.arch}); {cpu.int8.reason if cpu.int8 else ''}")
    print(f"benchmark jobs of {runs} runs at batch 1; check: best of {rounds} per variant\n")
    report(outcomes)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5, help="check benchmark jobs per variant")
    parser.add_argument("--runs", type=int, default=100, help="timed runs per benchmark job")
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.runs))
