"""Kit commands: discover, adopt, kits, facts."""

from __future__ import annotations

import argparse
import json
from typing import Any

from app.cli.common import age, emit, open_fleet
from app.cli.types import CommandFactory, Handler


def add_commands(command: CommandFactory) -> None:
    discover = command("discover", "list kits announcing on the network now")
    discover.add_argument("--interface", dest="sub_interfaces", action="append", metavar="IP",
                          help="browse only on this address (repeatable)")
    discover.add_argument("--timeout", type=float, default=3.0, help="seconds to listen")

    adopt = command("adopt", "adopt a kit with the pairing code it shows")
    adopt.add_argument("kit", help="device ID, name as announced, or HOST:PORT")
    adopt.add_argument("--code", required=True, help="from `kitfleet-agent pair-code` on the kit")

    command("kits", "the inventory, with each kit's status now")
    facts = command("facts", "a kit's hardware facts (last-known when it is away)")
    facts.add_argument("kit", help="name or device ID")


async def _discover(args: argparse.Namespace) -> int:
    fleet = open_fleet(args)
    try:
        found = await fleet.async_discover(args.timeout)
        rows = []
        for a in found:
            fleet.note_announcement(a)
            rows.append({"name": a.name, "device_id": a.device_id, "kit_model": a.kit_model,
                         "address": f"{a.host}:{a.port}", "agent_version": a.agent_version,
                         "status": fleet.marking(a)})
    finally:
        fleet.close()
    lines = [f"{r['name']:<24} {r['device_id'][:16]:<17} {r['address']:<22} {r['status']:<17} "
             f"{r['kit_model']}" for r in rows] or ["no kits announcing (listened "
                                                    f"{args.timeout:g} s)"]
    emit(args, rows, lines)
    return 0


async def _adopt(args: argparse.Namespace) -> int:
    fleet = open_fleet(args)
    try:
        kit = await fleet.async_adopt(args.kit, args.code)
    finally:
        fleet.close()
    emit(args, {"device_id": kit.device_id, "name": kit.name, "address": kit.address,
                 "scope": kit.scope},
          [f"adopted {kit.name} ({kit.device_id[:16]}…) at {kit.address}, scope {kit.scope}"])
    return 0


async def _kits(args: argparse.Namespace) -> int:
    fleet = open_fleet(args)
    try:
        statuses = await fleet.async_statuses()
    finally:
        fleet.close()
    rows: list[dict[str, Any]] = [
        {"name": s.kit.name, "device_id": s.kit.device_id, "address": s.kit.address,
             "status": s.status, "last_seen_at": s.kit.last_seen_at,
             "agent_version": s.kit.agent_version, "detail": s.detail} for s in statuses]
    lines = [f"{r['name']:<24} {r['device_id'][:16]:<17} {r['address']:<22} {r['status']:<17} "
             f"last seen {age(r['last_seen_at'])}" for r in rows] or [
        "no kits adopted yet; find them with `kitfleet discover`"]
    emit(args, rows, lines)
    return 0


async def _facts(args: argparse.Namespace) -> int:
    fleet = open_fleet(args)
    try:
        result = await fleet.async_facts(fleet.inventory.resolve(args.kit))
    finally:
        fleet.close()
    data = {"name": result.kit.name, "device_id": result.kit.device_id, "live": result.live,
            "collected_at": result.collected_at, "families": result.families}
    header = [] if result.live else [
        f"{result.kit.name} is offline; last-known facts from {age(result.collected_at)}",
        f"({result.detail})"]
    lines = header + _int8_line(result.families) + _facts_lines(result.families)
    emit(args, data, lines)
    return 0


def _int8_line(families: dict[str, Any]) -> list[str]:
    """The verdict a technician looks for before deploying: is INT8 worth it on this kit's CPU?"""
    int8 = families.get("cpu", {}).get("int8")
    if not isinstance(int8, dict):
        return []
    verdict = f"recommended ({int8.get('via')})" if int8.get("recommended") else "not recommended"
    return [f"INT8 models: {verdict}. {int8.get('reason', '')}".rstrip()]


def _facts_lines(families: dict[str, Any]) -> list[str]:
    lines = []
    for family, values in families.items():
        lines.append(f"[{family}]")
        for key, value in values.items():
            shown = json.dumps(value) if isinstance(value, (dict, list)) else value
            lines.append(f"  {key}: {shown}")
    return lines


HANDLERS: dict[str, Handler] = {
    "discover": _discover, "adopt": _adopt, "kits": _kits, "facts": _facts,
}
