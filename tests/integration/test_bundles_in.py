"""Bundles in, end to end with real parts (issue 22): the laptop adopts a kit (which learns its
signing key), writes a bundle with `kitfleet bundle create`, and the kit, with no laptop, imports it
with `kitfleet-agent import`: the model installed and verified by the kit's own verifier, the
dataset unpacked under the upload limits, the job queued and run by the agent. Replays, a kill -9
mid-import and a full disk are each tried for real."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from app.fleet.localagent import LocalAgent
from app.fleet.models import manifest_path
from app.fleet.service import Fleet
from tests.integration.conftest import AgentFactory
from tests.integration.helpers import kitfleet, raw_client, small_tmpfs
from tests.integration.test_jobs_api import images, wait
from tests.onnx_models import classifier


def _model(folder: Path, name: str = "tiny", version: str = "1", seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-{version}.onnx"
    manifest = classifier(path, name=name, version=version, seed=seed)
    manifest_path(path).write_text(manifest.model_dump_json())
    return path


def _job_spec(folder: Path, dataset_folder: str) -> Path:
    spec = folder / "job.json"
    spec.write_text(
        json.dumps({"kind": "batch-infer", "params": {"model": "tiny", "dataset": dataset_folder}})
    )
    return spec


def _create(home: Path, out: Path, kit: str, *args: str) -> dict[str, Any]:
    done = kitfleet(home, "bundle", "create", "--out", str(out), "--kit", kit, "--json", *args)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def _import(data_dir: Path, bundle: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", "import", str(bundle), "--data-dir", str(data_dir), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _db(data_dir: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(data_dir / "agent.db", timeout=10)
    conn.row_factory = sqlite3.Row
    return conn


def _adopted(start_agent: AgentFactory, adopt: Any, name: str = "kit") -> tuple[LocalAgent, Any]:
    agent = start_agent(name, mdns=False)
    kit = adopt(agent)
    return agent, kit


def _active(data_dir: Path, name: str = "tiny") -> str | None:
    state = data_dir / "models" / name / "state.json"
    return json.loads(state.read_text())["active"] if state.exists() else None


def test_a_bundle_reaches_a_kit_with_no_laptop_and_runs_once(
    start_agent: AgentFactory, adopt: Any, fleet: Fleet, tmp_path: Path
) -> None:
    agent, kit = _adopted(start_agent, adopt)
    signers = json.loads(agent.run_cli("signers", "list", "--json"))
    assert [s["source"] for s in signers] == ["adoption"], "the kit learnt the app's key as it paired"
    agent.stop()  # from now on the laptop cannot reach the kit
    work = tmp_path / "work"
    images(work / "photos", 12)
    made = _create(
        fleet.settings.home,
        tmp_path / "out.kfb",
        kit.name,
        "--model", str(_model(work)),
        "--dataset", str(work / "photos"),
        "--job", str(_job_spec(work, "photos")),
    )  # fmt: skip
    assert made["sequence"] == 1

    done = _import(agent.data_dir, tmp_path / "out.kfb")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert [a["type"] for a in result["applied"]] == ["model", "dataset", "job"]
    assert _active(agent.data_dir) == "1"
    datasets = [p for p in (agent.data_dir / "datasets").iterdir() if not p.name.startswith(".")]
    assert len(datasets) == 1
    assert len(list(datasets[0].glob("*.png"))) == 12
    with _db(agent.data_dir) as conn:
        jobs = conn.execute("SELECT id, state FROM jobs").fetchall()
        record = conn.execute("SELECT * FROM bundle_imports").fetchone()
        audit = [r["action"] for r in conn.execute("SELECT action FROM audit")]
    assert [j["state"] for j in jobs] == ["queued"]
    assert (record["outcome"], record["sequence"], record["bundle_sha256"]) == ("applied", 1, made["sha256"])
    assert "bundle.import" in audit

    again = _import(agent.data_dir, tmp_path / "out.kfb")
    assert again.returncode == 1
    assert "imported already" in again.stderr

    agent.start()  # the job the bundle queued runs on the kit
    with raw_client(agent, kit.token) as client:
        job = wait(client, jobs[0]["id"])
    assert job["state"] == "done", job
    assert job["result"]["images"] == 12


def test_a_running_agent_takes_the_bundle_over_and_refuses_older_ones(
    start_agent: AgentFactory, adopt: Any, fleet: Fleet, tmp_path: Path
) -> None:
    agent, kit = _adopted(start_agent, adopt)
    work = tmp_path / "work"
    first = _create(
        fleet.settings.home, tmp_path / "1.kfb", kit.name, "--model", str(_model(work, version="1"))
    )
    second = _create(
        fleet.settings.home, tmp_path / "2.kfb", kit.name, "--model", str(_model(work, version="2", seed=1))
    )
    assert second["sequence"] > first["sequence"]
    done = _import(agent.data_dir, tmp_path / "2.kfb")  # the agent runs: handed over, applied by it
    assert done.returncode == 0, done.stderr
    assert not list((agent.data_dir / "bundles" / "inbox").glob("*.kfb")), "the hand-off is tidied"
    with raw_client(agent, kit.token) as client:
        info = client.get("/v1/models/tiny").json()
    assert [v["version"] for v in info["versions"] if v["active"]] == ["2"]
    older = _import(agent.data_dir, tmp_path / "1.kfb")
    assert older.returncode == 1
    assert "not above the last bundle" in older.stderr
    assert _active(agent.data_dir) == "2", "a replayed older bundle changed nothing"
    without = _create(fleet.settings.home, tmp_path / "r0.kfb", kit.name, "--rollback-to", "tiny", "1")
    refused = _import(agent.data_dir, tmp_path / "r0.kfb")
    assert "not installed" in refused.stderr, without
    model = str(work / "tiny-1.onnx")
    args = ("--model", model, "--no-activate", "--rollback-to", "tiny", "1")
    _create(fleet.settings.home, tmp_path / "r.kfb", kit.name, *args)
    assert _import(agent.data_dir, tmp_path / "r.kfb").returncode == 0
    assert _active(agent.data_dir) == "1"


def test_a_bundle_for_another_kit_or_from_an_unknown_key_changes_nothing(
    start_agent: AgentFactory, adopt: Any, fleet: Fleet, tmp_path: Path
) -> None:
    agent, _ = _adopted(start_agent, adopt, "kit")
    other, other_kit = _adopted(start_agent, adopt, "other")
    bundle = tmp_path / "b.kfb"
    _create(fleet.settings.home, bundle, other_kit.name, "--model", str(_model(tmp_path / "w")))
    refused = _import(agent.data_dir, bundle)
    assert refused.returncode == 1
    assert "not to this kit" in refused.stderr
    revoked = json.loads(other.run_cli("signers", "list", "--json"))[0]["key_id"]
    other.run_cli("signers", "revoke", revoked)
    refused = _import(other.data_dir, bundle)
    assert refused.returncode == 1
    assert "revoked" in refused.stderr
    assert _active(agent.data_dir) is None
    assert _active(other.data_dir) is None
    with _db(other.data_dir) as conn:
        outcomes = [r[0] for r in conn.execute("SELECT outcome FROM bundle_imports")]
    assert outcomes == ["refused"], "a refusal is on record for the receipt"


def _journalled(data_dir: Path) -> int:
    try:
        with _db(data_dir) as conn:
            return int(
                conn.execute("SELECT count(*) FROM bundle_actions WHERE outcome = 'done'").fetchone()[0]
            )
    except sqlite3.OperationalError:  # not made yet, or locked for a moment
        return 0


def test_kill_9_mid_import_then_import_again_applies_it_exactly_once(
    start_agent: AgentFactory, adopt: Any, fleet: Fleet, tmp_path: Path
) -> None:
    agent, kit = _adopted(start_agent, adopt)
    agent.stop()
    work = tmp_path / "work"
    images(work / "photos", 5)
    models = [str(_model(work, name=f"m{n}", version="1", seed=n)) for n in range(4)]
    spec = work / "job.json"
    spec.write_text(json.dumps({"kind": "batch-infer", "params": {"model": "m0", "dataset": "photos"}}))
    schedule = work / "nightly.json"
    job = {"kind": "batch-infer", "params": {"model": "m1", "dataset": "photos"}}
    schedule.write_text(json.dumps({"name": "nightly", "cron": "0 2 * * *", "job": job}))
    args = [a for m in models for a in ("--model", m)] + ["--schedule", str(schedule)]
    _create(
        fleet.settings.home,
        tmp_path / "b.kfb",
        kit.name,
        *args,
        "--dataset",
        str(work / "photos"),
        "--job",
        str(spec),
    )

    command = [
        sys.executable,
        "-m",
        "agent",
        "import",
        str(tmp_path / "b.kfb"),
        "--data-dir",
        str(agent.data_dir),
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while _journalled(agent.data_dir) < 1 and process.poll() is None:
            time.sleep(0.01)
        os.kill(process.pid, signal.SIGKILL)  # power loss, as far as the import can tell
    finally:
        process.wait()
    assert process.returncode == -signal.SIGKILL, "the import must still have been running when killed"
    with _db(agent.data_dir) as conn:
        record = conn.execute("SELECT outcome FROM bundle_imports").fetchone()
    assert record["outcome"] == "applying"
    finished_before = _journalled(agent.data_dir)
    assert 1 <= finished_before < 7

    done = _import(agent.data_dir, tmp_path / "b.kfb")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["resumed"]
    assert result["skipped"] == finished_before
    with _db(agent.data_dir) as conn:
        assert conn.execute("SELECT outcome FROM bundle_imports").fetchone()[0] == "applied"
        assert conn.execute("SELECT count(*) FROM jobs").fetchone()[0] == 1
        assert conn.execute("SELECT count(*) FROM schedules").fetchone()[0] == 1
        assert conn.execute("SELECT count(*) FROM bundle_actions WHERE outcome = 'done'").fetchone()[0] == 7
    for n in range(4):
        versions = list((agent.data_dir / "models" / f"m{n}" / "versions").iterdir())
        assert [v.name for v in versions] == ["1"], "each model installed once, nothing half-made left"
    assert len([p for p in (agent.data_dir / "datasets").iterdir() if not p.name.startswith(".")]) == 1
    assert not list((agent.data_dir / "models").glob(".bundle-*"))
    assert _import(agent.data_dir, tmp_path / "b.kfb").returncode == 1, "and never a third time"


def test_a_full_disk_leaves_nothing_half_applied_and_the_serving_model_untouched(
    adopt: Any, fleet: Fleet, tmp_path: Path
) -> None:
    with small_tmpfs(tmp_path, 24) as disk:
        agent = LocalAgent(disk / "kit", "kit", mdns=False)
        agent.data_dir.mkdir()
        (agent.data_dir / "agent.json").write_text(json.dumps({"disk_reserve_bytes": 1 << 20}))
        agent.start()
        try:
            kit = adopt(agent)
            bundle = tmp_path / "small.kfb"
            _create(
                fleet.settings.home, bundle, kit.name, "--model", str(_model(tmp_path / "w", version="1"))
            )
            assert _import(agent.data_dir, bundle).returncode == 0
        finally:
            agent.stop()
        big = _big_model(tmp_path / "w", version="2", megabytes=30)  # more than the disk holds
        images(tmp_path / "w" / "photos", 3)
        bundle = tmp_path / "big.kfb"
        _create(
            fleet.settings.home,
            bundle,
            kit.name,
            "--model",
            str(big),
            "--dataset",
            str(tmp_path / "w" / "photos"),
        )
        refused = _import(agent.data_dir, bundle)
        assert refused.returncode == 1
        assert "nothing was changed" in refused.stderr
        assert _active(agent.data_dir) == "1", "the serving model is untouched"
        assert [v.name for v in (agent.data_dir / "models" / "tiny" / "versions").iterdir()] == ["1"]
        assert not [p for p in (agent.data_dir / "datasets").iterdir()], "no dataset, not even staged"
        assert not list((agent.data_dir / "models").glob(".bundle-*"))
        with _db(agent.data_dir) as conn:
            outcomes = {
                r["bundle_sha256"]: r["outcome"] for r in conn.execute("SELECT * FROM bundle_imports")
            }
            assert conn.execute("SELECT last FROM bundle_sequence").fetchone()[0] == 1
        assert sorted(outcomes.values()) == ["applied", "refused"]


def _big_model(folder: Path, version: str, megabytes: int) -> Path:
    """A real ONNX classifier whose weight initializer is about `megabytes` MiB."""
    path = folder / f"tiny-{version}.onnx"
    classes = megabytes * 2**20 // (4 * 3 * 64 * 64)
    manifest = classifier(path, version=version, size=64, classes=classes, golden=False)
    manifest_path(path).write_text(manifest.model_dump_json())
    return path


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__]))


def test_a_disk_that_fills_mid_import_keeps_nothing_of_the_dataset_and_a_smaller_one_goes_in(
    adopt: Any, fleet: Fleet, tmp_path: Path
) -> None:
    """The payload's bytes fit, but 6,000 tiny files take a page each on tmpfs: the disk really
    fills while the dataset is written (ENOSPC, not the up-front check)."""
    with small_tmpfs(tmp_path, 20) as disk:
        agent = LocalAgent(disk / "kit", "kit", mdns=False)
        agent.data_dir.mkdir()
        (agent.data_dir / "agent.json").write_text(json.dumps({"disk_reserve_bytes": 0}))
        agent.start()
        try:
            kit = adopt(agent)
            bundle = tmp_path / "model.kfb"
            _create(
                fleet.settings.home, bundle, kit.name, "--model", str(_model(tmp_path / "w", version="1"))
            )
            assert _import(agent.data_dir, bundle).returncode == 0
        finally:
            agent.stop()
        tiny = tmp_path / "tiny"
        tiny.mkdir()
        for n in range(6000):
            (tiny / f"{n:05d}.png").write_bytes(os.urandom(64))
        bundle = tmp_path / "tiny.kfb"
        _create(fleet.settings.home, bundle, kit.name, "--dataset", str(tiny))
        failed = _import(agent.data_dir, bundle)
        assert failed.returncode == 1
        assert "filled up" in failed.stderr
        assert [p.name for p in (agent.data_dir / "datasets").iterdir()] == [], "no dataset, no staging"
        assert _active(agent.data_dir) == "1", "the serving model is untouched"
        with _db(agent.data_dir) as conn:
            assert (
                conn.execute("SELECT outcome FROM bundle_imports ORDER BY id DESC").fetchone()[0] == "failed"
            )

        (agent.data_dir / "agent.json").write_text(
            json.dumps({"disk_reserve_bytes": 0, "max_dataset_files": 10})
        )
        refused = _import(agent.data_dir, bundle)  # limits are checked again before a retry applies
        assert refused.returncode == 1
        assert "this kit takes 10 files" in refused.stderr
        for path in sorted(tiny.iterdir())[3000:]:  # the technician sends half: a new bundle
            path.unlink()
        (agent.data_dir / "agent.json").write_text(json.dumps({"disk_reserve_bytes": 0}))
        smaller = tmp_path / "smaller.kfb"
        _create(fleet.settings.home, smaller, kit.name, "--dataset", str(tiny))
        done = _import(agent.data_dir, smaller)
        assert done.returncode == 0, done.stderr
        [dataset] = list((agent.data_dir / "datasets").iterdir())
        assert len(list(dataset.iterdir())) == 3000
