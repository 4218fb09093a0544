"""Deploy throughput: a ~100 MB model to a loopback agent vs OpenSSH `scp` of the same file.

Goal (issue 3): >= 0.8x of scp's throughput, and a resumed upload sends only the
missing bytes. The agent's figure is the transfer (PATCH) alone and, separately,
the whole deploy including verification (sha256 + ONNX Runtime load in a child).
Run: .venv/bin/python -m benchmarks.deploy [--mb 100] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from app.fleet.deploy import Progress, async_deploy
from app.fleet.localagent import LocalAgent
from app.fleet.service import Fleet
from app.fleet.settings import AppSettings
from tests.onnx_models import classifier
from tests.sshd import Sshd


def _make_model(path: Path, mb: int) -> int:
    # a linear classifier whose weight matrix is ~mb MiB: 3*64*64 inputs x classes
    classes = max(1, mb * 2**20 // (4 * 3 * 64 * 64))
    return classifier(path, size=64, classes=classes, golden=False).size_bytes


_last_version = "1"  # the manifest's version, bumped so each run is a new install


def _scp(sshd: Sshd, src: Path, dst: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        ["scp", "-q", "-P", str(sshd.port), *sshd.ssh_options(), str(src), f"{sshd.user}@127.0.0.1:{dst}"],
        check=True,
    )
    return time.perf_counter() - started


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
    [outcome] = asyncio.run(async_deploy(fleet, model, [kit], False, progress))
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
            scp = [_scp(sshd, model, root / f"scp-{i}.bin") for i in range(args.runs)]
            deploys = [_deploy(fleet, agent, model, f"r{i}") for i in range(args.runs)]
            resent, total = _resume(fleet, agent, model)
        finally:
            fleet.close()
            agent.stop()
            sshd.stop()
    mb = size / 2**20
    scp_rate = mb / statistics.median(scp)
    transfer_rate = mb / statistics.median(d[0] for d in deploys)
    whole_rate = mb / statistics.median(d[1] for d in deploys)
    print(f"deploy of a {mb:.0f} MiB model over loopback, median of {args.runs}")
    print(f"  scp (OpenSSH)              {scp_rate:7.1f} MiB/s")
    print(
        f"  kitfleet upload (transfer) {transfer_rate:7.1f} MiB/s  ratio {transfer_rate / scp_rate:.2f}x "
        "of scp (goal >= 0.8x)"
    )
    print(f"  kitfleet deploy (+verify)  {whole_rate:7.1f} MiB/s  ratio {whole_rate / scp_rate:.2f}x of scp")
    print(
        f"  resume after 50 %: sent {resent} of {total} bytes "
        f"(ratio {resent / (total - total // 2):.2f}x of the missing bytes)"
    )


if __name__ == "__main__":
    main()
