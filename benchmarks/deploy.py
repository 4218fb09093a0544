"""Deploy throughput: a ~100 MB model to a loopback agent vs OpenSSH `scp` of the same file.

Goals: the whole deploy (upload + checks + activate) >= 0.8x of scp over a reused connection
(issue 19), and a resumed upload sends only the missing bytes. kitfleet's figures are the
transfer (PATCH) alone and the whole deploy including verification (sha256 + ONNX Runtime
load in a child) and activation. scp runs three ways (scp_variants.py): paying its SSH connect
as a technician's first scp does, over a kept-open connection (ControlMaster) as kitfleet's
session is, and that with AES-GCM. Runs alternate between the four.
Run: .venv/bin/python -m benchmarks.deploy [--mb 100] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from app.fleet.deploy import Progress, async_deploy
from app.fleet.localagent import LocalAgent
from app.fleet.service import Fleet
from app.fleet.settings import AppSettings
from benchmarks.scp_variants import REUSED, VARIANTS, ScpVariants
from tests.onnx_models import classifier
from tests.sshd import Sshd


def _make_model(path: Path, mb: int) -> int:
    # a linear classifier whose weight matrix is ~mb MiB: 3*64*64 inputs x classes
    classes = max(1, mb * 2**20 // (4 * 3 * 64 * 64))
    return classifier(path, size=64, classes=classes, golden=False).size_bytes


_last_version = "1"  # the manifest's version, bumped so each run is a new install


def _deploy(fleet: Fleet, agent: LocalAgent, model: Path, version: str) -> tuple[float, float]:
    """Return (transfer seconds, whole deploy seconds)."""
    global _last_version
    path = model.with_name(f"{model.stem}.manifest.json")
    path.write_text(path.read_text().replace(f'"version": "{_last_version}"', f'"version": "{version}"'))
    _last_version = version
    marks: dict[str, float] = {}

    def progress(p: Progress) -> None:
        if p.stage == "uploading":
            marks.setdefault("first", time.perf_counter())
        if p.stage == "verifying":
            marks["verifying"] = time.perf_counter()

    kit = fleet.inventory.resolve(agent.name)
    started = time.perf_counter()
    [outcome] = asyncio.run(async_deploy(fleet, model, [kit], True, progress))
    assert outcome.ok, outcome.message
    return marks["verifying"] - started, time.perf_counter() - started


def _resume(fleet: Fleet, agent: LocalAgent, model: Path) -> tuple[int, int]:
    """Send half, drop the link, deploy again: (bytes the resumed deploy sent, file size)."""
    import httpx

    from app.fleet.models import load_package

    path = model.with_name(f"{model.stem}.manifest.json")
    path.write_text(path.read_text().replace(f'"version": "{_last_version}"', '"version": "resume"'))
    manifest = load_package(model)
    kit = fleet.inventory.resolve(agent.name)
    half = manifest.size_bytes // 2
    with httpx.Client(
        base_url=f"https://{agent.address}", verify=False, headers={"Authorization": f"Bearer {kit.token}"}
    ) as client:
        upload = client.post("/v1/uploads", json={"manifest": manifest.model_dump(mode="json")}).json()
        client.patch(
            f"/v1/uploads/{upload['upload_id']}",
            content=model.read_bytes()[:half],
            headers={"Upload-Offset": "0"},
        )
    offsets: list[int] = []
    asyncio.run(
        async_deploy(
            fleet, model, [kit], False, lambda p: offsets.append(p.sent) if p.stage == "uploading" else None
        )
    )
    return manifest.size_bytes - offsets[0], manifest.size_bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = root / "big.onnx"
        size = _make_model(model, args.mb)
        sshd = Sshd(root / "sshd").start()
        agent = LocalAgent(root / "agent", "bench-deploy", mdns=False).start()
        fleet = Fleet(AppSettings.resolve(home=root / "app", mdns_interfaces=["127.0.0.1"]))
        try:
            asyncio.run(fleet.async_adopt(agent.address, agent.pair_code()))
            scp: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
            deploys = []
            with ScpVariants(sshd, root) as variants:
                for run in range(args.runs):
                    for variant in VARIANTS:
                        dest = root / f"scp-{run}-{VARIANTS.index(variant)}.bin"
                        scp[variant].append(variants.copy(variant, [model], str(dest)))
                        dest.unlink()
                    deploys.append(_deploy(fleet, agent, model, f"r{run}"))
            resent, total = _resume(fleet, agent, model)
        finally:
            fleet.close()
            agent.stop()
            sshd.stop()
    mb = size / 2**20
    rates = {variant: mb / statistics.median(times) for variant, times in scp.items()}
    rates["kitfleet upload (transfer)"] = mb / statistics.median(d[0] for d in deploys)
    rates["kitfleet whole deploy"] = mb / statistics.median(d[1] for d in deploys)
    print(f"deploy of a {mb:.0f} MiB model over loopback, median of {args.runs}, MiB/s")
    for label, rate in rates.items():
        print(f"  {label:<28} {rate:7.1f}")
    for label in ("kitfleet upload (transfer)", "kitfleet whole deploy"):
        ratios = "  ".join(f"{rates[label] / rates[v]:.2f}x {v}" for v in VARIANTS)
        print(f"  {label}: {ratios}")
    whole = rates["kitfleet whole deploy"] / rates[REUSED]
    print(f"  goal: whole deploy >= 0.8x scp over a reused connection: {whole:.2f}x")
    print(
        f"  resume after 50 %: sent {resent} of {total} bytes "
        f"(ratio {resent / (total - total // 2):.2f}x of the missing bytes)"
    )


if __name__ == "__main__":
    main()
