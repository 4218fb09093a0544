"""`kitfleet jobs` end to end: the real CLI against real agents running the bundled digits model."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from agent.wire import Manifest
from app.fleet.deploy import async_deploy
from app.fleet.inventory import Kit
from app.fleet.localagent import LocalAgent
from app.fleet.service import Fleet
from resources import datasets_dir, models_dir
from tests.integration.conftest import AgentFactory
from tests.integration.helpers import kitfleet

MODEL = models_dir() / "digits-cnn-fp32.onnx"
MISSING = "0" * 24


def configure(tmp_path: Path, name: str, **settings: Any) -> None:
    """Write the kit's agent.json before `start_agent(name)` starts it."""
    folder = tmp_path / "agents" / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "agent.json").write_text(json.dumps(settings))


def deploy(fleet: Fleet, *kits: Kit) -> Manifest:
    outcomes = asyncio.run(async_deploy(fleet, MODEL, list(kits), activate=True))
    assert all(o.ok for o in outcomes), [o.message for o in outcomes]
    return Manifest.model_validate_json(MODEL.with_suffix("").with_suffix(".manifest.json").read_text())


def digits_subset(folder: Path, per_label: int = 2) -> int:
    """A small labelled copy of the bundled eval set: <label>/<n>.png."""
    count = 0
    for label_dir in sorted(p for p in (datasets_dir() / "digits-eval").iterdir() if p.is_dir()):
        (folder / label_dir.name).mkdir(parents=True)
        for image in sorted(label_dir.glob("*.png"))[:per_label]:
            shutil.copy(image, folder / label_dir.name / image.name)
            count += 1
    (folder / "notes.txt").write_text("not an image: left out of the upload")
    return count


def cli(fleet: Fleet, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    done = kitfleet(fleet.settings.home, *args)
    assert (done.returncode == 0) == ok, (done.returncode, done.stdout, done.stderr)
    return done


def cli_json(fleet: Fleet, *args: str) -> Any:
    return json.loads(cli(fleet, *args, "--json").stdout)


def refused(fleet: Fleet, *args: str, says: str) -> str:
    """Exit 1 with the reason: on stderr when nothing was tried, in the kit's outcome line otherwise."""
    done = cli(fleet, *args, ok=False)
    said = done.stdout + done.stderr
    assert done.returncode == 1, said
    assert says in said, said
    assert "Traceback" not in said
    return said


def test_batch_infer_from_an_uploaded_folder_watch_and_results(
    start_agent: AgentFactory, fleet: Fleet, adopt: Any, tmp_path: Path
) -> None:
    kit = adopt(start_agent("alpha", mdns=False))
    manifest = deploy(fleet, kit)
    images = digits_subset(tmp_path / "digits")

    done = cli(
        fleet,
        "jobs",
        "submit",
        "alpha",
        "--kind",
        "batch-infer",
        "--model",
        "digits-cnn",
        "--upload",
        str(tmp_path / "digits"),
        "--param",
        "top_k=3",
        "--label",
        "digits",
        "--watch",
    )
    assert "uploading images 100%" in done.stderr
    assert "done    alpha: job" in done.stdout, done.stdout
    [job] = cli_json(fleet, "jobs", "list", "alpha")
    assert (job["state"], job["progress"], job["label"]) == (
        "done",
        {"done": images, "total": images},
        "digits",
    )
    assert job["request"]["params"]["dataset"].startswith("digits-")

    again = cli_json(
        fleet,
        "jobs",
        "submit",
        "alpha",
        "--kind",
        "evaluate",
        "--model",
        "digits-cnn",
        "--upload",
        str(tmp_path / "digits"),
    )
    assert again[0]["dataset"] == job["request"]["params"]["dataset"], "the same folder is not sent twice"
    watched = cli_json(fleet, "jobs", "watch", "alpha", again[0]["job_id"])
    assert watched[0]["result"]["images"] == images
    assert watched[0]["result"]["unknown_folders"] == []
    assert 0.5 < watched[0]["result"]["top1_accuracy"] <= 1, "the bundled model reads digits"

    out = tmp_path / "out"
    shown = cli(fleet, "jobs", "results", "alpha", job["job_id"], "--out", str(out))
    folder = out / "alpha" / job["job_id"]
    assert sorted(p.name for p in folder.iterdir()) == ["job.json", "results.csv", "results.jsonl"]
    assert not [p for p in (out / "alpha").iterdir() if p.name.startswith(".")], "no partial left"
    assert f"images: {images}" in shown.stdout
    rows = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]
    assert len(rows) == images
    assert {(r["model"], r["version"], r["sha256"]) for r in rows} == {
        (manifest.name, manifest.version, manifest.sha256)
    }
    assert all(len(r["classes"]) == 3 for r in rows)
    assert sum(r["classes"][0]["label"] == r["file"].split("/")[0] for r in rows) > images // 2
    assert json.loads((folder / "job.json").read_text())["job_id"] == job["job_id"]

    logs = cli(fleet, "jobs", "logs", "alpha", job["job_id"], "--follow")
    assert f"{images} image(s)" in logs.stdout
    cli(fleet, "jobs", "results", "alpha", job["job_id"], "--out", str(out), "--forget")
    assert (folder / "results.jsonl").is_file(), "a second download replaces the first whole"
    assert [j["job_id"] for j in cli_json(fleet, "jobs", "list", "alpha")] == [again[0]["job_id"]]


