"""The window polls each kit over one kept TLS connection, round after round (issue 19).

The window's rounds start 5 s apart, and a kit's connection sits idle about that long between
its polls (it used to be the round plus 5 s). httpx drops a connection idle for 5 s by default,
so every round made a new TCP connection and TLS handshake to every kit: most of a 1,000-kit
round's CPU. The app keeps it for less than the agent waits for a next request
(agent.wire.IDLE_CLOSE_S), so it never sends on one being closed.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any

import psutil

from agent.wire import IDLE_CLOSE_S
from app.fleet.client._transport import IDLE_KEPT_S
from app.fleet.ops import FleetOps
from app.fleet.service import Fleet
from app.fleet.tls import pinned_context
from tests.integration.conftest import AgentFactory

BETWEEN_ROUNDS_S = 6.0  # the window's 5 s between rounds, and a margin
GRACEFUL_S = 10.0  # uvicorn's graceful shutdown in the agent (agent/server.py)


def _open_to(port: int) -> set[int]:
    """The local ports of this process's established TCP connections to `port`."""
    return {
        c.laddr.port
        for c in psutil.Process().net_connections("tcp")
        if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED
    }


def test_the_next_round_reuses_the_connection_of_the_last(
    start_agent: AgentFactory, fleet: Fleet, adopt: Callable[..., Any]
) -> None:
    agent = start_agent("kit", mdns=False)
    adopt(agent)

    async def two_rounds() -> tuple[set[int], set[int]]:
        ops = FleetOps(fleet, keep_connections=True)
        try:
            await ops.async_poll()
            first = _open_to(agent.port)
            await asyncio.sleep(BETWEEN_ROUNDS_S)
            polls = await ops.async_poll()
            assert [p.status for p in polls] == ["online"]
            return first, _open_to(agent.port)
        finally:
            await ops.aclose()

    first, second = asyncio.run(two_rounds())
    assert BETWEEN_ROUNDS_S < IDLE_KEPT_S
    assert len(first) == 1
    assert second == first  # the same connection: no new handshake


def test_the_agent_closes_an_idle_connection_only_after_the_app_stops_using_it(
    start_agent: AgentFactory, fleet: Fleet, adopt: Callable[..., Any]
) -> None:
    """With its default settings; closing, it sends TLS's close_notify at once, which is what
    the app's pool sees on a kept connection before it reuses one."""
    agent = start_agent("kit", mdns=False)
    kit = adopt(agent)
    context = pinned_context(kit.cert_pem)
    with socket.create_connection(("127.0.0.1", agent.port)) as raw, context.wrap_socket(raw) as tls:
        tls.sendall(b"GET /v1/health HTTP/1.1\r\nHost: kit\r\n\r\n")
        answer = tls.recv(65536)
        answered = time.monotonic()
        assert answer.startswith(b"HTTP/1.1 200")
        tls.settimeout(3 * IDLE_CLOSE_S)
        try:
            while tls.recv(65536):
                pass
        except ssl.SSLError:  # an abrupt end counts as the end too
            pass
        closed_after = time.monotonic() - answered
    assert IDLE_KEPT_S < closed_after < 3 * IDLE_CLOSE_S


def test_an_agent_stops_at_once_while_the_app_keeps_a_connection_to_it(
    start_agent: AgentFactory, fleet: Fleet, adopt: Callable[..., Any]
) -> None:
    """The window always holds one now. The agent's TLS close waits for the client's goodbye,
    which an idle client never sends: each stop waited out uvicorn's 10 s graceful shutdown."""
    agent = start_agent("kit", mdns=False)
    adopt(agent)

    async def poll_then_stop() -> int | None:
        ops = FleetOps(fleet, keep_connections=True)
        try:
            await ops.async_poll()
            assert len(_open_to(agent.port)) == 1
            agent.signal_stop()
            return await asyncio.to_thread(agent.wait_stopped, GRACEFUL_S / 2)  # None: killed
        finally:
            await ops.aclose()

    assert asyncio.run(poll_then_stop()) == 0
