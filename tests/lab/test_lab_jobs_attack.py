"""Attacks on job submission and stream sources (issue 15: 3, 7, 8 and 9), on real agents.

3.  An operator races its own idempotent resubmission of an admin's key against deleting that
    job, hoping for an unchecked `command` job; and a command job planted in the database with
    operator scope (or none: an old row) or queued by a since-revoked admin must not run.
7.  Stream sources aimed at the kit itself (loopback in every spelling, link-local metadata,
    the agent's own port) are refused at submit, nothing connects to a listening socket there,
    and connection failures all read the same.
8.  A camera password in a stream URL never reaches a viewer, an error, a log, the audit log or
    any file in the data dir, except the 0600 secrets store.
9.  A dataset's HLS playlist or ffconcat list cannot make FFmpeg read a video outside the roots.

Every socket here is on loopback (127.0.0.0/8 or ::1); every loop is bounded in count and time.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import sqlite3
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from app.fleet.localagent import LocalAgent
from tests.integration import conftest as integration
from tests.integration.conftest import AgentFactory
from tests.integration.helpers import device_id, pair_body, raw_client
from tests.integration.test_jobs_api import wait

PY = sys.executable
start_agent = integration.start_agent  # the fixture, by name
ALLOWED_HOST = "127.0.0.2"  # a loopback address standing in for a LAN camera the admin allowed


def pair_as(agent: LocalAgent, scope: str) -> tuple[str, str]:
    """(token, token_id) for a new app paired with `scope`."""
    with raw_client(agent) as client:
        response = client.post("/v1/pair", json=pair_body(agent.pair_code(), device_id(agent), scope))
    response.raise_for_status()
    body = response.json()
    return str(body["token"]), str(body["token_id"])


def kit_settings(agent_dir: Path, **settings: Any) -> None:
    agent_dir.mkdir(parents=True, exist_ok=True)
    (agent_dir / "agent.json").write_text(json.dumps(settings))


@pytest.fixture
def allowed_host(monkeypatch: pytest.MonkeyPatch) -> str:
    """Agents started by the test allow ALLOWED_HOST as a stream source (given in the environment,
    which an agent that does not know the setting ignores)."""
    monkeypatch.setenv("KITFLEET_AGENT_ALLOWED_STREAM_HOSTS", ALLOWED_HOST)
    return ALLOWED_HOST


# --- 3. command jobs only from admins, checked where the job is made and where it starts -----


def _marker_command(folder: Path, name: str) -> list[str]:
    """A command that leaves `folder/name` behind if it ever runs."""
    return [PY, "-c", f"open({str(folder / name)!r}, 'w').close()"]


def test_an_operator_racing_a_key_against_its_deletion_never_gets_a_command_job(
        start_agent: AgentFactory, tmp_path: Path) -> None:
    kit_settings(tmp_path / "agents" / "race", jobs_allowed_commands=[PY])
    agent = start_agent("race", mdns=False)
    ran = tmp_path / "ran"
    ran.mkdir()
    admin_token, _ = pair_as(agent, "admin")
    operator_token, _ = pair_as(agent, "operator")
    admin_jobs: set[str] = set()
    created: list[dict[str, Any]] = []
    clients = [raw_client(agent, operator_token) for _ in range(6)]
    stop = threading.Event()

    def lean_on_the_database() -> None:  # other readers make the submit wait between its steps
        with raw_client(agent, operator_token) as reader:
            while not stop.is_set():
                reader.get("/v1/jobs", params={"limit": 5})

    readers = [threading.Thread(target=lean_on_the_database, daemon=True) for _ in range(2)]
    for reader in readers:
        reader.start()
    deadline = time.monotonic() + 40
    rounds = 0
    try:
        with raw_client(agent, admin_token) as admin, ThreadPoolExecutor(len(clients) + 1) as pool:
            while rounds < 150 and time.monotonic() < deadline:
                rounds += 1
                key = f"nightly-{rounds}"
                first = admin.post("/v1/jobs", json={
                    "kind": "command", "params": {"argv": [PY, "-c", "pass"]}, "idempotency_key": key,
                    "not_before": time.time() + 3600})
                assert first.status_code == 201, first.text
                job_id = first.json()["job_id"]
                admin_jobs.add(job_id)
                assert clients[0].post(f"/v1/jobs/{job_id}/cancel").status_code == 200
                body = {"kind": "command", "params": {"argv": _marker_command(ran, f"{rounds}")},
                        "idempotency_key": key}
                submits = [pool.submit(c.post, "/v1/jobs", json=body) for c in clients[1:]]
                deleted = pool.submit(clients[0].delete, f"/v1/jobs/{job_id}")
                assert deleted.result().status_code == 204
                for answer in (s.result() for s in submits):
                    assert answer.status_code < 500, answer.text
                    if answer.status_code in (200, 201) and answer.json()["job_id"] not in admin_jobs:
                        created.append(answer.json())
            made = [j for j in admin.get("/v1/jobs", params={"kind": "command", "limit": 1000}).json()
                    if j["job_id"] not in admin_jobs]
    finally:
        stop.set()
        for reader in readers:
            reader.join(10)
        for client in clients:
            client.close()
    print(f"[lab] {rounds} races run")
    assert not created, f"an operator created command job(s): {created[:3]}"
    assert not made, f"command jobs the admin never submitted: {made[:3]}"
    time.sleep(1)  # one runner pass: anything queued would start now
    assert not list(ran.iterdir()), "a command queued by an operator ran"


def _plant_command_job(data_dir: Path, argv: list[str], **columns: Any) -> str:
    """A queued command job written straight into the stopped agent's database, as an old agent
    (no submitter recorded) or someone with write access to the file would leave it."""
    job_id = secrets.token_hex(12)
    request = {"kind": "command", "params": {"argv": argv}}
    now = time.time()
    row = {"id": job_id, "kind": "command", "request": json.dumps(request), "priority": 0, "threads": 1,
           "memory_mb": 256, "gpu": 0, "state": "queued", "max_retries": 0, "not_before": 0,
           "queued_at": now, "created_at": now, "updated_at": now, **columns}
    with contextlib.closing(sqlite3.connect(data_dir / "agent.db")) as db, db:
        names, marks = ", ".join(row), ", ".join("?" * len(row))  # the test's own column names
        db.execute(f"INSERT INTO jobs ({names}) VALUES ({marks})", tuple(row.values()))
    return job_id


def test_command_jobs_without_a_live_admin_behind_them_are_refused_at_start(
        start_agent: AgentFactory, tmp_path: Path) -> None:
    kit_settings(tmp_path / "agents" / "planted", jobs_allowed_commands=[PY])
    agent = start_agent("planted", mdns=False)
    ran = tmp_path / "ran"
    ran.mkdir()
    admin_token, _ = pair_as(agent, "admin")
    _, operator_id = pair_as(agent, "operator")
    other_admin, other_admin_id = pair_as(agent, "admin")
    with raw_client(agent, other_admin) as client:  # queued by an admin whose token is revoked next
        revoked = client.post("/v1/jobs", json={"kind": "command", "params": {
            "argv": _marker_command(ran, "revoked")}, "not_before": time.time() + 4})
        assert revoked.status_code == 201, revoked.text
    with raw_client(agent, admin_token) as admin:
        assert admin.delete(f"/v1/tokens/{other_admin_id}").status_code == 204
    agent.stop()

    old = _plant_command_job(agent.data_dir, _marker_command(ran, "old"))
    _refused_at_start(agent, admin_token, {"old row, submitter unknown": old,
                                           "admin scope, revoked token": revoked.json()["job_id"]})
    agent.stop()
    columns = {r[1] for r in sqlite3.connect(agent.data_dir / "agent.db").execute("PRAGMA table_info(jobs)")}
    assert {"submitted_by", "submitter_scope"} <= columns, "the agent records who submitted each job"
    tampered = _plant_command_job(agent.data_dir, _marker_command(ran, "operator"),
                                  submitted_by=operator_id, submitter_scope="operator")
    _refused_at_start(agent, admin_token, {"operator scope": tampered})
    with raw_client(agent, admin_token) as admin:
        fine = admin.post("/v1/jobs", json={"kind": "command", "params": {
            "argv": _marker_command(ran, "fine")}})
        assert wait(admin, fine.json()["job_id"])["state"] == "done", "an admin's own job still runs"
    assert sorted(p.name for p in ran.iterdir()) == ["fine"], "only the live admin's command ran"


def _refused_at_start(agent: LocalAgent, admin_token: str, jobs: dict[str, str]) -> None:
    agent.start()
    with raw_client(agent, admin_token) as admin:
        for what, job_id in jobs.items():
            job = wait(admin, job_id, timeout=30)
            assert job["state"] == "failed", (what, job)
            assert "admin" in job["error"], (what, job["error"])
