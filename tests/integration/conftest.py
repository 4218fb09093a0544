"""Real agent processes on loopback, and an app core browsing mDNS on 127.0.0.1 only."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.wire import Scope
from app.fleet.localagent import LocalAgent
from app.fleet.service import Fleet
from app.fleet.settings import AppSettings

AgentFactory = Callable[..., LocalAgent]


@pytest.fixture
def start_agent(tmp_path: Path) -> Iterator[AgentFactory]:
    """Start real agents; every one is stopped at teardown, even when the test failed."""
    started: list[LocalAgent] = []

    def start(name: str = "kit", **kwargs: Any) -> LocalAgent:
        agent = LocalAgent(tmp_path / "agents" / name, name, **kwargs)
        started.append(agent)
        return agent.start()

    yield start
    for agent in started:
        agent.stop()


@pytest.fixture
def settings(tmp_path: Path) -> AppSettings:
    return AppSettings.resolve(home=tmp_path / "home", mdns_interfaces=["127.0.0.1"])


@pytest.fixture
def fleet(settings: AppSettings) -> Iterator[Fleet]:
    fleet = Fleet(settings)
    yield fleet
    fleet.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def adopt(fleet: Fleet) -> Callable[..., Any]:
    """Adopt a running agent into the test's inventory; returns the Kit. Admin by default here:
    the tests behind it read the kit's audit log and run command jobs (the app's own default,
    operator, is proven in tests/lab/test_lab_pairing_attack.py)."""
    import asyncio

    def run(agent: LocalAgent, scope: Scope = "admin") -> Any:
        return asyncio.run(fleet.async_adopt(agent.address, agent.pair_code(), scope))

    return run
