"""Receipts from real agents: a batch-infer job run on a real ONNX model, exported with
`kitfleet-agent export` while the agent runs, and merged by `kitfleet bundle receive` into the
inventory as a pull would leave it: results, history and an unbroken audit chain. And the issue's
"done when": two kits fed only by bundles (`kitfleet-agent import`), their receipts merged, the
field report showing it all, with no call from the laptop to a kit after adoption."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from agent.wire import JobInfo
from app.fleet.ops import FleetOps
from app.fleet.receipts import ReceiptStore, job_files
from app.fleet.service import Fleet
from tests.integration.conftest import AgentFactory
from tests.integration.helpers import kitfleet, pair, raw_client
from tests.integration.test_jobs_api import configure, deploy, images, submit, wait


def agent_cli(data_dir: Path, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "agent", *args, "--data-dir", str(data_dir), "--json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return dict(json.loads(done.stdout))


def receive(fleet: Fleet, source: Path) -> dict[str, Any]:
    done = kitfleet(fleet.settings.home, "bundle", "receive", str(source), "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    return dict(json.loads(done.stdout))


def test_a_receipt_brings_back_a_batch_infer_job_its_history_and_audit(
    start_agent: AgentFactory, fleet: Fleet, adopt: Any, tmp_path: Path
) -> None:
    configure(tmp_path, "north", metrics_interval_s=0.3)
    agent = start_agent("north", mdns=False)
    kit = adopt(agent)
    images(agent.data_dir / "datasets" / "street", 12)
    with raw_client(agent, pair(agent)) as client:
        deploy(client, tmp_path)
        job = wait(client, submit(client, "batch-infer", {"model": "tiny", "folder": "street"})["job_id"])
    assert job["state"] == "done"
    stick = tmp_path / "stick"
    stick.mkdir()
    exported = agent_cli(agent.data_dir, "export", "--out", str(stick))  # the agent runs meanwhile
    assert exported["jobs"] == 1
    assert exported["metrics"] >= 1
    assert exported["audit"] >= 4  # adoption twice, the deploy, the job

    merged = receive(fleet, stick)["received"]
    assert [(r["kit"], r["seq"], r["already_merged"], r["chain_ok"]) for r in merged] == [
        ("north", 1, False, True)
    ]
    ops = FleetOps(fleet)
    snapshot = ops.snapshots.get(kit.device_id)
    assert snapshot is not None
    [known] = snapshot.jobs
    assert (known.job_id, known.state, known.result) == (job["job_id"], "done", job["result"])
    files = job_files(fleet.settings.home, kit.device_id, job["job_id"])
    assert files is not None
    rows = [json.loads(line) for line in (files / "results" / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 12
    assert "12 image(s)" in (files / "log.txt").read_text()
    assert ops.history.count(kit.device_id) == exported["metrics"]
    chain = fleet.audit.chain_status(kit.device_id)
    assert chain.ok
    kit_log = _kit_audit(agent.data_dir)
    assert [e.hash for e in fleet.audit.kit_entries(kit.device_id)] == kit_log[: chain.entries]

    time.sleep(1.0)  # a few more samples on the kit
    later = agent_cli(agent.data_dir, "export", "--out", str(stick))
    assert later["jobs"] == 0, "the job did not change since the last receipt"
    merged = receive(fleet, stick)["received"]
    assert [(r["seq"], r["already_merged"], r["chain_ok"]) for r in merged] == [
        (1, True, True),
        (2, False, True),
    ]
    assert ops.history.count(kit.device_id) == exported["metrics"] + later["metrics"]
    assert [r.seq for r in ReceiptStore(fleet.inventory).receipts(kit.device_id)] == [2, 1]

    fleet.inventory.update(kit.device_id, port=1)  # the kit is away now
    out = tmp_path / "out"
    saved = kitfleet(fleet.settings.home, "jobs", "results", "north", job["job_id"], "--out", str(out))
    assert saved.returncode == 0, saved.stderr
    assert "its receipt brought back" in saved.stdout
    folder = out / "north" / job["job_id"]
    assert sorted(p.name for p in folder.iterdir()) == ["job.json", "results.csv", "results.jsonl"]
    assert (folder / "results.jsonl").read_bytes() == (files / "results" / "results.jsonl").read_bytes()


def test_two_kits_fed_only_by_bundles_report_their_work_through_receipts(
    start_agent: AgentFactory, fleet: Fleet, adopt: Any, tmp_path: Path
) -> None:
    from tests.onnx_models import classifier

    agents = [start_agent(name, mdns=False) for name in ("east", "west")]
    kits = [adopt(a) for a in agents]  # the one time the laptop reaches them: they learn its key
    for kit in kits:  # from here on, any call from the laptop to a kit would fail
        fleet.inventory.update(kit.device_id, port=1)
    model = tmp_path / "models" / "tiny.onnx"
    model.parent.mkdir()
    classifier(model)
    images(tmp_path / "street", 10)
    spec = tmp_path / "job.json"
    spec.write_text(json.dumps({"kind": "batch-infer", "params": {"model": "tiny", "dataset": "street"}}))
    bundle = tmp_path / "stick" / "work.kfb"
    made = kitfleet(
        fleet.settings.home,
        *("bundle", "create", "--out", str(bundle), "--kit", "east", "--kit", "west", "--json"),
        *("--model", str(model), "--dataset", str(tmp_path / "street"), "--job", str(spec)),
    )
    assert made.returncode == 0, made.stderr
    sha256 = json.loads(made.stdout)["sha256"]

    for agent in agents:
        imported = agent_cli(agent.data_dir, "import", str(bundle))
        assert imported["sha256"] == sha256
        _wait_for_jobs(agent.data_dir)
        agent_cli(agent.data_dir, "export", "--out", str(tmp_path / "stick"))

    merged = receive(fleet, tmp_path / "stick")["received"]
    assert sorted((r["kit"], r["chain_ok"], r["imports_new"]) for r in merged) == [
        ("east", True, 1),
        ("west", True, 1),
    ]
    ops = FleetOps(fleet)
    for kit, agent in zip(kits, agents, strict=True):
        snapshot = ops.snapshots.get(kit.device_id)
        assert snapshot is not None
        done = [j for j in snapshot.jobs if j.kind == "batch-infer"]
        assert [(j.state, (j.result or {}).get("images")) for j in done] == [("done", 10)]
        chain = fleet.audit.chain_status(kit.device_id)
        assert chain.ok
        assert [e.hash for e in fleet.audit.kit_entries(kit.device_id)] == _kit_audit(agent.data_dir)
        [line] = ReceiptStore(fleet.inventory).imports(kit.device_id)
        assert (line.bundle_sha256, line.outcome) == (sha256, "applied")

    report = tmp_path / "report.html"
    written = kitfleet(fleet.settings.home, "report", "--offline", "--out", str(report))
    assert written.returncode == 0, written.stderr
    page = report.read_text()
    assert page.count("verified, ") >= 2, "both kits' audit chains verified"
    assert "BROKEN" not in page
    assert "Bundles and receipts" in page
    assert page.count("work.kfb") == 2
    assert page.count('<span class="ok">applied</span>') == 2


def _wait_for_jobs(data_dir: Path, timeout: float = 120.0) -> list[JobInfo]:
    """Until the kit's jobs have finished, read from its database (as `export` reads it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sqlite3.connect(f"{(data_dir / 'agent.db').as_uri()}?mode=ro", uri=True) as conn:
            states = [r[0] for r in conn.execute("SELECT state FROM jobs")]
        if states and all(s not in ("queued", "running") for s in states):
            return []
        time.sleep(0.2)
    raise AssertionError(f"the kit's jobs did not finish in {timeout} s")


def _kit_audit(data_dir: Path) -> list[str]:
    with sqlite3.connect(f"{(data_dir / 'agent.db').as_uri()}?mode=ro", uri=True) as conn:
        return [r[0] for r in conn.execute("SELECT hash FROM audit ORDER BY seq")]
