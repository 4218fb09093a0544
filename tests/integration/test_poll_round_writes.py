"""A poll round writes what it learnt in a fixed number of transactions, however many kits it
polled (issue 19: a commit per kit, each syncing the disk, held 1,000 kits' rounds past the
poll interval), and still records when each kit was seen and why another was not."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from app.fleet.ops import FleetOps, Poll
from app.fleet.service import Fleet
from tests.integration.conftest import AgentFactory


async def _counted_round(ops: FleetOps, detailed: bool = False) -> int:
    """The COMMITs of one poll round of every adopted kit (`detailed`: health, models and jobs
    too, as the first round and every few after it read them)."""
    statements: list[str] = []
    conn = ops.fleet.inventory.db.conn
    conn.set_trace_callback(statements.append)
    try:
        await ops.async_poll(ops.fleet.inventory.kits() if detailed else None)
    finally:
        conn.set_trace_callback(None)
    return sum(s.strip().upper() == "COMMIT" for s in statements)


def test_a_round_commits_as_often_for_three_kits_as_for_one(
    start_agent: AgentFactory, fleet: Fleet, adopt: Callable[..., Any]
) -> None:
    agents = [start_agent(f"kit-{i}", mdns=False) for i in range(3)]
    adopt(agents[0])

    async def rounds() -> tuple[int, int]:
        # Health and metrics each round, as the window polls between its detailed rounds.
        ops = FleetOps(fleet, keep_connections=True, detail_every=1000)
        try:
            await ops.async_poll()  # the first round also reads facts: not the steady state
            one_kit = await _counted_round(ops)
            for agent in agents[1:]:
                await fleet.async_adopt(agent.address, agent.pair_code(), "admin")
            await ops.async_poll()
            return one_kit, await _counted_round(ops)
        finally:
            await ops.aclose()

    one_kit, three_kits = asyncio.run(rounds())
    assert all(k.last_seen_at and k.last_error == "" for k in fleet.inventory.kits())
    assert three_kits == one_kit


def test_new_agent_versions_are_written_with_the_rounds_other_writes(
    start_agent: AgentFactory, fleet: Fleet, adopt: Callable[..., Any]
) -> None:
    agents = [start_agent(f"kit-{i}", mdns=False) for i in range(3)]
    for agent in agents:
        adopt(agent)

    async def rounds() -> tuple[int, int]:
        ops = FleetOps(fleet, keep_connections=True)
        try:
            await ops.async_poll()  # facts and history read: not what is counted
            unchanged = await _counted_round(ops, detailed=True)
            for kit in fleet.inventory.kits():  # as after each kit's agent was upgraded
                fleet.inventory.update(kit.device_id, agent_version="0.0.1")
            return unchanged, await _counted_round(ops, detailed=True)
        finally:
            await ops.aclose()

    unchanged, upgraded = asyncio.run(rounds())
    assert {k.agent_version for k in fleet.inventory.kits()} == {agents[0].health()["version"]}
    assert upgraded == unchanged  # not one commit more per kit whose version changed


def test_a_kit_that_stops_answering_keeps_when_it_was_seen_and_says_why(
    start_agent: AgentFactory, fleet: Fleet, adopt: Callable[..., Any]
) -> None:
    agent = start_agent("going", mdns=False)
    adopt(agent)

    async def rounds() -> tuple[float | None, Poll]:
        ops = FleetOps(fleet, keep_connections=True)
        try:
            await ops.async_poll()
            seen = fleet.inventory.kits()[0].last_seen_at
            await asyncio.to_thread(agent.stop)
            (poll,) = await ops.async_poll()
            return seen, poll
        finally:
            await ops.aclose()

    seen, poll = asyncio.run(rounds())
    kit = fleet.inventory.kits()[0]
    assert poll.status == "offline"
    assert seen is not None
    assert kit.last_seen_at == seen
    assert kit.last_error == poll.detail != ""
