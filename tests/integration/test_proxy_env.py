"""A laptop (or a kit) whose environment names a proxy still reaches its kits straight.

Kits are on the local network and every call to one is pinned to its certificate; a proxy set
for an office (HTTPS_PROXY and friends) is unreachable in the field. Here the proxy named is a
closed port on loopback: a call sent through it is refused at once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest

from app.fleet.inventory import Kit
from app.fleet.ops import FleetOps
from app.fleet.service import Fleet
from tests.integration.conftest import AgentFactory, free_port
from tests.integration.helpers import kitfleet

NAMES = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy", "all_proxy")


def test_kits_are_reached_straight_whatever_proxy_the_environment_names(
    start_agent: AgentFactory, fleet: Fleet, adopt: Callable[..., Kit], monkeypatch: pytest.MonkeyPatch
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    for name in NAMES:
        monkeypatch.setenv(name, closed)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    agent = start_agent("behind-a-proxy", mdns=False)  # readiness: GET /v1/health, straight
    adopt(agent)  # pairing and the pinned client

    async def poll() -> str:
        ops = FleetOps(fleet)
        try:
            [one] = await ops.async_poll()
            return f"{one.status} {one.detail}"
        finally:
            await ops.aclose()

    assert asyncio.run(poll()) == "online ", "the kit was polled through the proxy"
    listed = kitfleet(fleet.settings.home, "kits", "--json")  # a process of its own, same environment
    assert listed.returncode == 0, listed.stderr
    assert [k["status"] for k in json.loads(listed.stdout)] == ["online"], listed.stdout
