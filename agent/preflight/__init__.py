"""Pre-flight readiness on the kit: every kit-local check, one typed answer.

No HTTP here (the route is `agent/api/routes_preflight.py`); the laptop adds its own checks
(reachable, identity, clock skew, version match, audit chain) around this answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent import __version__
from agent.clock import KitClock
from agent.config import Settings
from agent.db import Database
from agent.models.service import InferService
from agent.models.store import ModelStore
from agent.preflight.host import check_battery, check_disk, check_thermal, check_version
from agent.preflight.queue import check_database, check_queue, check_sources
from agent.preflight.serving import check_models, check_providers
from agent.wire import PreflightAnswer, PreflightCheck, PreflightRequest

__all__ = ["Preflight"]


@dataclass
class Preflight:
    settings: Settings
    db: Database
    models: ModelStore
    infer: InferService
    device_id: str
    clock: KitClock

    def run(self, request: PreflightRequest) -> PreflightAnswer:
        """Every check, in the order a technician reads them. Blocking: run it in a thread."""
        settings = self.settings
        planned = request.for_model_bytes + request.dataset_bytes
        checks: list[PreflightCheck] = [
            check_disk(self.models.root, planned, settings.disk_reserve_bytes),
            check_thermal(),
            check_battery(),
            *check_models(self.models, request.verify_models),
            check_providers(request.providers, self.infer.sessions.info()),
            *check_sources(self.db, settings.jobs_data_roots, settings.data_dir),
            check_queue(self.db),
            check_database(self.db),
            check_version(__version__),
        ]
        return PreflightAnswer(
            checks=checks,
            ready=all(c.status != "fail" for c in checks),
            kit_time=self.clock.now(),
            agent_version=__version__,
            device_id=self.device_id,
        )