def test_benchmark_table_live_bar_and_idempotent_resubmit(
    start_agent: AgentFactory, fleet: Fleet, adopt: Any
) -> None:
    kit = adopt(start_agent("bench", mdns=False))
    deploy(fleet, kit)
    args = [
        "jobs",
        "submit",
        "bench",
        "--kind",
        "benchmark",
        "--model",
        "digits-cnn",
        "--batch-sizes",
        "1,4",
        "--param",
        "runs=5",
        "--param",
        "warmup=1",
        "--key",
        "bench-1",
    ]
    [first] = cli_json(fleet, *args)
    [second] = cli_json(fleet, *args)
    assert (second["job_id"], second["created"]) == (first["job_id"], False), "one key, one job"
    assert "already queued" in second["message"]

    screen = _on_a_terminal(fleet, "jobs", "watch", "bench", first["job_id"])
    assert "\x1b[2K" in screen, "drawn in place on a terminal"
    assert "[" + "#" * 24 + "] 100%" in screen, screen
    table = cli(fleet, "jobs", "results", "bench", first["job_id"]).stdout
    assert "p50 ms" in table
    assert "items/s" in table
    rows = [line.split() for line in table.splitlines() if line.strip()[:1].isdigit()]
    assert [(r[0], r[1]) for r in rows] == [("1", "1"), ("4", "1")]
    assert all(0 < float(r[2]) <= float(r[3]) for r in rows), "p50 <= p95"
    assert "result.json" in table


def _on_a_terminal(fleet: Fleet, *args: str) -> str:
    """Run the CLI with stdout on a pseudo-terminal, as a technician sees it."""
    leader, follower = pty.openpty()
    env = dict(os.environ, KITFLEET_MDNS_INTERFACES="127.0.0.1", COLUMNS="120")
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "--home", str(fleet.settings.home), *args],
        stdout=follower,
        stderr=subprocess.PIPE,
        env=env,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # EIO: the CLI closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert process.wait(60) == 0, process.stderr.read() if process.stderr else ""
    return b"".join(chunks).decode()


def test_the_same_job_to_two_kits_when_one_is_away(
    start_agent: AgentFactory, fleet: Fleet, adopt: Any
) -> None:
    up, down = start_agent("up", mdns=False), start_agent("down", mdns=False)
    kits = adopt(up), adopt(down)
    deploy(fleet, *kits)
    down.stop()
    args = [
        "jobs",
        "submit",
        "up",
        "--kit",
        "down",
        "--kind",
        "benchmark",
        "--model",
        "digits-cnn",
        "--param",
        "runs=3",
    ]
    done = cli(fleet, *args, "--watch", ok=False)
    assert "done    up: job" in done.stdout, done.stdout
    assert "FAILED down at 127.0.0.1" in done.stdout
    assert "nothing was queued there" in done.stdout
    key = done.stdout.split("--key ")[1].split()[0]
    assert "down: retrying" in done.stderr

    down.start()
    [first_up] = cli_json(fleet, "jobs", "list", "up")
    again = {row["kit"]: row for row in cli_json(fleet, *args, "--key", key)}
    assert (again["up"]["job_id"], again["up"]["created"]) == (first_up["job_id"], False)
    assert again["down"]["created"]
    assert len(cli_json(fleet, "jobs", "list", "up")) == 1, "the retry did not queue a second job"
    listed = cli(fleet, "jobs", "watch", "down", again["down"]["job_id"]).stdout
    assert f"done    down: job {again['down']['job_id']}" in listed


