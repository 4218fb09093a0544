"""GET /v1/overview: a detailed poll reads a kit in one request (issue 19: six requests a kit
made the 1,000-kit first round spend the laptop's CPU on HTTP exchanges), the same parts its
own routes answer; an agent older than the route is read part by part, asked once."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.wire import JobRequest
from app.fleet.client import KitClient
from app.fleet.deploy import async_deploy
from app.fleet.inventory import Kit
from app.fleet.ops import FleetOps
from app.fleet.service import Fleet
from app.fleet.settings import AppSettings
from resources import models_dir
from tests.integration.conftest import AgentFactory
from tests.integration.test_fleet_ops import quick_agent
from tests.lab.rogue_kit import NOT_FOUND, RogueKit, finished_job, json_answer, polled_routes

MODEL = models_dir() / "digits-cnn-fp32.onnx"


def test_the_overview_holds_what_each_route_answers(
    start_agent: AgentFactory, fleet: Fleet, adopt: Callable[..., Kit], tmp_path: Path
) -> None:
    agent = quick_agent(start_agent, tmp_path, "whole")  # a sample every 0.2 s
    kit = adopt(agent)
    assert all(o.ok for o in asyncio.run(async_deploy(fleet, MODEL, [kit], activate=True)))
    parked = JobRequest(kind="benchmark", params={"model": "digits-cnn"}, not_before=time.time() + 86400)

    async def read(client: KitClient) -> tuple[Any, ...]:
        await client.submit_job(parked)  # queued until tomorrow: the same in both reads
        whole = await client.overview(-1, 2000, 50, facts=True, audit_since=0)
        metrics = await client.metrics(since_seq=-1, limit=2000)
        models, jobs = await client.models(), await client.jobs(limit=50)
        return whole, metrics, (models, jobs, await client.audit(0), await client.facts())

    whole, metrics, (models, jobs, audit, facts) = asyncio.run(fleet.async_call(kit, read))
    assert whole.health.device_id == kit.device_id
    assert whole.health.version == kit.agent_version
    assert whole.metrics.samples
    assert metrics.samples[: len(whole.metrics.samples)] == whole.metrics.samples
    assert whole.models == models
    assert [m.name for m in models] == ["digits-cnn"]
    assert whole.jobs == jobs
    assert [j.state for j in jobs] == ["queued"]
    assert whole.audit is not None
    assert whole.audit == audit[: len(whole.audit)]
    assert len(audit) >= 3
    assert whole.facts is not None
    assert whole.facts.families.cpu == facts.families.cpu
    assert whole.facts.families.kit == facts.families.kit

    # without facts=true or audit_since, neither is read
    bare = asyncio.run(fleet.async_call(kit, lambda c: c.overview(None, 10, 1)))
    assert bare.facts is None
    assert bare.audit is None
    assert bare.audit_refused is None
    assert len(bare.jobs) == 1

    # a viewer's token gets the rest, and is told why there is no audit log, not refused whole
    viewer = Fleet(AppSettings.resolve(home=tmp_path / "viewer", mdns_interfaces=["127.0.0.1"]))
    try:
        seen = asyncio.run(viewer.async_adopt(agent.address, agent.pair_code(), "viewer"))
        limited = asyncio.run(viewer.async_call(seen, lambda c: c.overview(None, 10, 50, audit_since=0)))
    finally:
        viewer.close()
    assert limited.audit is None
    assert limited.audit_refused is not None
    assert "admin" in limited.audit_refused
    assert limited.models == models
    assert limited.jobs == jobs


def test_a_poll_round_asks_the_kit_once_and_keeps_all_it_said(
    start_agent: AgentFactory, fleet: Fleet, adopt: Callable[..., Kit], tmp_path: Path
) -> None:
    agent = quick_agent(start_agent, tmp_path, "polled")
    kit = adopt(agent)
    assert all(o.ok for o in asyncio.run(async_deploy(fleet, MODEL, [kit], activate=True)))

    async def rounds() -> Any:
        ops = FleetOps(fleet, keep_connections=True)
        try:
            [poll] = await ops.async_poll()
            return poll
        finally:
            await ops.aclose()

    poll = asyncio.run(rounds())
    assert poll.status == "online", poll.detail
    assert poll.snapshot is not None
    assert poll.snapshot.active_models() == ["digits-cnn 1.0"]
    assert poll.samples
    assert poll.facts is not None
    assert poll.facts.cpu is not None
    assert poll.audit is not None
    assert poll.audit_note == ""
    assert fleet.inventory.last_facts(kit.device_id) is not None


def _ops(home: Path) -> tuple[Fleet, FleetOps]:
    fleet = Fleet(AppSettings.resolve(home=home, mdns_interfaces=["127.0.0.1"]))
    return fleet, FleetOps(fleet, keep_connections=True, detail_every=2)


def _three_rounds(home: Path) -> list[Any]:
    """Detailed, steady, detailed: the window's first rounds with details every second one."""
    fleet, ops = _ops(home)

    async def run() -> list[Any]:
        try:
            return [(await ops.async_poll())[0] for _ in range(3)]
        finally:
            await ops.aclose()

    try:
        return asyncio.run(run())
    finally:
        fleet.close()


