"""The kit-local pre-flight checks on a real database, a real disk and real model files."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from agent.db import Database
from agent.jobs.queue import JobQueue
from agent.jobs.submitter import Submitter
from agent.models.store import ModelStore
from agent.preflight.host import check_disk
from agent.preflight.queue import check_database, check_queue, check_sources
from agent.preflight.serving import check_models, check_providers
from agent.wire import JobRequest, worst_status
from tests.onnx_models import classifier

ADMIN = Submitter("admin-token", "admin")


def test_worst_status_orders_fail_over_warn_over_pass() -> None:
    assert worst_status(["pass", "warn", "pass"]) == "warn"
    assert worst_status(["warn", "fail"]) == "fail"
    assert worst_status([]) == "pass"


def test_disk_fails_when_the_plan_does_not_fit(tmp_path: Path) -> None:
    free = shutil.disk_usage(tmp_path).free
    assert check_disk(tmp_path, 0, 0).status in ("pass", "warn")
    short = check_disk(tmp_path, free + (1 << 30), 0)
    assert short.status == "fail"
    assert "short" in short.message
    assert "kitfleet models delete" in short.action


def test_a_job_running_past_its_timeout_is_stuck(db: Database) -> None:
    job, _ = JobQueue(db).submit(
        JobRequest.model_validate({"kind": "command", "params": {"argv": ["/bin/true"]}, "timeout_s": 10}),
        ADMIN,
    )
    assert check_queue(db).status == "pass"
    with db.transaction() as conn:
        conn.execute(
            "UPDATE jobs SET state = 'running', started_at = ? WHERE id = ?", (time.time() - 600, job.job_id)
        )
    stuck = check_queue(db)
    assert stuck.status == "fail"
    assert f"kitfleet jobs cancel KIT {job.job_id[:12]}" in stuck.action
    assert check_database(db).status == "pass"


def test_a_missing_camera_of_a_queued_stream_fails(db: Database, tmp_path: Path) -> None:
    assert [c.status for c in check_sources(db, [], tmp_path)] == ["pass"]
    with db.transaction() as conn:  # as the queue stores it, without the model it would need
        conn.execute(
            "INSERT INTO jobs (id, kind, request, priority, threads, memory_mb, gpu, state,"
            " max_retries, queued_at, created_at, updated_at)"
            " VALUES ('j1', 'stream', ?, 0, 1, 0, 0, 'queued', 0, 0, 0, 0)",
            ('{"kind": "stream", "params": {"model": "m", "source": "/dev/video97"}}',),
        )
    [camera] = check_sources(db, [], tmp_path)
    assert (camera.id, camera.status) == ("source:/dev/video97", "fail")
    assert "plug the camera in" in camera.action


def test_a_model_altered_after_install_fails_and_a_whole_one_passes(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models")
    assert [c.status for c in check_models(store, golden=False)] == ["warn"]  # nothing deployed
    model = tmp_path / "tiny.onnx"
    manifest = classifier(model)
    store.install(manifest, model)
    store.activate("tiny", "1")
    [whole] = check_models(store, golden=True)
    assert whole.status == "pass", whole.message
    assert "golden" in whole.message
    installed = store.active("tiny")[1]
    data = bytearray(installed.read_bytes())
    data[-1] ^= 0xFF
    installed.write_bytes(bytes(data))
    [altered] = check_models(store, golden=True)
    assert altered.status == "fail"
    assert "changed since install" in altered.message
    assert "kitfleet models rollback KIT tiny" in altered.action


def test_an_unavailable_provider_warns() -> None:
    check = check_providers(["NoSuchExecutionProvider"], {"sessions": []})
    assert check.status == "warn"
    assert "would run on the CPU" in check.message
    assert (
        check_providers([], {"sessions": [{"fallback": "CUDAExecutionProvider failed: no libcuda"}]}).status
        == "warn"
    )
    assert check_providers([], {"sessions": []}).status == "pass"
