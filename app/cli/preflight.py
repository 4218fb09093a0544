"""`kitfleet preflight`: before a mission, one answer per kit, ready or not and why."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.cli.common import add_tag_option, emit, open_fleet, select_kits
from app.cli.types import CommandFactory, Handler

if TYPE_CHECKING:
    from app.fleet.preflight import KitPreflight

# The fleet and the checks are imported when the command runs (a light parser).

_MARKS = {"pass": "ok  ", "warn": "WARN", "fail": "FAIL"}


def add_commands(command: CommandFactory) -> None:
    preflight = command(
        "preflight",
        "check kits are ready for a mission: reachable, clock, disk, heat, battery, models "
        "re-verified, provider, cameras, queue, versions, audit chain; exit 1 if any check fails",
    )
    preflight.add_argument(
        "kits", nargs="*", metavar="KIT", help="kit name or device ID (default: every kit)"
    )
    add_tag_option(preflight, "the kits")
    preflight.add_argument(
        "--for-model", type=Path, metavar="M.onnx", help="a model to be deployed: is there room?"
    )
    preflight.add_argument(
        "--dataset-mb", type=float, default=0.0, metavar="MB", help="datasets planned on each kit, MiB"
    )
    preflight.add_argument(
        "--provider",
        dest="providers",
        action="append",
        default=[],
        metavar="NAME",
        help="an execution provider the mission needs, e.g. CUDAExecutionProvider (repeatable)",
    )
    preflight.add_argument(
        "--quick", action="store_true", help="hash serving models only; skip re-running their golden checks"
    )
    set_clock = command(
        "set-clock",
        "set kits' clocks to this laptop's (admin token; via the kit's systemd-timedated; audited)",
    )
    set_clock.add_argument("kits", nargs="*", metavar="KIT", help="kit name or device ID")
    add_tag_option(set_clock, "the kits")


async def _preflight(args: argparse.Namespace) -> int:
    from app.fleet.errors import Error
    from app.fleet.preflight import async_preflight, planned_request

    if args.dataset_mb < 0:
        raise Error("--dataset-mb must be 0 or more")
    request = planned_request(args.for_model, int(args.dataset_mb * (1 << 20)), args.providers)
    request.verify_models = not args.quick
    fleet = open_fleet(args)
    try:
        kits = select_kits(fleet, args.kits, args.tags) if args.kits or args.tags else fleet.inventory.kits()
        if not kits:
            raise Error("no kits to check: adopt one with `kitfleet adopt`")
        results = await async_preflight(fleet, list(kits), request)
    finally:
        fleet.close()
    emit(args, [_data(r) for r in results], _lines(results))
    return 0 if all(r.ready for r in results) else 1


def _data(result: KitPreflight) -> dict[str, Any]:
    return {
        "kit": result.kit.name,
        "device_id": result.kit.device_id,
        "status": result.status,
        "ready": result.ready,
        "checked_at": result.checked_at,
        "checks": [c.model_dump() for c in result.checks],
    }


def _lines(results: list[KitPreflight]) -> list[str]:
    width = max((len(c.id) for r in results for c in r.checks), default=8)
    kit_width = max(len(r.kit.name) for r in results)
    lines = [f"{'KIT':<{kit_width}}  {'CHECK':<{width}}  STATE  DETAIL / ACTION"]
    for result in results:
        name = result.kit.name
        for check in result.checks:
            lines.append(
                f"{name:<{kit_width}}  {check.id:<{width}}  {_MARKS[check.status]}   {check.message}"
            )
            if check.action:
                lines.append(f"{'':<{kit_width}}  {'':<{width}}         -> {check.action}")
    lines.append("")
    for result in results:
        when = time.strftime("%H:%M", time.localtime(result.checked_at))
        verdict = "READY" if result.ready else "NOT READY"
        failed = [c.id for c in result.checks if c.status == "fail"]
        warned = [c.id for c in result.checks if c.status == "warn"]
        extra = (f"; failed: {', '.join(failed)}" if failed else "") + (
            f"; warnings: {', '.join(warned)}" if warned else ""
        )
        lines.append(f"{result.kit.name}: {verdict} at {when}{extra}")
    return lines


async def _set_clock(args: argparse.Namespace) -> int:
    from app.fleet.clock import async_set_clock
    from app.fleet.errors import Error

    if not args.kits and not args.tags:
        raise Error("name the kits whose clocks to set (or --tag T); `kitfleet preflight` shows their skew")
    fleet = open_fleet(args)
    try:
        kits = select_kits(fleet, args.kits, args.tags)
        done: list[dict[str, Any]] = []
        lines: list[str] = []
        for kit in kits:
            try:
                answer = await async_set_clock(fleet, kit)
            except Error as exc:
                done.append({"kit": kit.name, "set": False, "error": str(exc)})
                lines.append(f"{kit.name}: not set: {exc}")
                continue
            done.append({"kit": kit.name, "set": True, **answer.model_dump()})
            lines.append(
                f"{kit.name}: clock moved {answer.adjusted_s:+.1f} s to this laptop's (via {answer.via})"
            )
    finally:
        fleet.close()
    emit(args, done, lines)
    return 0 if all(d["set"] for d in done) else 1


HANDLERS: dict[str, Handler] = {"preflight": _preflight, "set-clock": _set_clock}
