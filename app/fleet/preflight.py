"""Pre-flight readiness across the fleet: the kit's own checks plus the laptop's.

The kit answers what only it can see (disk, heat, battery, its models re-verified, provider,
cameras, queue, database; `agent/preflight/`). The laptop adds what only it can judge: that
the kit answers under its pinned identity, how far its clock is from the laptop's, whether
its agent is the app's version, and whether its audit log still chains to the copy pulled
before. Each kit's verdict is written to the app's audit log, which the field report reads.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

from agent.wire import (
    AuditEntry,
    CheckStatus,
    PreflightAnswer,
    PreflightCheck,
    PreflightRequest,
    format_device_id,
    worst_status,
)
from app.fleet.errors import AgentError, Error, IdentityChanged, KitUnreachable
from app.fleet.inventory import Kit
from app.fleet.ops import FleetOps
from app.fleet.service import Fleet

__all__ = [
    "CLOCK_FAIL_S",
    "CLOCK_WARN_S",
    "PREFLIGHT_ACTION",
    "KitPreflight",
    "async_preflight",
    "check_clock",
    "last_preflight",
    "planned_request",
]

CLOCK_WARN_S, CLOCK_FAIL_S = 5.0, 60.0
PREFLIGHT_ACTION = "fleet.preflight"  # the app's audit entry of each kit's verdict


@dataclass(frozen=True)
class KitPreflight:
    kit: Kit
    checks: list[PreflightCheck] = field(default_factory=list)
    checked_at: float = 0.0

    @property
    def status(self) -> CheckStatus:
        return worst_status([c.status for c in self.checks])

    @property
    def ready(self) -> bool:
        return self.status != "fail"

    def check(self, check_id: str) -> PreflightCheck | None:
        return next((c for c in self.checks if c.id == check_id), None)


def planned_request(
    for_model: Path | None, dataset_bytes: int = 0, providers: list[str] | None = None
) -> PreflightRequest:
    """What the kit is asked to have room for: the model file (read here, its size only)."""
    size = 0
    if for_model is not None:
        try:
            size = for_model.stat().st_size
        except OSError as exc:
            raise Error(
                f"cannot read {for_model}: {exc.strerror or exc}; name an existing .onnx file"
            ) from exc
    return PreflightRequest(for_model_bytes=size, dataset_bytes=dataset_bytes, providers=providers or [])


async def async_preflight(fleet: Fleet, kits: list[Kit], request: PreflightRequest) -> list[KitPreflight]:
    """Every kit checked at once; each verdict recorded in the app's audit log."""
    ops = FleetOps(fleet)
    results = await asyncio.gather(*(_async_one(fleet, ops, kit, request) for kit in kits))
    for result in results:
        _record(fleet, result)
    return list(results)


async def _async_one(fleet: Fleet, ops: FleetOps, kit: Kit, request: PreflightRequest) -> KitPreflight:
    try:
        answer = await fleet.async_call(kit, lambda c: c.preflight(request))
    except (IdentityChanged, KitUnreachable, AgentError) as exc:
        return KitPreflight(kit, [_unreached(kit, exc)], time.time())
    got = time.time()  # the kit read its clock as it answered: compare with when it arrived
    checks = [_reached(kit, answer), check_clock(answer.kit_time, got, kit.name)]
    checks += [_version(answer), *answer.checks, await _async_audit(ops, kit)]
    return KitPreflight(kit, checks, got)


def _unreached(kit: Kit, exc: Error) -> PreflightCheck:
    if isinstance(exc, IdentityChanged):
        return PreflightCheck(
            id="reachable",
            status="fail",
            message=f"identity changed: {exc}",
            action=f"check the kit is yours, then adopt it again: `kitfleet adopt {kit.name} --code CODE`",
        )
    if isinstance(exc, AgentError):
        return PreflightCheck(
            id="reachable",
            status="fail",
            message=f"the kit refused the pre-flight: {exc}",
            action=exc.hint or "",
        )
    return PreflightCheck(
        id="reachable",
        status="fail",
        message=f"no answer from {kit.address}: {exc}",
        action="power the kit and join its network; `kitfleet discover` shows where it announces",
    )


def _reached(kit: Kit, answer: PreflightAnswer) -> PreflightCheck:
    return PreflightCheck(
        id="reachable",
        status="pass",
        message=f"answered at {kit.address} with the pinned key {format_device_id(answer.device_id)[:19]}",
    )


def check_clock(kit_time: float, laptop_time: float, kit_name: str = "KIT") -> PreflightCheck:
    """The kit's clock against the laptop's: schedules, job windows and certificates use it."""
    skew = kit_time - laptop_time
    said = f"the kit's clock is {abs(skew):.1f} s {'ahead of' if skew > 0 else 'behind'} the laptop's"
    if abs(skew) <= CLOCK_WARN_S:
        return PreflightCheck(id="clock", status="pass", message=said)
    now = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    return PreflightCheck(
        id="clock",
        status="fail" if abs(skew) > CLOCK_FAIL_S else "warn",
        message=said,
        action=f"set the kit's clock to this laptop's: `kitfleet set-clock {kit_name}` (admin token; "
        f"the window's Pre-flight has Set clocks), or on the kit `sudo timedatectl set-time '{now} UTC'`, "
        "or `sudo timedatectl set-ntp true` where it has a time server",
    )


def _version(answer: PreflightAnswer) -> PreflightCheck:
    from app import __version__

    if answer.agent_version == __version__:
        return PreflightCheck(
            id="version", status="pass", message=f"agent {answer.agent_version}, as the app"
        )
    return PreflightCheck(
        id="version",
        status="warn",
        message=f"agent {answer.agent_version}, the app is {__version__}",
        action="install the app's agent on the kit: `kitfleet provision USER@HOST`",
    )


async def _async_audit(ops: FleetOps, kit: Kit) -> PreflightCheck:
    if kit.scope != "admin":
        return PreflightCheck(
            id="audit",
            status="warn",
            message=f"not checked: a kit's audit log needs an admin token, this app holds {kit.scope}",
            action=f"adopt it with an admin token: `kitfleet adopt {kit.name} --code CODE --scope admin`",
        )
    try:
        chain = await ops.async_verify_audit(kit)
    except Error as exc:
        return PreflightCheck(id="audit", status="warn", message=f"not checked: {exc}", action="")
    if chain.problems:
        return PreflightCheck(
            id="audit",
            status="fail",
            message=chain.summary(),
            action=f"find what changed: `kitfleet audit {kit.name}`; treat the kit as tampered with",
        )
    return PreflightCheck(id="audit", status="pass", message=chain.summary())


def _record(fleet: Fleet, result: KitPreflight) -> None:
    not_passed = [f"{c.id}: {c.status}" for c in result.checks if c.status != "pass"]
    outcome = "ready" if result.ready else "not ready"
    fleet.audit.record(
        PREFLIGHT_ACTION,
        result.kit.name,
        outcome,
        result.kit.device_id,
        result.kit.name,
        {"not_passed": not_passed},
    )


def last_preflight(entries: list[AuditEntry]) -> AuditEntry | None:
    """The newest pre-flight verdict among the app's audit entries about one kit."""
    return next((e for e in reversed(entries) if e.action == PREFLIGHT_ACTION), None)
