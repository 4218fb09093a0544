"""Kit commands: discover, adopt, kits, facts."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from app.cli.choices import SCOPES
from app.cli.common import age, emit, open_fleet
from app.cli.types import CommandFactory, Handler

# The rest is imported by the command that uses it, so building the parser stays light
# (tests/unit/app/test_cli_start.py).
if TYPE_CHECKING:
    from agent.wire import FactFamilies
    from app.fleet.ops import KitView


def add_commands(command: CommandFactory) -> None:
    discover = command("discover", "list kits announcing on the network now")
    discover.add_argument(
        "--interface",
        dest="sub_interfaces",
        action="append",
        metavar="IP",
        help="browse only on this address (repeatable)",
    )
    discover.add_argument("--timeout", type=float, default=3.0, help="seconds to listen")

    adopt = command("adopt", "adopt a kit with the pairing code it shows")
    adopt.add_argument("kit", help="device ID, name as announced, or HOST:PORT")
    adopt.add_argument("--code", required=True, help="from `kitfleet-agent pair-code` on the kit")
    adopt.add_argument(
        "--scope",
        choices=SCOPES,
        default="operator",
        help="what this laptop may do on the kit (default operator: models, jobs, "
        "inference); admin adds command jobs, tokens and the audit log",
    )

    command(
        "kits",
        "the inventory, with each kit's status, load, models, jobs and alerts now "
        "(last-known, marked, for kits that are away)",
    )
    tag = command(
        "tag",
        "show a kit's tags (groups, e.g. a site or the boxes of one kit), or add and remove them; "
        "`--tag T` on deploy, jobs, stream start and report then aims at every kit carrying T",
    )
    tag.add_argument("kit", help="name or device ID")
    tag.add_argument("tags", nargs="*", metavar="TAG", help="tags to add (none: show the kit's tags)")
    tag.add_argument("--remove", action="append", default=[], metavar="TAG", help="take this tag off")
    tag.add_argument("--clear", action="store_true", help="take every tag off first")
    facts = command("facts", "a kit's hardware facts (last-known when it is away)")
    facts.add_argument("kit", help="name or device ID")


async def _discover(args: argparse.Namespace) -> int:
    from app.cli.terminal import Spinner
    from app.fleet.discovery import Announcement, async_discover

    fleet = open_fleet(args)
    seen: set[str] = set()
    spinner = Spinner(f"listening for kits ({args.timeout:g} s)…")

    def appeared(a: Announcement) -> bool:  # kits as they answer, before the table at the end
        if not args.json and a.device_id not in seen:
            seen.add(a.device_id)
            spinner.say(f"found {a.name} at {a.host}:{a.port}")
        return False  # keep listening for the whole --timeout

    try:
        async with spinner.running():
            found = await async_discover(fleet.settings.mdns_interfaces, args.timeout, appeared)
        rows = []
        for a in found:
            verdict = await fleet.async_check_announcement(a)  # follows moved kits, flags impostors
            rows.append(
                {
                    "name": a.name,
                    "device_id": a.device_id,
                    "kit_model": a.kit_model,
                    "address": f"{a.host}:{a.port}",
                    "agent_version": a.agent_version,
                    "status": verdict.marking,
                    "detail": verdict.detail,
                }
            )
    finally:
        fleet.close()
    lines = [
        line
        for r in rows
        for line in (
            f"{r['name']:<24} {r['device_id'][:16]:<17} {r['address']:<22} {r['status']:<17} "
            f"{r['kit_model']}",
            *([f"    {r['detail']}"] if r["detail"] else []),
        )
    ] or [f"no kits announcing (listened {args.timeout:g} s)"]
    emit(args, rows, lines)
    return 0


async def _adopt(args: argparse.Namespace) -> int:
    fleet = open_fleet(args)
    try:
        kit = await fleet.async_adopt(args.kit, args.code, args.scope)
    finally:
        fleet.close()
    emit(
        args,
        {"device_id": kit.device_id, "name": kit.name, "address": kit.address, "scope": kit.scope},
        [f"adopted {kit.name} ({kit.device_id[:16]}…) at {kit.address}, scope {kit.scope}"],
    )
    return 0


async def _kits(args: argparse.Namespace) -> int:
    from app.fleet.ops import FleetOps
    from app.fleet.precision_store import PrecisionChoices

    fleet = open_fleet(args)
    try:
        ops = FleetOps(fleet)
        await ops.async_poll(audit=False)
        rows = [_kit_row(view, fleet.inventory.last_facts(view.kit.device_id)) for view in ops.views()]
        choices = PrecisionChoices(fleet.inventory).all()
    finally:
        fleet.close()
    for row in rows:  # which variant `choose-precision` picked on each kit, and why
        row["precision"] = [
            {"model": c.model, "version": c.version, "precision": c.precision, "reason": c.reason}
            for c in choices.get(row["device_id"], [])
        ]
    lines = (
        [_KITS_HEADER] + [line for r in rows for line in (_kit_line(r), *_precision_lines(r))]
        if rows
        else ["no kits adopted yet; find them with `kitfleet discover`"]
    )
    emit(args, rows, lines)
    return 0


_KITS_HEADER = (
    f"{'NAME':<18} {'STATUS':<22} {'CPU':>4} {'MEM':>4} {'DISK FREE':>9} {'TEMP':>5} "
    f"{'BATT':>4} {'RUN/Q':>5}  {'SERVING':<24} {'ACCELERATORS':<20} {'TAGS':<16} ALERTS"
)


def _kit_row(view: KitView, facts: tuple[FactFamilies, float] | None) -> dict[str, Any]:
    from app.fleet import summary

    sample, snap = view.sample, view.snapshot
    return {
        "name": view.kit.name,
        "device_id": view.kit.device_id,
        "address": view.kit.address,
        "status": view.status,
        "last_seen_at": view.kit.last_seen_at,
        "detail": view.detail,
        "agent_version": view.kit.agent_version,
        "tags": view.tags,
        "data_age_s": view.age(),
        "cpu_percent": sample.cpu_percent if sample else None,
        "memory_percent": sample.memory_percent if sample else None,
        "disk_free_bytes": sample.disk_free_bytes if sample else None,
        "temperature_c": sample.temperature_c if sample else None,
        "battery_percent": sample.battery_percent if sample else None,
        "active_models": snap.active_models() if snap else [],
        "jobs_running": snap.count_jobs("running") if snap else None,
        "jobs_queued": snap.count_jobs("queued") if snap else None,
        "accelerators": summary.accelerators(facts[0] if facts else None),
        "alerts": [{"severity": a.severity, "kind": a.kind, "message": a.message} for a in view.alerts],
    }


def _kit_line(r: dict[str, Any]) -> str:
    from app.fleet import summary

    status = r["status"] if r["status"] != "offline" else f"offline {age(r['last_seen_at'])}"

    def num(key: str, fmt: str) -> str:
        return "-" if r[key] is None else fmt.format(r[key])

    jobs = "-" if r["jobs_running"] is None else f"{r['jobs_running']}/{r['jobs_queued']}"
    free = "-" if r["disk_free_bytes"] is None else summary.gib(r["disk_free_bytes"])
    alerts = "; ".join(f"{a['severity']}: {a['message']}" for a in r["alerts"]) or "-"
    return (
        f"{r['name'][:18]:<18} {status[:22]:<22} {num('cpu_percent', '{:.0f}%'):>4} "
        f"{num('memory_percent', '{:.0f}%'):>4} {free:>9} {num('temperature_c', '{:.0f}C'):>5} "
        f"{num('battery_percent', '{:.0f}%'):>4} {jobs:>5}  {', '.join(r['active_models'])[:24]:<24} "
        f"{r['accelerators'][:20]:<20} {', '.join(r['tags'])[:16] or '-':<16} {alerts}"
    )


def _precision_lines(r: dict[str, Any]) -> list[str]:
    return [
        f"  precision {c['model']} {c['version']} ({c['precision']}): {c['reason']}" for c in r["precision"]
    ]


async def _facts(args: argparse.Namespace) -> int:
    from app.cli.facts_text import facts_lines, when

    fleet = open_fleet(args)
    try:
        result = await fleet.async_facts(fleet.inventory.resolve(args.kit))
    finally:
        fleet.close()
    data = {
        "name": result.kit.name,
        "device_id": result.kit.device_id,
        "live": result.live,
        "collected_at": result.collected_at,
        "families": result.families.wire(),
        "precision_by_provider": [p.wire() for p in result.families.precision_by_provider()],
    }
    header = (
        [f"{result.kit.name}: facts read {when(result.collected_at)}"]
        if result.live
        else [
            f"{result.kit.name} is offline; last-known facts from {age(result.collected_at)}",
            f"({result.detail})",
        ]
    )
    emit(args, data, header + facts_lines(result.families))
    return 0


async def _tag(args: argparse.Namespace) -> int:
    """Without tags or options: show. Tags are added; --remove and --clear take them off."""
    from app.fleet.snapshot import Tags

    fleet = open_fleet(args)
    try:
        kit = fleet.inventory.resolve(args.kit)
        store = Tags(fleet.inventory)
        before = store.of(kit.device_id)
        kept = [] if args.clear else [t for t in before if t not in set(args.remove)]
        tags = before if kept + args.tags == before else store.set(kit.device_id, kept + args.tags)
    finally:
        fleet.close()
    absent = [t for t in args.remove if t not in before]
    lines = [f"{kit.name}: {', '.join(tags) or 'no tags'}"]
    lines += [f"({kit.name} did not carry {t!r})" for t in absent]
    emit(args, {"kit": kit.name, "tags": tags}, lines)
    return 0


HANDLERS: dict[str, Handler] = {
    "discover": _discover,
    "adopt": _adopt,
    "kits": _kits,
    "facts": _facts,
    "tag": _tag,
}
