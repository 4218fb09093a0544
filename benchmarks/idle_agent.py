"""Agent idle footprint: RSS and CPU of a real agent, bare and serving one and three models.

Goals (issue 19): the bare agent <= 50 MB RSS; serving one model <= the model's own ONNX
Runtime session memory + 60 MB; < 0.5 % of one core idle. The session's own memory is
measured in a separate process, as the agent opens it (`open_session`, one run): RSS after
minus RSS before, with ONNX Runtime already imported (the session alone) and from a bare
interpreter (the runtime's libraries and the session). MB are 10^6 bytes, MiB 2^20.
Anchors: balena-supervisor idles at 45-80 MB, a Salt minion near 100 MB, Netdata 100-200 MB.
Also the start time of `kitfleet-agent --help` (goal <= 0.2 s) beside a bare interpreter's.
Run: .venv/bin/python -m benchmarks.idle_agent [--seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from app.fleet.deploy import async_deploy
from app.fleet.localagent import LocalAgent
from app.fleet.service import Fleet
from app.fleet.settings import AppSettings
from resources import images_dir, models_dir

BARE_GOAL_MB = 50.0
SERVING_OVER_SESSION_MB = 60.0
CPU_GOAL_PERCENT = 0.5
HELP_GOAL_S = 0.2
ANCHORS_MB = {"balena-supervisor (low)": 45.0, "Salt minion": 100.0, "Netdata (low)": 100.0}
MODELS = ("digits-cnn-fp32", "shapes-yolo-fp32", "digits-cnn-int8")

_SESSION_PROBE = """
import json, os, sys
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
bare = rss()
import numpy as np
import onnxruntime
from agent.toolkit.sessions import default_threads, open_session, seeded_input
imported = rss()
sessions = []
for path in sys.argv[1:]:
    session, _ = open_session(path, default_threads(), spinning=False)
    arg = session.get_inputs()[0]
    shape = [d if isinstance(d, int) and d > 0 else 1 for d in arg.shape]
    session.run(None, {arg.name: np.zeros(shape, np.float32)})
    sessions.append(session)
print(json.dumps({"session": rss() - imported, "with_runtime": rss() - bare}))
"""


def _mb(size: float) -> str:
    return f"{size / 1e6:6.1f} MB ({size / 2**20:5.1f} MiB)"


def session_memory(models: list[Path]) -> dict[str, int]:
    """Bytes of RSS the models' sessions take in a process of their own (see _SESSION_PROBE)."""
    done = subprocess.run(
        [sys.executable, "-c", _SESSION_PROBE, *map(str, models)],
        capture_output=True,
        text=True,
        check=True,
    )
    found: dict[str, int] = json.loads(done.stdout)
    return found


def _three_models(tmp: Path) -> list[Path]:
    """The sample models under three names (the int8 digits model renamed, so all three serve)."""
    paths = []
    for stem in MODELS:
        source = models_dir() / f"{stem}.onnx"
        manifest = json.loads(source.with_name(f"{stem}.manifest.json").read_text())
        if stem.endswith("int8"):
            manifest["name"] = "digits-cnn-int8"
        target = tmp / "models" / f"{stem}.onnx"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        target.with_name(f"{stem}.manifest.json").write_text(json.dumps(manifest))
        paths.append(target)
    return paths


async def _serve(fleet: Fleet, agent: LocalAgent, models: list[Path]) -> None:
    """Adopt, deploy and activate `models`, and ask each once so its session is loaded."""
    kit = await fleet.async_adopt(agent.address, agent.pair_code())
    outcomes = [o for model in models for o in await async_deploy(fleet, model, [kit], activate=True)]
    assert all(o.ok for o in outcomes), [o.message for o in outcomes]
    image = (images_dir() / "digit-3.png").read_bytes()
    async with fleet.client(kit) as client:
        for info in await client.models():
            await client.infer(info.name, image, "image/png")


