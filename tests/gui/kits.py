"""Set up kits the way a technician would have before opening the window: adopted, with models."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from app.fleet.deploy import DeployOutcome, async_deploy
from app.fleet.localagent import LocalAgent
from app.fleet.service import Fleet
from app.fleet.settings import AppSettings

T = TypeVar("T")


def adopt(settings: AppSettings, *agents: LocalAgent) -> list[str]:
    """Adopt each agent by its pairing code; their device IDs, in order."""

    async def adopt_all(fleet: Fleet) -> list[str]:
        # admin: the windows under test show the kits' audit logs, which need it
        return [(await fleet.async_adopt(a.address, a.pair_code(), "admin")).device_id for a in agents]

    return _with_fleet(settings, adopt_all)


def deploy(settings: AppSettings, model: Path, activate: bool = True) -> list[DeployOutcome]:
    """Send `model` to every adopted kit (the CLI's `kitfleet deploy`, without the window)."""

    async def send(fleet: Fleet) -> list[DeployOutcome]:
        outcomes = await async_deploy(fleet, model, fleet.inventory.kits(), activate)
        assert all(o.ok for o in outcomes), [o.message for o in outcomes]
        return outcomes

    return _with_fleet(settings, send)


def _with_fleet(settings: AppSettings, work: Callable[[Fleet], Coroutine[Any, Any, T]]) -> T:
    fleet = Fleet(settings)
    try:
        return asyncio.run(work(fleet))
    finally:
        fleet.close()
