"""Bundle work for the window (create a bundle, receive receipts, a kit's bundle traffic), run on
the bridge's loop: the GUI thread only submits, answers come back as signals with plain data.

Both create and receive write the inventory, whose connection lives on the loop thread, so
they run there (a receipt's files are read and checked in a worker thread meanwhile); the
window never waits on them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import Signal

from app.fleet.errors import Error
from app.fleet.receipts import async_receive, bundle_traffic
from app.gui.bridges.base import SubBridge

__all__ = ["BundleRequest", "BundlesBridge"]


@dataclass(frozen=True)
class BundleRequest:
    """What the Create Bundle dialog asks for; the plan is made on the loop thread."""

    out: Path
    device_ids: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    models: list[Path] = field(default_factory=list)
    datasets: list[Path] = field(default_factory=list)
    jobs: list[Path] = field(default_factory=list)
    expires: str = "14d"


class BundlesBridge(SubBridge):
    created = Signal(object)  # app.fleet.bundles.create.Made
    create_failed = Signal(str)  # why no bundle was written
    received = Signal(object)  # app.fleet.receipts.ReceiveReport
    receive_failed = Signal(str)
    traffic_loaded = Signal(str, object)  # (device ID, BundleTraffic)

    # called on the GUI thread ---------------------------------------------------------

    def create(self, request: BundleRequest) -> None:
        self._submit("create bundle", self._async_create(request))

    def receive(self, source: Path) -> None:
        self._submit("receive", self._async_receive(source))

    def load_traffic(self, device_id: str) -> None:
        self._submit("bundle traffic", self._async_traffic(device_id))

    # on the loop thread -----------------------------------------------------------------

    async def _async_create(self, request: BundleRequest) -> None:
        from app.fleet.bundles.create import BundlePlan, create_bundle, parse_expiry

        fleet = self._host.fleet
        try:
            kits = [fleet.inventory.get(d) for d in request.device_ids]
            tagged = self._host.ops.tags.all()
            wanted = set(request.tags)
            kits += [
                k
                for k in fleet.inventory.kits()
                if wanted & set(tagged.get(k.device_id, [])) and k not in kits
            ]
            plan = BundlePlan(
                kits=kits,
                models=request.models,
                datasets=request.datasets,
                jobs=request.jobs,
                expires_s=parse_expiry(request.expires),
            )
            made = create_bundle(fleet.settings.home, fleet.inventory, fleet.audit, plan, request.out)
        except Error as exc:
            self.create_failed.emit(str(exc))
            return
        self.created.emit(made)
        for kit in plan.kits:
            self.traffic_loaded.emit(kit.device_id, bundle_traffic(fleet.inventory, kit.device_id))

    async def _async_receive(self, source: Path) -> None:
        ops = self._host.ops
        try:
            report = await async_receive(ops, source)
        except Error as exc:
            self.receive_failed.emit(str(exc))
            return
        self.received.emit(report)
        merged = sorted({r.device_id for r in report.received})
        if merged:
            self._host.views.emit([ops.view(d) for d in merged])
        for device_id in merged:
            self.traffic_loaded.emit(device_id, bundle_traffic(ops.fleet.inventory, device_id))

    async def _async_traffic(self, device_id: str) -> None:
        self.traffic_loaded.emit(device_id, bundle_traffic(self._host.fleet.inventory, device_id))
