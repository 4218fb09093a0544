"""Sneakernet cost: a signed bundle (create, copy to the stick, import on the kit) against copying
the same files with `cp` and installing them by hand through the API (issue 22).

The payload: a ~100 MiB real ONNX model (one big weight initializer) and 1,000 PNG images. The
kit is a loopback agent. The bundle's import goes the way a technician's does while the agent
runs: `kitfleet-agent import` hands the file to the agent, which verifies the signature and every
member's hash, then installs through its own verifier, store, dataset limits and queue. The
by-hand route copies with `cp -r`, then deploys the model (`kitfleet deploy`'s code) and uploads
the images as a dataset (`jobs submit --upload`'s code). Runs alternate between the two.
Run: .venv/bin/python -m benchmarks.bundle [--mb 100] [--images 1000] [--runs 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from app.fleet.bundles.create import BundlePlan, create_bundle
from app.fleet.datasets import async_ensure, scan
from app.fleet.deploy import async_deploy, prepare_package
from app.fleet.localagent import LocalAgent
from app.fleet.models import manifest_path
from app.fleet.service import Fleet
from app.fleet.settings import AppSettings
from tests.onnx_models import classifier


def _model(path: Path, mb: int) -> None:
    classes = max(1, mb * 2**20 // (4 * 3 * 64 * 64))
    manifest = classifier(path, name="big", size=64, classes=classes, golden=False)
    manifest_path(path).write_text(manifest.model_dump_json())


def _images(folder: Path, count: int) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for n in range(count):
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(folder / f"img-{n:04d}.png")


def _version(model: Path, version: str) -> None:
    """Each run installs a new version of the model (the manifest edited, the file unchanged)."""
    path = manifest_path(model)
    data = json.loads(path.read_text())
    data["version"] = version
    path.write_text(json.dumps(data))


def _fresh(images: Path, to: Path) -> Path:
    """A copy with new modification times: a new dataset name, so nothing is found on the kit."""
    shutil.copytree(images, to, copy_function=shutil.copy)
    return to


def _bundle_run(fleet: Fleet, agent: LocalAgent, model: Path, images: Path, stick: Path) -> dict[str, float]:
    kit = fleet.inventory.resolve(agent.name)
    started = time.perf_counter()
    out = stick.parent / "out.kfb"
    plan = BundlePlan(kits=[kit], models=[model], datasets=[images])
    create_bundle(fleet.settings.home, fleet.inventory, fleet.audit, plan, out)
    created = time.perf_counter()
    subprocess.run(["cp", str(out), str(stick / "out.kfb")], check=True)
    copied = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "agent", "import", str(stick / "out.kfb"), "--data-dir", str(agent.data_dir)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    imported = time.perf_counter()
    out.unlink()
    (stick / "out.kfb").unlink()
    return {"create": created - started, "copy": copied - created, "import": imported - copied}


def _by_hand_run(fleet: Fleet, agent: LocalAgent, model: Path, images: Path, stick: Path) -> dict[str, float]:
    kit = fleet.inventory.resolve(agent.name)
    started = time.perf_counter()
    subprocess.run(["cp", str(model), str(manifest_path(model)), str(stick)], check=True)
    subprocess.run(["cp", "-r", str(images), str(stick / images.name)], check=True)
    copied = time.perf_counter()
    on_stick = stick / model.name
    [outcome] = asyncio.run(
        async_deploy(fleet, on_stick, [kit], True, lambda p: None, package=prepare_package(on_stick))
    )
    assert outcome.ok, outcome.message
    deployed = time.perf_counter()

    async def upload() -> None:
        async with fleet.client(kit) as client:
            await async_ensure(client, scan(stick / images.name))

    asyncio.run(upload())
    uploaded = time.perf_counter()
    shutil.rmtree(stick)
    stick.mkdir()
    return {"copy": copied - started, "deploy": deployed - copied, "dataset": uploaded - deployed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=int, default=100)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = root / "src" / "big.onnx"
        model.parent.mkdir()
        _model(model, args.mb)
        _images(root / "src" / "images", args.images)
        stick = root / "stick"
        stick.mkdir()
        agent = LocalAgent(root / "agent", "bench-bundle", mdns=False).start()
        fleet = Fleet(AppSettings.resolve(home=root / "app", mdns_interfaces=["127.0.0.1"]))
        bundled: list[dict[str, float]] = []
        by_hand: list[dict[str, float]] = []
        try:
            asyncio.run(fleet.async_adopt(agent.address, agent.pair_code()))
            for run in range(args.runs):
                _version(model, f"b{run}")
                photos = _fresh(root / "src" / "images", root / f"photos-b{run}")
                bundled.append(_bundle_run(fleet, agent, model, photos, stick))
                _version(model, f"h{run}")
                photos = _fresh(root / "src" / "images", root / f"photos-h{run}")
                by_hand.append(_by_hand_run(fleet, agent, model, photos, stick))
        finally:
            fleet.close()
            agent.stop()
    _report(args, bundled, by_hand, load_before)


def _report(
    args: argparse.Namespace,
    bundled: list[dict[str, float]],
    by_hand: list[dict[str, float]],
    load_before: tuple[float, float, float],
) -> None:
    def median(runs: list[dict[str, float]], part: str | None = None) -> float:
        return statistics.median(sum(r.values()) if part is None else r[part] for r in runs)

    print(f"{args.mb} MiB model + {args.images} images to one loopback kit, median of {args.runs} runs, s")
    print(f"  bundle: whole {median(bundled):7.2f}")
    for part in bundled[0]:
        print(f"    {part:<8} {median(bundled, part):7.2f}")
    print(f"  cp + API by hand: whole {median(by_hand):7.2f}")
    for part in by_hand[0]:
        print(f"    {part:<8} {median(by_hand, part):7.2f}")
    print(f"  ratio bundle / by hand: {median(bundled) / median(by_hand):.2f}x")
    signed = median(bundled, "create") + median(bundled, "import")
    api = median(by_hand, "deploy") + median(by_hand, "dataset")
    print(f"  create + import vs deploy + dataset upload (transfer excluded): {signed / api:.2f}x")
    loads = "/".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"  load average before {'/'.join(f'{v:.1f}' for v in load_before)}, after {loads}")


if __name__ == "__main__":
    main()
