"""CPU cost of the agent's work: CPU seconds per infer request and per deploy, not wall time.

Wall-clock benchmarks on a shared machine move with its load; the CPU time a process spends
on a fixed amount of work moves far less, so this is the figure to compare two versions of
the code by (issue 16: "the infer and deploy benchmarks no slower"). Counted:
- infer: the agent process's user+system CPU per request over a kept-alive pinned TLS socket
  (the raw client of `benchmarks.inference`), for a .npy tensor and a PNG image;
- deploy: the app's own CPU (this process) and the agent's (with its reaped verify child) for
  one deploy of an ~N MB model, upload + checks + install.
Run from a source tree: .venv/bin/python -m benchmarks.cpu_cost [--runs 2000] [--mb 50]
(`cd` into another checkout and run the same command to compare: the packages import from the
current directory). Prints the load average alongside, as CPU time still drifts a little with it.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
from PIL import Image

from app.fleet.deploy import async_deploy
from app.fleet.localagent import LocalAgent
from app.fleet.service import Fleet
from app.fleet.settings import AppSettings
from benchmarks.inference import _raw_call
from resources import models_dir
from tests.onnx_models import classifier


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system + times.children_user + times.children_system


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _bodies() -> dict[str, tuple[bytes, str]]:
    tensor = np.random.default_rng(0).random((1, 1, 32, 32)).astype("float32")
    npy = io.BytesIO()
    np.save(npy, tensor)
    png = io.BytesIO()
    pixels = (np.random.default_rng(1).random((32, 32, 3)) * 255).astype("uint8")
    Image.fromarray(pixels).save(png, "PNG")
    return {".npy": (npy.getvalue(), "application/x-npy"), "PNG": (png.getvalue(), "image/png")}


def _infer_cost(fleet: Fleet, agent: LocalAgent, runs: int) -> dict[str, float]:
    """Agent CPU microseconds per request, per body kind."""
    kit = fleet.inventory.resolve(agent.name)
    assert agent.process is not None
    process = psutil.Process(agent.process.pid)
    costs = {}
    for kind, (body, content_type) in _bodies().items():
        call, close = _raw_call(kit, "/v1/models/digits-cnn/infer", body, content_type)
        try:
            for _ in range(100):
                call()
            before = _cpu(process)
            for _ in range(runs):
                call()
            costs[kind] = (_cpu(process) - before) / runs * 1e6
        finally:
            close()
    return costs


def _deploy_cost(fleet: Fleet, agent: LocalAgent, model: Path, version: str) -> tuple[float, float]:
    """(app CPU s, agent CPU s) for one deploy of `model` as `version`."""
    path = model.with_name(f"{model.stem}.manifest.json")
    text = path.read_text()
    path.write_text(text.replace('"version": "1"', f'"version": "{version}"'))
    assert agent.process is not None
    process = psutil.Process(agent.process.pid)
    kit = fleet.inventory.resolve(agent.name)
    app_before, agent_before = _own_cpu(), _cpu(process)
    [outcome] = asyncio.run(async_deploy(fleet, model, [kit], False))
    assert outcome.ok, outcome.message
    time.sleep(0.5)  # the verify child is reaped and counted
    path.write_text(text)
    return _own_cpu() - app_before, _cpu(process) - agent_before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--mb", type=int, default=50)
    parser.add_argument("--deploys", type=int, default=3)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        agent = LocalAgent(Path(tmp) / "agent", "bench-cpu", mdns=False).start()
        fleet = Fleet(AppSettings.resolve(home=Path(tmp) / "app", mdns_interfaces=["127.0.0.1"]))
        try:
            asyncio.run(fleet.async_adopt(agent.address, agent.pair_code()))
            kit = fleet.inventory.resolve(agent.name)
            [ok] = asyncio.run(async_deploy(fleet, models_dir() / "digits-cnn-fp32.onnx", [kit], True))
            assert ok.ok, ok.message
            infer = _infer_cost(fleet, agent, args.runs)
            classes = max(1, args.mb * 2**20 // (4 * 3 * 64 * 64))
            model = Path(tmp) / "big.onnx"
            classifier(model, size=64, classes=classes, golden=False)
            deploys = [_deploy_cost(fleet, agent, model, f"v{i}") for i in range(args.deploys)]
        finally:
            fleet.close()
            agent.stop()
    print(f"agent CPU per infer request ({args.runs} requests, raw keep-alive TLS client), microseconds")
    for kind, micros in infer.items():
        print(f"  {kind:5} {micros:8.1f} us")
    app_cpu = min(d[0] for d in deploys)
    agent_cpu = min(d[1] for d in deploys)
    print(f"deploy of a {args.mb} MB model, CPU seconds (best of {args.deploys})")
    total = app_cpu + agent_cpu
    print(f"  app {app_cpu:6.3f} s   agent (with verify child) {agent_cpu:6.3f} s   total {total:6.3f} s")
    print(f"load average: {load_before:.2f} before, {os.getloadavg()[0]:.2f} after")


if __name__ == "__main__":
    main()
