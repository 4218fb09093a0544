"""The field report: everything a technician hands over at the end of a deployment day.

Gathered here (poll, verify every kit's audit chain, read history) into `report_data`, rendered
by `report_html` as one self-contained HTML file; `app.gui.report_pdf` prints that to PDF.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

from agent.toolkit.durable import write_atomic
from app.fleet.errors import Error
from app.fleet.inventory import Kit
from app.fleet.ops import FleetOps, KitView
from app.fleet.precision_store import PrecisionChoices
from app.fleet.preflight import last_preflight
from app.fleet.receipts import bundle_traffic
from app.fleet.report_data import FleetReport, KitReport
from app.fleet.report_html import render
from app.fleet.rollout.store import RolloutStore
from app.fleet.service import Fleet

__all__ = ["FleetReport", "KitReport", "async_build_report", "write_report"]

AUDIT_SHOWN = 200  # newest entries per log in the report
ROLLOUTS_SHOWN = 20


async def async_build_report(
    fleet: Fleet,
    hours: float = 24.0,
    poll: bool = True,
    verify: bool = True,
    only: list[Kit] | None = None,
) -> FleetReport:
    """Poll every kit (or those in `only`; unless told not to), verify their audit logs whole,
    and gather it all."""
    ops = FleetOps(fleet)
    if poll:
        polls = await ops.async_poll(only)
        if verify:
            online = [p.kit for p in polls if p.status == "online" and p.kit.scope == "admin"]
            await asyncio.gather(*(_verify(ops, kit) for kit in online))
    wanted = None if only is None else {k.device_id for k in only}
    views = [v for v in ops.views() if wanted is None or v.kit.device_id in wanted]
    kits = [_kit_report(ops, view, hours) for view in views]
    return FleetReport(
        time.time(),
        fleet.inventory.app_id,
        fleet.audit.actor_label,
        hours,
        sorted(kits, key=lambda k: k.view.kit.name.lower()),
        fleet.audit.entries(limit=AUDIT_SHOWN),
        fleet.audit.verify(),
        ops.thresholds,
        tuple(RolloutStore(fleet.inventory).all(ROLLOUTS_SHOWN)),
    )


async def _verify(ops: FleetOps, kit: Any) -> None:
    with contextlib.suppress(Error):  # gone since the poll: its last pulled state stands
        await ops.async_verify_audit(kit)


def _kit_report(ops: FleetOps, view: KitView, hours: float) -> KitReport:
    device_id = view.kit.device_id
    latest = ops.history.latest(device_id)
    history = ops.history.series(device_id, latest.ts - hours * 3600) if latest else []
    known = ops.fleet.inventory.last_facts(device_id)
    return KitReport(
        view,
        known[0] if known else None,
        known[1] if known else None,
        history,
        ops.audit.kit_entries(device_id, AUDIT_SHOWN),
        last_preflight(ops.audit.entries(device_id, AUDIT_SHOWN)),
        tuple(PrecisionChoices(ops.fleet.inventory).of_kit(device_id)),
        bundle_traffic(ops.fleet.inventory, device_id),
    )


def write_report(report: FleetReport, out: Path) -> Path:
    """Render to `out` (written whole or not at all) and return it."""
    try:
        write_atomic(out, render(report).encode("utf-8"), mode=0o644)  # a file to hand on
    except OSError as exc:
        raise Error(f"cannot write the report to {out}: {exc.strerror or exc}") from exc
    return out