def test_every_bad_input_is_refused_clearly_and_nothing_is_queued(
    start_agent: AgentFactory, fleet: Fleet, adopt: Any, tmp_path: Path
) -> None:
    configure(tmp_path, "strict", jobs_threads=2, jobs_memory_mb=2048)
    agent: LocalAgent = start_agent("strict", mdns=False)
    kit = adopt(agent)
    deploy(fleet, kit)
    (agent.data_dir / "datasets" / "street").mkdir(parents=True)
    submit = ["jobs", "submit", "strict", "--model", "digits-cnn"]
    bench = [*submit, "--kind", "benchmark"]

    refused(fleet, *submit, "--kind", "paint", says="unknown job kind 'paint'; the kinds are batch-infer")
    refused(fleet, "jobs", "submit", "strict", "--kind", "benchmark", says="a benchmark job needs model")
    refused(fleet, *bench, "--param", "runz=3", says="takes no parameter 'runz'; it takes model, version")
    refused(fleet, *bench, "--batch-sizes", "0", says="batch_sizes must be between 1 and 256")
    refused(fleet, *bench, "--batch-sizes", "one", says="--batch-sizes 'one': give whole numbers")
    refused(fleet, *bench, "--window", "25:00-06:00", says="use HH:MM-HH:MM")
    refused(fleet, *submit, "--kind", "batch-infer", says="give exactly one of folder or dataset")
    refused(fleet, *bench, "--upload", str(tmp_path), says="a benchmark job reads none")
    refused(fleet, *submit, "--kind", "batch-infer", "--upload", str(tmp_path), says="no images")
    refused(
        fleet, "jobs", "submit", "strict", "--kind", "benchmark", "--model", "ghost", says="strict: no model"
    )
    # the version is looked up on the kit before sending, as a prefix of one would be
    refused(fleet, *bench, "--version", "9.9", says="no version '9.9'")
    for folder in ("../../outside", "/etc", "street/../../../agent.json"):
        refused(
            fleet,
            *submit,
            "--kind",
            "batch-infer",
            "--folder",
            folder,
            says="is outside the folders jobs may read on this kit",
        )
    refused(fleet, *bench, "--memory-mb", "4096", says="memory_mb=4096; this kit has 2048 for jobs")
    refused(fleet, *bench, "--threads", "3", says="ask for at most threads=2")
    refused(fleet, *bench, "--cron", "61 * * * *", says="is not a usable cron expression")
    refused(fleet, *bench, "--cron", "* * *", says="is not a usable cron expression")
    refused(fleet, "jobs", "results", "strict", MISSING, says=f"strict: no job with id '{MISSING}'")
    refused(fleet, "jobs", "results", "strict", "../../etc", says="is not a job ID")
    refused(fleet, "jobs", "cancel", "strict", MISSING, says="no job with id")
    assert cli_json(fleet, "jobs", "list", "strict") == [], "no refused job was queued"
    assert cli_json(fleet, "jobs", "schedules") == [], "no refused schedule was made"

    [made] = cli_json(fleet, *bench, "--cron", "0 2 * * *", "--missed", "run_once", "--label", "nightly")
    [listed] = cli_json(fleet, "jobs", "schedules", "strict")
    assert (listed["schedule_id"], listed["name"], listed["cron"], listed["missed"]) == (
        made["schedule_id"],
        "nightly",
        "0 2 * * *",
        "run_once",
    )
    assert listed["next_run_at"] == made["next_run_at"] > 0
    assert "0 2 * * *" in cli(fleet, "jobs", "schedules").stdout
    assert cli_json(fleet, "jobs", "list", "strict") == [], "a schedule queues nothing before its time"
    cli(fleet, "jobs", "unschedule", "strict", made["schedule_id"])
    refused(fleet, "jobs", "unschedule", "strict", made["schedule_id"], says="no schedule")
    assert cli_json(fleet, "jobs", "schedules", "strict") == []

    [row] = cli_json(fleet, *bench, "--param", "runs=2", "--watch")
    assert (row["ok"], row["job"]["state"]) == (True, "done")
    refused(fleet, "jobs", "cancel", "strict", row["job_id"], says="already finished (done); cannot cancel")
    assert len(cli_json(fleet, "jobs", "list", "strict")) == 1
