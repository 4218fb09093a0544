"""Fleet operations against real agents: audit on both sides, history, offline state, report."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from agent.wire import JobRequest, ScheduleRequest
from app.fleet import summary
from app.fleet.alerts import Thresholds
from app.fleet.deploy import async_deploy
from app.fleet.errors import AgentError
from app.fleet.inventory import Kit
from app.fleet.localagent import LocalAgent
from app.fleet.ops import FleetOps
from app.fleet.service import Fleet
from resources import models_dir
from tests.integration.conftest import AgentFactory
from tests.integration.helpers import kitfleet, pair, raw_client

FP32 = models_dir() / "digits-cnn-fp32.onnx"
INT8 = models_dir() / "digits-cnn-int8.onnx"


def quick_agent(start_agent: AgentFactory, tmp_path: Path, name: str) -> LocalAgent:
    """A real agent that samples its metrics every 0.2 s, so history grows within a test."""
    data_dir = tmp_path / "agents" / name
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "agent.json").write_text(json.dumps({"metrics_interval_s": 0.2}))
    return start_agent(name, mdns=False)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def wait_for_samples(ops: FleetOps, kit: Kit, n: int) -> None:
    deadline = time.monotonic() + 20
    while ops.history.count(kit.device_id) < n and time.monotonic() < deadline:
        run(ops.async_poll([kit]))
        time.sleep(0.3)
    assert ops.history.count(kit.device_id) >= n


async def every_action(fleet: Fleet, kit: Kit) -> None:
    """What a technician does in a day, through the app's own client, with one refusal."""
    assert all(o.ok for o in await async_deploy(fleet, FP32, [kit], activate=True))
    assert all(o.ok for o in await async_deploy(fleet, INT8, [kit], activate=True))
    await fleet.async_call(kit, lambda c: c.rollback("digits-cnn"))
    await fleet.async_call(kit, lambda c: c.activate("digits-cnn", "1.0-int8"))
    await fleet.async_call(kit, lambda c: c.delete_version("digits-cnn", "1.0"))
    with pytest.raises(AgentError):
        await fleet.async_call(kit, lambda c: c.activate("digits-cnn", "9.9"))
    later = JobRequest(
        kind="benchmark",
        params={"model": "digits-cnn", "runs": 1},
        not_before=time.time() + 86400,
        label="tomorrow",
    )
    job, _ = await fleet.async_call(kit, lambda c: c.submit_job(later))
    await fleet.async_call(kit, lambda c: c.cancel_job(job.job_id))
    await fleet.async_call(kit, lambda c: c.delete_job(job.job_id))
    schedule = await fleet.async_call(
        kit, lambda c: c.create_schedule(ScheduleRequest(name="nightly", cron="0 3 * * *", job=later))
    )
    await fleet.async_call(kit, lambda c: c.delete_schedule(schedule.schedule_id))


KIT_ACTIONS = {
    "kit.adopt",
    "model.upload",
    "model.deploy",
    "model.rollback",
    "model.activate",
    "model.delete",
    "job.submit",
    "job.cancel",
    "job.delete",
    "schedule.create",
    "schedule.delete",
}


def test_every_action_is_audited_on_the_kit_and_in_the_app(
    start_agent: AgentFactory, fleet: Fleet, adopt: Callable[[LocalAgent], Kit]
) -> None:
    agent = start_agent("audited", mdns=False)
    kit = adopt(agent)
    run(every_action(fleet, kit))
    viewer = pair(agent, scope="viewer")
    with raw_client(agent, viewer) as client:  # a viewer may not submit: refused, and recorded
        assert (
            client.post("/v1/jobs", json={"kind": "benchmark", "params": {"model": "digits-cnn"}}).status_code
            == 403
        )
    viewer_id = next(
        t["token_id"] for t in raw_client(agent, kit.token).get("/v1/tokens").json() if t["scope"] == "viewer"
    )
    with raw_client(agent, kit.token) as client:
        assert client.delete(f"/v1/tokens/{viewer_id}").status_code == 204

    ops = FleetOps(fleet)
    run(ops.async_poll())
    pulled = fleet.audit.kit_entries(kit.device_id)
    assert KIT_ACTIONS | {"token.revoke"} <= {e.action for e in pulled}
    assert ops.view(kit.device_id).chain.problems == []
    ours = [e for e in pulled if e.actor_id == kit.token_id]
    assert {e.action for e in ours} >= KIT_ACTIONS
    assert {e.actor_label for e in ours} == {f"kitfleet ({fleet.inventory.app_id})"}
    refused = [e for e in pulled if e.action == "model.activate" and e.outcome != "ok"]
    assert [e.outcome for e in refused] == ["404 version_not_found"]
    by_viewer = [e for e in pulled if e.action == "job.submit" and e.outcome.startswith("403")]
    assert by_viewer
    assert by_viewer[0].actor_id != kit.token_id
    deployed = [e for e in pulled if e.action == "model.deploy"]
    assert {e.target for e in deployed} == {"digits-cnn 1.0", "digits-cnn 1.0-int8"}
    assert all(len(e.detail["sha256"]) == 64 for e in deployed)

    app_log = fleet.audit.entries(kit.device_id)
    assert {e.action for e in app_log} >= KIT_ACTIONS
    assert any(e.action == "model.activate" and e.outcome.startswith("404") for e in app_log)
    assert {e.actor_id for e in app_log} == {fleet.inventory.app_id}
    assert fleet.audit.verify() == []


