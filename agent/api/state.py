"""Everything a request handler needs, built once at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from agent.auth.tokens import TokenStore
from agent.config import Settings
from agent.db import Database
from agent.identity import Identity
from agent.metrics.ring import MetricRing


@dataclass
class AgentState:
    settings: Settings
    identity: Identity
    db: Database
    tokens: TokenStore
    metrics: MetricRing

    @classmethod
    def open(cls, settings: Settings, identity: Identity) -> AgentState:
        db = Database.open(settings.data_dir)
        return cls(
            settings=settings,
            identity=identity,
            db=db,
            tokens=TokenStore(db),
            metrics=MetricRing(db, settings.metrics_capacity),
        )
