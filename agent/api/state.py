"""Everything a request handler needs, built once at start-up."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from agent.auth.tokens import TokenStore
from agent.config import Settings
from agent.db import Database
from agent.identity import Identity
from agent.jobs.service import Jobs
from agent.metrics.ring import MetricRing
from agent.models.store import ModelStore
from agent.models.uploads import Uploads

if TYPE_CHECKING:
    from agent.models.serving import ServingModels
    from agent.models.sessions import SessionCache


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
    _sessions: SessionCache | None = None
    _serving: ServingModels | None = None

    @property
    def sessions(self) -> SessionCache:
        """Made on first use: ONNX Runtime is imported only once a model is run."""
        if self._sessions is None:
            from agent.models.sessions import SessionCache

            self._sessions = SessionCache(self.settings.session_cache, None)
        return self._sessions

    @property
    def serving(self) -> ServingModels:
        """The serving version of each model, re-read from disk only when it changed there."""
        if self._serving is None:
            from agent.models.serving import ServingModels

            self._serving = ServingModels(self.models)
        return self._serving

    def forget_session(self, model_path: Path) -> None:
        if self._sessions is not None:
            self._sessions.evict(model_path)

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
        )
