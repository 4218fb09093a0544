"""Building the import's services, in the running agent or in the CLI on its own."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from agent.bundles import restart
from agent.bundles.actions import Context
from agent.bundles.importer import import_bundle
from agent.config import Settings
from agent.db import Database
from agent.jobs.service import Jobs
from agent.models.store import ModelStore
from agent.models.verifier import Verifier

__all__ = ["import_here", "in_agent"]


def in_agent(settings: Settings, db: Database, device_id: str, models: ModelStore, jobs: Jobs) -> Any:
    """The running agent's importer: its own store, datasets and queue; queued jobs start at once."""
    ctx = Context(settings, models, Verifier(), jobs, running=True)

    def run(path: Path) -> dict[str, Any]:
        result = asdict(import_bundle(ctx, db, device_id, path))
        jobs.runner.wake()
        restart.restart_soon()  # after an agent upgrade switched venvs, under a service manager
        return result

    return run


def import_here(data_dir: Path, path: Path) -> dict[str, Any]:
    """Import with no agent running: the CLI builds the same services the agent would."""
    from agent.identity import load_or_create

    settings = Settings.resolve(data_dir, {})
    identity = load_or_create(data_dir)
    db = Database.open(data_dir)
    try:
        models = ModelStore(data_dir / "models")
        ctx = Context(settings, models, Verifier(), Jobs(settings, db, models))
        return asdict(import_bundle(ctx, db, identity.device_id, path))
    finally:
        db.close()