def measure(seconds: float, models: list[Path], tmp: Path) -> tuple[float, float, float]:
    """(RSS bytes at the end, peak RSS bytes, CPU % of one core) idling after serving `models`."""
    home = tmp / f"serving-{len(models)}"
    agent = LocalAgent(home / "agent", f"idle-{len(models)}").start()
    fleet = Fleet(AppSettings.resolve(home=home / "app", mdns_interfaces=["127.0.0.1"]))
    try:
        assert agent.process is not None
        if models:
            asyncio.run(_serve(fleet, agent, models))
        proc = psutil.Process(agent.process.pid)
        time.sleep(5)  # let start-up work (first metrics sample, mDNS probing) settle
        cpu_before, wall_before = sum(proc.cpu_times()[:2]), time.monotonic()
        peak = 0.0
        while time.monotonic() < wall_before + seconds:
            peak = max(peak, proc.memory_info().rss)
            time.sleep(1)
        cpu = (sum(proc.cpu_times()[:2]) - cpu_before) / (time.monotonic() - wall_before)
        return proc.memory_info().rss, peak, cpu * 100
    finally:
        fleet.close()
        agent.stop()


def library_floor() -> int:
    """RSS bytes of a process that only imports the libraries the bare agent serves with."""
    code = (
        "import os, fastapi, uvicorn, zeroconf, psutil, sqlite3, ssl\n"
        "print(int(open('/proc/self/statm').read().split()[1]) * os.sysconf('SC_PAGE_SIZE'))"
    )
    return int(subprocess.run([sys.executable, "-c", code], capture_output=True, check=True).stdout)


def start_times(runs: int = 15) -> tuple[float, float]:
    """(best seconds of `kitfleet-agent --help`, best of a bare `python -c pass`)."""

    def best(command: list[str]) -> float:
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            subprocess.run(command, stdout=subprocess.DEVNULL, check=True)
            times.append(time.perf_counter() - started)
        return min(times)

    return best([sys.executable, "-m", "agent", "--help"]), best([sys.executable, "-c", "pass"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        models = _three_models(tmp)
        own = {n: session_memory(models[:n]) for n in (1, 3)}
        rows = {n: measure(args.seconds, models[:n], tmp) for n in (0, 1, 3)}
    print(f"agent idle over {args.seconds:g} s each (mDNS on 127.0.0.1, metrics every 10 s)")
    for n, (rss, peak, cpu) in rows.items():
        label = "bare (no model)" if n == 0 else f"serving {n} model{'s' if n > 1 else ''}"
        print(f"  {label:<18} RSS {_mb(rss)}  peak {_mb(peak)}  CPU {cpu:6.3f} % of a core")
    for n, memory in own.items():
        print(
            f"  {n} model session{'s' if n > 1 else ''} in a process of their own: {_mb(memory['session'])}"
            f"; with ONNX Runtime's import {_mb(memory['with_runtime'])}"
        )
    bare_rss, _, bare_cpu = rows[0]
    print("  goals (ratio of the goal; <= 1.00 meets it):")
    floor = library_floor()
    print(
        f"    bare RSS <= {BARE_GOAL_MB:g} MB: {bare_rss / 1e6:.1f} MB, "
        f"ratio {bare_rss / 1e6 / BARE_GOAL_MB:.2f}x"
        f" (the libraries it serves with, imported alone: {floor / 1e6:.1f} MB)"
    )
    for n in (1, 3):
        goal = own[n]["session"] + SERVING_OVER_SESSION_MB * 1e6
        print(
            f"    serving {n} <= own sessions + {SERVING_OVER_SESSION_MB:g} MB = {goal / 1e6:.1f} MB: "
            f"{rows[n][0] / 1e6:.1f} MB, ratio {rows[n][0] / goal:.2f}x"
        )
        added = rows[n][0] - bare_rss
        print(
            f"      (serving adds {added / 1e6:.1f} MB to the bare agent; ONNX Runtime's import and "
            f"the sessions take {own[n]['with_runtime'] / 1e6:.1f} MB in a process of their own)"
        )
    print(f"    idle CPU < {CPU_GOAL_PERCENT:g} %: ratio {bare_cpu / CPU_GOAL_PERCENT:.2f}x")
    help_s, bare_s = start_times()
    print(
        f"    kitfleet-agent --help <= {HELP_GOAL_S:g} s: best {help_s:.3f} s, "
        f"ratio {help_s / HELP_GOAL_S:.2f}x (a bare interpreter here: {bare_s:.3f} s; "
        f"the agent's own {help_s - bare_s:.3f} s)"
    )
    for name, mb in ANCHORS_MB.items():
        print(f"  bare vs {name:<24} {mb:5.0f} MB  ratio {bare_rss / 1e6 / mb:.2f}x")


if __name__ == "__main__":
    main()
