"""Everything a request handler needs, built once at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from agent.auth.tokens import TokenStore
from agent.clock import KitClock
from agent.config import Settings
from agent.db import Database
from agent.identity import Identity
from agent.jobs.service import Jobs
from agent.metrics.ring import MetricRing
from agent.models.service import InferService
from agent.models.store import ModelStore
from agent.models.uploads import Uploads


@dataclass
class AgentState:
    settings: Settings
    identity: Identity
    db: Database
    tokens: TokenStore
    metrics: MetricRing
    models: ModelStore
    uploads: Uploads
    jobs: Jobs
    infer: InferService
    clock: KitClock

    @classmethod
    def open(cls, settings: Settings, identity: Identity) -> AgentState:
        db = Database.open(settings.data_dir, recover=True)
        models = ModelStore(settings.data_dir / "models")
        return cls(
            settings=settings,
            identity=identity,
            db=db,
            tokens=TokenStore(db),
            metrics=MetricRing(db, settings.metrics_capacity),
            models=models,
            uploads=Uploads(db, models, settings.max_model_bytes, settings.disk_reserve_bytes),
            jobs=Jobs(settings, db, models),
            infer=InferService(settings, models),
            clock=KitClock.of(settings.clock_control, settings.test_clock_offset_s),
        )
