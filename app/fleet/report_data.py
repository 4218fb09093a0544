"""What a field report holds: gathered by `report`, drawn by `report_html`, which depend on it
and not on each other's internals."""

from __future__ import annotations

from dataclasses import dataclass

from agent.wire import AuditEntry, FactFamilies, MetricSample
from app.fleet.alerts import Alert, Thresholds
from app.fleet.ops import KitView
from app.fleet.precision_store import StoredChoice
from app.fleet.receipts import BundleTraffic
from app.fleet.rollout.record import Rollout

__all__ = ["FleetReport", "KitReport"]


@dataclass(frozen=True)
class KitReport:
    view: KitView
    facts: FactFamilies | None
    facts_at: float | None
    history: list[MetricSample]
    audit: list[AuditEntry]
    preflight: AuditEntry | None = None  # the app's newest pre-flight verdict on this kit
    precision: tuple[StoredChoice, ...] = ()  # the variant chosen per model on this kit, and why
    bundles: BundleTraffic | None = None  # what reached it by bundle, and what came back by receipt


@dataclass(frozen=True)
class FleetReport:
    generated_at: float
    app_id: str
    app_label: str
    hours: float
    kits: list[KitReport]
    app_audit: list[AuditEntry]
    app_chain_problems: list[str]
    thresholds: Thresholds
    rollouts: tuple[Rollout, ...] = ()  # the newest staged rollouts, newest first

    @property
    def alerts(self) -> list[Alert]:
        return sorted((a for k in self.kits for a in k.view.alerts), key=lambda a: (a.rank, a.kit))