def test_each_detailed_round_is_one_request_and_a_steady_one_reads_metrics_only(tmp_path: Path) -> None:
    with RogueKit(tmp_path / "kit") as kit:
        kit.routes |= polled_routes(kit, [finished_job("a" * 32)])
        kit.adopt_into(tmp_path / "home")
        polls = _three_rounds(tmp_path / "home")
    assert [p.status for p in polls] == ["online"] * 3, [p.detail for p in polls]
    asked = [s.split("?")[0] for s in kit.seen]
    assert asked == ["GET /v1/overview", "GET /v1/metrics", "GET /v1/overview"], kit.seen
    assert "facts=true" in kit.seen[0], kit.seen
    assert "audit_since=" in kit.seen[0], kit.seen
    assert polls[0].snapshot is not None
    assert [j.job_id for j in polls[0].snapshot.jobs] == ["a" * 32]


def test_an_agent_without_the_overview_is_read_part_by_part_and_asked_once(tmp_path: Path) -> None:
    with RogueKit(tmp_path / "kit") as kit:
        kit.routes |= polled_routes(kit, [finished_job("b" * 32)]) | {"/v1/overview": NOT_FOUND}
        kit.adopt_into(tmp_path / "home")
        polls = _three_rounds(tmp_path / "home")
    assert [p.status for p in polls] == ["online"] * 3, [p.detail for p in polls]
    asked = [s.split("?")[0] for s in kit.seen]
    assert asked.count("GET /v1/overview") == 1, kit.seen
    assert asked.count("GET /v1/jobs") == 2, kit.seen
    assert "GET /v1/facts" in asked, kit.seen
    assert polls[2].snapshot is not None
    assert [j.job_id for j in polls[2].snapshot.jobs] == ["b" * 32]


@pytest.mark.parametrize("lie", ["another kit's device ID", "jobs that are not a list"])
def test_an_overview_naming_another_kit_or_outside_the_api_is_not_believed(tmp_path: Path, lie: str) -> None:
    with RogueKit(tmp_path / "kit") as kit:
        kit.routes |= polled_routes(kit, [])
        told = json.loads(kit.routes["/v1/overview"].body)
        if lie.startswith("another"):
            told["health"]["device_id"] = "f" * 64
        else:
            told["jobs"] = "not a list"
        kit.routes["/v1/overview"] = json_answer(told)
        kit.adopt_into(tmp_path / "home")
        [poll] = _three_rounds(tmp_path / "home")[:1]
    if lie.startswith("another"):
        assert poll.status == "identity_changed", poll.detail
    else:
        assert poll.status == "offline", poll.detail
        assert "/v1/overview" in poll.detail, poll.detail
        assert "jobs" in poll.detail, poll.detail
