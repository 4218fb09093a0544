"""Deploy throughput: a ~100 MB model to a loopback agent vs OpenSSH `scp` of the same file.

Goals: the whole deploy (upload + checks + activate) >= 0.8x of scp over a reused connection
(issue 19), and a resumed upload sends only the missing bytes. kitfleet's figures are the
transfer (PATCH) alone and the whole deploy including verification (sha256 + ONNX Runtime
load in a child) and activation. scp runs three ways (scp_variants.py): paying its SSH connect
as a technician's first scp does, over a kept-open connection (ControlMaster) as kitfleet's
session is, and that with AES-GCM. Runs alternate between the four.
The whole deploy is split where its time goes: the laptop's manifest and external-data check,
the transfer with the laptop's sha256 of the file beside it, and the commit,
with the kit's own stages from its log (sha256, waiting for a checker process, the external-data check, the
ONNX Runtime load, the signature and golden run, the install); the rest is HTTP and activation.
Both ends run on this machine, so each copy's and deploy's CPU time, summed over the whole
machine, is printed too: with the laptop and the kit sharing its cores, where a way of copying
needs more CPU than the wall time of its copy on these cores it cannot be faster.
Run: .venv/bin/python -m benchmarks.deploy [--mb 100] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psutil

from app.fleet.deploy import DeployOutcome, Progress, async_deploy, async_prepare
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


T = TypeVar("T")
_last_version = "1"  # the manifest's version, bumped so each run is a new install


@dataclass
class Run:
    """One deploy's seconds: the laptop's manifest and external-data check, its sha256 of the
    file (beside the transfer), the transfer (until the sha256 has passed too), the commit (with its stages on
    the kit, from the kit's log), and the whole."""

    laptop: float
    checks: float
    transfer: float
    commit: float
    whole: float
    kit: dict[str, float] = field(default_factory=dict)
    cpu: float = 0.0  # the machine's CPU seconds, every process and the kernel


def _busy_s() -> float:
    """CPU seconds this machine has spent busy (all cores, every process, the kernel)."""
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


def _with_cpu(work: Callable[..., T], *args: Any) -> tuple[T, float]:
    """`work(*args)`'s result and the machine's CPU seconds while it ran."""
    before = _busy_s()
    result = work(*args)
    return result, _busy_s() - before


def _deploy(fleet: Fleet, agent: LocalAgent, model: Path, version: str) -> Run:
    """One deploy the way `kitfleet deploy` does it: the manifest read and the file checked, the
    file sent while its sha256 is checked, then committed."""
    global _last_version
    path = model.with_name(f"{model.stem}.manifest.json")
    path.write_text(path.read_text().replace(f'"version": "{_last_version}"', f'"version": "{version}"'))
    _last_version = version
    marks: dict[str, float] = {}

    def progress(p: Progress) -> None:
        if p.stage == "verifying":
            marks["verifying"] = time.perf_counter()

    kit = fleet.inventory.resolve(agent.name)

    async def deploy() -> tuple[str, DeployOutcome]:
        marks["started"] = time.perf_counter()
        package = await async_prepare(model)
        marks["prepared"] = time.perf_counter()
        assert package.checks is not None, "the manifest is beside the model: checked as it is sent"
        package.checks.add_done_callback(lambda _: marks.setdefault("checked", time.perf_counter()))
        [outcome] = await async_deploy(fleet, model, [kit], True, progress, package=package)
        return package.manifest.name, outcome

    name, outcome = asyncio.run(deploy())
    ended = time.perf_counter()
    assert outcome.ok, outcome.message
    return Run(
        laptop=marks["prepared"] - marks["started"],
        checks=marks["checked"] - marks["prepared"],
        transfer=marks["verifying"] - marks["prepared"],
        commit=ended - marks["verifying"],
        whole=ended - marks["started"],
        kit=_kit_stages(agent, name, version),
    )


def _kit_stages(agent: LocalAgent, name: str, version: str) -> dict[str, float]:
    """The stages the kit logged for this install: `NAME VERSION installed; stage 0.123 s, ...`."""
    marker = f"{name} {version} installed; "
    lines = [line for line in (agent.data_dir / "stderr.log").read_text().splitlines() if marker in line]
    if not lines:
        return {}
    said = lines[-1].split(marker, 1)[1]
    pairs = re.findall(r"([\w -]+?) (\d+\.\d+) s", said)
    return {stage.strip(" ,"): float(seconds) for stage, seconds in pairs}


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
    load_before = os.getloadavg()
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
            scp_cpu: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
            deploys = []
            with ScpVariants(sshd, root) as variants:
                for run in range(args.runs):
                    for variant in VARIANTS:
                        dest = root / f"scp-{run}-{VARIANTS.index(variant)}.bin"
                        seconds, cpu = _with_cpu(variants.copy, variant, [model], str(dest))
                        scp[variant].append(seconds)
                        scp_cpu[variant].append(cpu)
                        dest.unlink()
                    deploy, cpu = _with_cpu(_deploy, fleet, agent, model, f"r{run}")
                    deploy.cpu = cpu
                    deploys.append(deploy)
            resent, total = _resume(fleet, agent, model)
        finally:
            fleet.close()
            agent.stop()
            sshd.stop()
    _report(size / 2**20, args.runs, scp, deploys, (resent, total), load_before)
    _cpu(scp, scp_cpu, deploys)


def _report(
    mb: float,
    runs: int,
    scp: dict[str, list[float]],
    deploys: list[Run],
    resume: tuple[int, int],
    load_before: tuple[float, float, float],
) -> None:
    resent, total = resume
    rates = {variant: mb / statistics.median(times) for variant, times in scp.items()}
    rates["kitfleet upload (transfer)"] = mb / statistics.median(d.transfer for d in deploys)
    rates["kitfleet whole deploy"] = mb / statistics.median(d.whole for d in deploys)
    print(f"deploy of a {mb:.0f} MiB model over loopback, median of {runs}, MiB/s")
    for label, rate in rates.items():
        print(f"  {label:<28} {rate:7.1f}")
    for label in ("kitfleet upload (transfer)", "kitfleet whole deploy"):
        ratios = "  ".join(f"{rates[label] / rates[v]:.2f}x {v}" for v in VARIANTS)
        print(f"  {label}: {ratios}")
    whole = rates["kitfleet whole deploy"] / rates[REUSED]
    print(f"  goal: whole deploy >= 0.8x scp over a reused connection: {whole:.2f}x")
    _split(deploys)
    print(
        f"  resume after 50 %: sent {resent} of {total} bytes "
        f"(ratio {resent / (total - total // 2):.2f}x of the missing bytes)"
    )
    after = os.getloadavg()
    print(f"  load average (1/5/15 min) before {_loads(load_before)}, after {_loads(after)}")


def _split(deploys: list[Run]) -> None:
    """Where the whole deploy's time went, median seconds of each part."""

    def median(values: list[float]) -> float:
        return statistics.median(values) if values else 0.0

    print(f"  time split, median s (whole {median([d.whole for d in deploys]):.2f}):")
    print(f"    laptop: manifest, external-data check   {median([d.laptop for d in deploys]):6.3f}")
    print(f"    transfer, and the laptop's sha256 done  {median([d.transfer for d in deploys]):6.3f}")
    print(f"      beside it: the laptop's sha256        {median([d.checks for d in deploys]):6.3f}")
    print(f"    commit, as the laptop waits             {median([d.commit for d in deploys]):6.3f}")
    stages = list(dict.fromkeys(stage for d in deploys for stage in d.kit))
    for stage in stages:
        print(f"      kit: {stage:<31}{median([d.kit.get(stage, 0.0) for d in deploys]):6.3f}")
    rest = [d.commit - sum(d.kit.values()) for d in deploys]
    print(f"      HTTP, activation, the rest            {median(rest):6.3f}")


def _cpu(scp: dict[str, list[float]], scp_cpu: dict[str, list[float]], deploys: list[Run]) -> None:
    """The machine's CPU seconds per copy (median), and the cores it kept busy on average."""
    cores = os.cpu_count() or 1
    rows = {v: (statistics.median(scp_cpu[v]), statistics.median(scp[v])) for v in VARIANTS}
    rows["kitfleet whole deploy"] = (
        statistics.median(d.cpu for d in deploys),
        statistics.median(d.whole for d in deploys),
    )
    print(f"  the machine's CPU per copy, median (both ends on these {cores} cores):")
    for label, (cpu, wall) in rows.items():
        print(f"    {label:<28} {cpu:6.2f} CPU s over {wall:5.2f} s, {cpu / wall:4.2f} cores busy")
    ratio = rows["kitfleet whole deploy"][0] / rows[REUSED][0]
    print(f"    kitfleet whole deploy: {ratio:.2f}x the CPU of scp over a reused connection")


def _loads(loads: tuple[float, float, float]) -> str:
    return "/".join(f"{value:.1f}" for value in loads)


if __name__ == "__main__":
    main()