def test_tampering_on_the_kit_is_flagged_when_pulled(
    start_agent: AgentFactory, fleet: Fleet, adopt: Callable[[LocalAgent], Kit]
) -> None:
    agent = start_agent("tampered", mdns=False)
    kit = adopt(agent)
    run(every_action(fleet, kit))
    ops = FleetOps(fleet)
    run(ops.async_poll())
    assert ops.view(kit.device_id).chain.ok
    agent.stop()
    with closing(sqlite3.connect(agent.data_dir / "agent.db")) as conn, conn:
        conn.execute("DROP TRIGGER audit_append_only_update")
        conn.execute(
            "UPDATE audit SET outcome = 'ok' WHERE action = 'model.activate' AND outcome != 'ok'"
        )  # hide the refused activation
    agent.start()
    fleet.inventory.update(kit.device_id, port=agent.port)
    kit = fleet.inventory.get(kit.device_id)
    status = run(ops.async_verify_audit(kit))
    assert not status.ok
    assert any("altered" in p or "differs" in p for p in status.problems), status.problems
    run(ops.async_poll())
    view = ops.view(kit.device_id)
    assert not view.chain.ok  # once broken, the kit stays flagged
    assert any(a.kind == "audit" and a.severity == "critical" for a in view.alerts)


def test_history_is_pulled_idempotently_and_a_stopped_kit_shows_last_known_data(
    start_agent: AgentFactory, tmp_path: Path, fleet: Fleet, adopt: Callable[[LocalAgent], Kit]
) -> None:
    agent = quick_agent(start_agent, tmp_path, "wanderer")
    kit = adopt(agent)
    assert all(o.ok for o in run(async_deploy(fleet, INT8, [kit], activate=True)))
    ops = FleetOps(fleet, Thresholds(offline_warn_min=0))
    wait_for_samples(ops, kit, 5)
    series = ops.history.series(kit.device_id)
    assert [s.seq for s in series] == sorted(s.seq or 0 for s in series)
    assert all(0 <= s.cpu_percent <= 100 and s.disk_free_bytes and s.disk_free_bytes > 0 for s in series)
    again = ops.history.merge(kit.device_id, series)  # the same samples again change nothing
    assert again == 0

    agent.stop()
    time.sleep(1.0)  # the kit sampled nothing more; the laptop's clock moves on
    run(ops.async_poll())
    view = ops.view(kit.device_id)
    assert view.status == "offline"
    assert view.snapshot is not None
    assert view.snapshot.active_models() == ["digits-cnn 1.0-int8"]
    assert view.sample is not None
    age = view.age()
    assert age is not None
    assert age >= 1.0
    assert any(a.kind == "offline" for a in view.alerts)
    assert ops.history.count(kit.device_id) == len(series)  # history kept while away

    agent.start()  # back, on another port as a kit found again by mDNS would be followed
    fleet.inventory.update(kit.device_id, port=agent.port)
    kit = fleet.inventory.get(kit.device_id)
    wait_for_samples(ops, kit, len(series) + 3)
    assert ops.view(kit.device_id).status == "online"


def test_kits_and_report_from_the_cli(
    start_agent: AgentFactory, tmp_path: Path, fleet: Fleet, adopt: Callable[[LocalAgent], Kit]
) -> None:
    kits = [adopt(quick_agent(start_agent, tmp_path, name)) for name in ("north-1", "north-2")]
    assert all(o.ok for o in run(async_deploy(fleet, INT8, kits, activate=True)))
    bench = JobRequest(kind="benchmark", params={"model": "digits-cnn", "runs": 5}, label="bench")
    run(fleet.async_call(kits[0], lambda c: c.submit_job(bench)))
    home = fleet.settings.home
    listed = kitfleet(home, "kits", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {r["name"]: r for r in json.loads(listed.stdout)}
    assert set(rows) == {"north-1", "north-2"}
    assert all(
        r["status"] == "online" and r["active_models"] == ["digits-cnn 1.0-int8"] for r in rows.values()
    )
    assert all(0 <= r["memory_percent"] <= 100 for r in rows.values())
    out = tmp_path / "report.html"
    deadline = time.monotonic() + 60
    while True:  # until the benchmark has finished on the kit, so its figures are in the report
        made = kitfleet(home, "report", "--out", str(out))
        assert made.returncode == 0, made.stderr
        html = out.read_text()
        if "p50" in html or time.monotonic() > deadline:
            break
        time.sleep(1)
    sha = json.loads(INT8.with_name("digits-cnn-int8.manifest.json").read_text())["sha256"]
    for name in ("north-1", "north-2"):
        assert name in html
    assert sha in html
    assert "1.0-int8" in html
    assert "p50" in html
    assert "<svg" in html
    assert "verified" in html
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")  # self-contained
    known = fleet.inventory.last_facts(kits[0].device_id)  # the hardware, from the typed facts
    assert known is not None
    assert f"{summary.memory_gib(known[0]):.1f} GiB" in html
    assert summary.int8_advice(known[0]) in html


def test_adoption_over_ssh_enrollment_is_audited_on_the_kit(tmp_path: Path) -> None:
    from agent.audit import AuditLog
    from agent.db import Database

    agent = LocalAgent(tmp_path / "enrolled", "enrolled", mdns=False)
    agent.data_dir.mkdir(parents=True)
    enrolled = json.loads(agent.run_cli("enroll", "--app-id", "app-laptop"))  # what SSH runs
    db = Database.open(agent.data_dir)
    try:
        log = AuditLog(db)
        entries = list(log.entries())
        assert log.verify() == []
    finally:
        db.close()
    assert [(e.action, e.actor_id, e.detail["via"]) for e in entries] == [
        ("kit.adopt", enrolled["token_id"], "ssh")
    ]
    assert entries[0].actor_label == "kitfleet (app-laptop) via ssh"
