"""Jobs against a real agent: every bad input refused clearly, and each kind run for real."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

from agent.wire import Manifest
from tests.integration.conftest import AgentFactory
from tests.integration.helpers import pair, raw_client, tar_archive
from tests.onnx_models import classifier

FINISHED = {"done", "failed", "cancelled", "interrupted"}


def configure(tmp_path: Path, name: str, **settings: Any) -> None:
    """Write the kit's agent.json before `start_agent(name)` starts it."""
    folder = tmp_path / "agents" / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "agent.json").write_text(json.dumps(settings))


def deploy(client: httpx.Client, tmp_path: Path, **kwargs: Any) -> Manifest:
    """Install and activate a tiny real classifier through the upload API."""
    model = tmp_path / f"model-{kwargs.get('version', '1')}.onnx"
    manifest = classifier(model, **kwargs)
    body = {"manifest": json.loads(manifest.model_dump_json()), "activate": True}
    upload = client.post("/v1/uploads", json=body).json()
    client.patch(
        f"/v1/uploads/{upload['upload_id']}", content=model.read_bytes(), headers={"Upload-Offset": "0"}
    ).raise_for_status()
    client.post(f"/v1/uploads/{upload['upload_id']}/commit").raise_for_status()
    return manifest


def images(folder: Path, count: int, seed: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for n in range(count):
        path = folder / f"img-{n:03d}.png"
        Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def submit(client: httpx.Client, kind: str, params: dict[str, Any], **extra: Any) -> dict[str, Any]:
    response = client.post("/v1/jobs", json={"kind": kind, "params": params, **extra})
    assert response.status_code == 201, response.text
    return dict(response.json())


def wait(client: httpx.Client, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["state"] in FINISHED:
            return dict(job)
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s: {job}")


def refused(response: httpx.Response, status: int, error: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = dict(response.json())
    assert body["message"], "a refusal says what was wrong"
    if error is not None:
        assert body["error"] == error, body
    return body


def test_bad_input_is_refused_clearly_and_nothing_is_queued(
    start_agent: AgentFactory, tmp_path: Path
) -> None:
    configure(tmp_path, "bad", jobs_threads=4, jobs_memory_mb=4096)
    agent = start_agent("bad", mdns=False)
    (tmp_path / "outside").mkdir()
    with raw_client(agent, pair(agent)) as admin, raw_client(agent, pair(agent, "operator")) as operator:
        deploy(admin, tmp_path)
        post = admin.post
        unknown_kind = refused(post("/v1/jobs", json={"kind": "paint", "params": {}}), 422)
        assert "batch-infer" in unknown_kind["message"]
        refused(post("/v1/jobs", json={"kind": "benchmark", "params": {}}), 422, "invalid_request")
        assert (
            "runz"
            in refused(
                post("/v1/jobs", json={"kind": "benchmark", "params": {"model": "tiny", "runz": 3}}), 422
            )["message"]
        )
        refused(
            post("/v1/jobs", json={"kind": "benchmark", "params": {"model": "tiny", "batch_sizes": [0]}}), 422
        )
        refused(
            post("/v1/jobs", json={"kind": "benchmark", "params": {"model": "ghost"}}),
            422,
            "model_not_deployed",
        )
        refused(
            post("/v1/jobs", json={"kind": "benchmark", "params": {"model": "tiny", "version": "9"}}),
            422,
            "model_not_deployed",
        )
        for folder in ("../../outside", str(tmp_path / "outside"), "/etc", "a/../../../../outside"):
            params = {"model": "tiny", "folder": folder}
            refused(
                post("/v1/jobs", json={"kind": "batch-infer", "params": params}),
                422,
                "path_outside_data_roots",
            )
        refused(
            post("/v1/jobs", json={"kind": "batch-infer", "params": {"model": "tiny", "folder": "nope"}}),
            422,
            "folder_not_found",
        )
        for resources in ({"memory_mb": 4097}, {"threads": 5}, {"gpu": 1}):
            refused(
                post(
                    "/v1/jobs",
                    json={"kind": "benchmark", "params": {"model": "tiny"}, "resources": resources},
                ),
                422,
                "impossible_resources",
            )
        refused(
            post("/v1/jobs", json={"kind": "command", "params": {"argv": ["/bin/true"]}}),
            403,
            "commands_disabled",
        )
        refused(
            operator.post("/v1/jobs", json={"kind": "command", "params": {"argv": ["/bin/true"]}}),
            403,
            "insufficient_scope",
        )
        refused(post("/v1/jobs", json={"kind": "command", "params": {"argv": "rm -rf /"}}), 422)
        job = {"kind": "benchmark", "params": {"model": "tiny"}}
        for cron in ("not a cron", "61 * * * *", "* * *", "0 0 30 2 *"):
            refused(post("/v1/schedules", json={"name": "n", "cron": cron, "job": job}), 422, "invalid_cron")
        unknown = "0" * 24
        refused(admin.get(f"/v1/jobs/{unknown}/results"), 404, "job_not_found")
        refused(admin.get(f"/v1/jobs/{unknown}/results/results.csv"), 404, "job_not_found")
        refused(admin.post(f"/v1/jobs/{unknown}/cancel"), 404, "job_not_found")
        refused(admin.get("/v1/jobs/..%2F..%2Fetc/results"), 404)
        assert admin.get("/v1/jobs").json() == [], "no refused job was queued"
        assert admin.get("/v1/schedules").json() == []
        done = wait(admin, submit(admin, "benchmark", {"model": "tiny", "runs": 2})["job_id"])
        assert done["state"] == "done"
        refused(admin.post(f"/v1/jobs/{done['job_id']}/cancel"), 409, "job_finished")
        refused(admin.get(f"/v1/jobs/{done['job_id']}/results/results.csv"), 404, "result_not_found")


def test_batch_infer_results_name_the_model_and_are_collected(
    start_agent: AgentFactory, tmp_path: Path
) -> None:
    agent = start_agent("infer", mdns=False)
    folder = agent.data_dir / "datasets" / "street"
    images(folder / "a", 30)
    images(folder / "b", 12, seed=1)
    (folder / "b" / "broken.png").write_bytes(b"not a png")
    with raw_client(agent, pair(agent)) as client:
        manifest = deploy(client, tmp_path)
        key = {"idempotency_key": "street-1"}
        job = submit(client, "batch-infer", {"model": "tiny", "folder": "street", "top_k": 2}, **key)
        again = client.post(
            "/v1/jobs",
            json={"kind": "batch-infer", "params": {"model": "tiny", "folder": "street", "top_k": 2}, **key},
        )
        assert (again.status_code, again.json()["job_id"]) == (200, job["job_id"])
        done = wait(client, job["job_id"])
        assert done["state"] == "done", done
        assert done["progress"] == {"done": 43, "total": 43}
        assert done["result"]["batch"] == 32, "a free batch dimension runs whole batches"
        assert (done["result"]["images"], done["result"]["failed"]) == (43, 1)
        listing = client.get(f"/v1/jobs/{job['job_id']}/results").json()
        assert {f["name"] for f in listing["files"]} == {"results.jsonl", "results.csv"}
        assert listing["expires_at"] > time.time() + 6 * 86400
        jsonl = client.get(f"/v1/jobs/{job['job_id']}/results/results.jsonl")
        rows = [json.loads(line) for line in jsonl.text.splitlines()]
        assert len(rows) == 43
        assert all((r["model"], r["version"], r["sha256"]) == ("tiny", "1", manifest.sha256) for r in rows)
        assert sum("error" in r for r in rows) == 1
        assert all(len(r["classes"]) == 2 for r in rows if "error" not in r)
        table = list(
            csv.DictReader(io.StringIO(client.get(f"/v1/jobs/{job['job_id']}/results/results.csv").text))
        )
        assert len(table) == 43
        assert {row["sha256"] for row in table} == {manifest.sha256}
        logs = client.get(f"/v1/jobs/{job['job_id']}/logs").json()
        assert "43 image(s)" in logs["text"]
        assert logs["finished"]
        tail = client.get(f"/v1/jobs/{job['job_id']}/logs", params={"offset": logs["next_offset"]}).json()
        assert tail["text"] == ""
        assert client.delete(f"/v1/jobs/{job['job_id']}").status_code == 204
        assert client.get(f"/v1/jobs/{job['job_id']}").status_code == 404
        assert not (agent.data_dir / "jobs" / job["job_id"]).exists()
        _uploaded_dataset(client, tmp_path)


def _uploaded_dataset(client: httpx.Client, tmp_path: Path) -> None:
    pictures = {f"cams/{p.name}": p.read_bytes() for p in images(tmp_path / "upload", 5)}
    made = client.put("/v1/datasets/cams", content=tar_archive(pictures))
    assert made.status_code == 201, made.text
    assert made.json()["files"] == 5
    refused(client.put("/v1/datasets/cams", content=tar_archive(pictures)), 409, "dataset_exists")
    refused(client.put("/v1/datasets/evil", content=tar_archive({"../escape.png": b"x"})), 422, "bad_archive")
    refused(client.put("/v1/datasets/link", content=tar_archive({}, {"etc": "/etc"})), 422, "bad_archive")
    refused(client.put("/v1/datasets/junk", content=b"not a tar at all"), 422, "bad_archive")
    assert [d["name"] for d in client.get("/v1/datasets").json()] == ["cams", "street"]
    job = wait(client, submit(client, "batch-infer", {"model": "tiny", "dataset": "cams"})["job_id"])
    assert (job["state"], job["result"]["images"]) == ("done", 5)
    refused(
        client.post(
            "/v1/jobs", json={"kind": "batch-infer", "params": {"model": "tiny", "dataset": "nothere"}}
        ),
        422,
        "dataset_not_found",
    )
    assert client.delete("/v1/datasets/cams").status_code == 204


def test_benchmark_evaluate_and_quantize_on_the_kit(start_agent: AgentFactory, tmp_path: Path) -> None:
    agent = start_agent("measure", mdns=False)
    labelled = agent.data_dir / "datasets" / "labelled"
    for n in range(4):
        images(labelled / f"class-{n}", 3, seed=n)
    images(labelled / "not-a-label", 2)
    with raw_client(agent, pair(agent)) as client:
        deploy(client, tmp_path, size=32, classes=8)
        bench = submit(
            client,
            "benchmark",
            {"model": "tiny", "batch_sizes": [1, 4], "threads": [1, 2], "runs": 20},
            resources={"threads": 2},
        )
        evaluate = submit(client, "evaluate", {"model": "tiny", "folder": str(labelled)})
        quantize = submit(client, "quantize", {"model": "tiny"})
        rows = wait(client, bench["job_id"])["result"]["rows"]
        assert [(r["batch"], r["threads"]) for r in rows] == [(1, 1), (4, 1), (1, 2), (4, 2)]
        for row in rows:
            assert 0 < row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"]
            assert row["throughput_per_s"] > 0
            assert row["peak_rss_mb"] > 10
        scored = wait(client, evaluate["job_id"])
        assert scored["state"] == "done", scored
        assert scored["result"]["images"] == 12
        assert 0 <= scored["result"]["top1_accuracy"] <= scored["result"]["top5_accuracy"] <= 1
        assert scored["result"]["unknown_folders"] == ["not-a-label"]
        made = wait(client, quantize["job_id"])
        assert made["state"] == "done", made
        assert made["result"]["installed"]
        assert made["result"]["version"] == "1-int8"
        assert made["result"]["kept_float"] == []  # its one MatMul became INT8
        advice = made["result"]["recommendation"]  # measured on the kit, worded as on the laptop
        assert advice["use"] in {"int8", "fp32"}
        assert "this kit" in advice["text"]
        versions = {v["version"]: v for v in client.get("/v1/models/tiny").json()["versions"]}
        assert versions["1-int8"]["precision"] == "int8"
        assert not versions["1-int8"]["active"]


def test_cancel_timeout_and_retries_of_running_jobs(start_agent: AgentFactory, tmp_path: Path) -> None:
    configure(tmp_path, "cmd", jobs_allowed_commands=["/bin/sleep", "/bin/false", sys.executable])
    agent = start_agent("cmd", mdns=False)
    with raw_client(agent, pair(agent)) as client:
        sleeper = submit(client, "command", {"argv": ["/bin/sleep", "30"]})
        slow = submit(client, "command", {"argv": ["/bin/sleep", "30"]}, timeout_s=1)
        flaky = submit(client, "command", {"argv": ["/bin/false"]}, max_retries=2, retry_backoff_s=0.1)
        _wait_state(client, sleeper["job_id"], "running")
        started = time.monotonic()
        cancelled = client.post(f"/v1/jobs/{sleeper['job_id']}/cancel").json()
        assert cancelled["state"] == "cancelled"
        assert time.monotonic() - started < 5
        assert "timed out after 1 s" in wait(client, slow["job_id"])["error"]
        failed = wait(client, flaky["job_id"])
        assert (failed["state"], failed["attempts"]) == ("failed", 3)
        assert "exited with status 1" in failed["error"]
        waiting = submit(client, "command", {"argv": ["/bin/sleep", "1"]}, not_before=time.time() + 3600)
        assert waiting["waiting"].startswith("not before")
        assert client.post(f"/v1/jobs/{waiting['job_id']}/cancel").json()["state"] == "cancelled"
        held = submit(client, "command", {"argv": ["/bin/sleep", "30"]})
        _wait_state(client, held["job_id"], "running")
    assert agent.stop() == 0
    with sqlite3.connect(agent.data_dir / "agent.db") as db:
        row = db.execute("SELECT state, attempts FROM jobs WHERE id = ?", (held["job_id"],)).fetchone()
    assert row == ("queued", 0), "a clean stop puts a running job back without using a retry"


def _wait_state(client: httpx.Client, job_id: str, state: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while client.get(f"/v1/jobs/{job_id}").json()["state"] != state:
        assert time.monotonic() < deadline, f"job {job_id} never became {state}"
        time.sleep(0.05)
