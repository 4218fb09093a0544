"""`kitfleet`: the desktop window with no arguments, or the same powers from the shell."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from app import __version__
from app.fleet.errors import Error


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kitfleet", description=__doc__)
    parser.add_argument("--version", action="version", version=f"kitfleet {__version__}")
    parser.add_argument("--home", type=Path,
                        help="the app's data dir (default $KITFLEET_HOME or the user data dir)")
    parser.add_argument("--interface", dest="interfaces", action="append", metavar="IP",
                        help="browse mDNS only on this address (repeatable; default: all)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, help_text: str, json_flag: bool = True) -> argparse.ArgumentParser:
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        if json_flag:
            cmd.add_argument("--json", action="store_true", help="print JSON")
        return cmd

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

    demo = command("demo", "start demo agents on loopback and use them end to end", False)
    demo.add_argument("--screenshot", type=Path, help="where to save the window screenshot")
    demo.add_argument("--offscreen", action="store_true",
                      help="never show a window (default when there is no display)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command is None:
        from app.gui.main import run_gui

        return run_gui(_settings(args))
    if args.command == "demo":
        from app.demo import run_demo

        return run_demo(screenshot=args.screenshot, offscreen=args.offscreen)
    handler = _HANDLERS[args.command]
    try:
        return asyncio.run(handler(args))
    except Error as exc:
        print(f"kitfleet: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _settings(args: argparse.Namespace) -> Any:
    from app.fleet.settings import AppSettings

    interfaces = (getattr(args, "sub_interfaces", None) or []) + (args.interfaces or [])
    return AppSettings.resolve(args.home, interfaces or None)


def _fleet(args: argparse.Namespace) -> Any:
    from app.fleet.service import Fleet

    return Fleet(_settings(args))


def _emit(args: argparse.Namespace, data: Any, lines: list[str]) -> None:
    if args.json:
        print(json.dumps(data, indent=2, default=str))
    else:
        print("\n".join(lines))


def _age(ts: float | None) -> str:
    if not ts:
        return "never"
    seconds = max(0, time.time() - ts)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit} ago"
    return f"{seconds:.0f} s ago"


async def _discover(args: argparse.Namespace) -> int:
    fleet = _fleet(args)
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
    _emit(args, rows, lines)
    return 0


async def _adopt(args: argparse.Namespace) -> int:
    fleet = _fleet(args)
    try:
        kit = await fleet.async_adopt(args.kit, args.code)
    finally:
        fleet.close()
    _emit(args, {"device_id": kit.device_id, "name": kit.name, "address": kit.address,
                 "scope": kit.scope},
          [f"adopted {kit.name} ({kit.device_id[:16]}…) at {kit.address}, scope {kit.scope}"])
    return 0


async def _kits(args: argparse.Namespace) -> int:
    fleet = _fleet(args)
    try:
        statuses = await fleet.async_statuses()
    finally:
        fleet.close()
    rows = [{"name": s.kit.name, "device_id": s.kit.device_id, "address": s.kit.address,
             "status": s.status, "last_seen_at": s.kit.last_seen_at,
             "agent_version": s.kit.agent_version, "detail": s.detail} for s in statuses]
    lines = [f"{r['name']:<24} {r['device_id'][:16]:<17} {r['address']:<22} {r['status']:<17} "
             f"last seen {_age(r['last_seen_at'])}" for r in rows] or [
        "no kits adopted yet; find them with `kitfleet discover`"]
    _emit(args, rows, lines)
    return 0


async def _facts(args: argparse.Namespace) -> int:
    fleet = _fleet(args)
    try:
        result = await fleet.async_facts(fleet.inventory.resolve(args.kit))
    finally:
        fleet.close()
    data = {"name": result.kit.name, "device_id": result.kit.device_id, "live": result.live,
            "collected_at": result.collected_at, "families": result.families}
    header = [] if result.live else [
        f"{result.kit.name} is offline; last-known facts from {_age(result.collected_at)}",
        f"({result.detail})"]
    lines = header + _facts_lines(result.families)
    _emit(args, data, lines)
    return 0


def _facts_lines(families: dict[str, Any]) -> list[str]:
    lines = []
    for family, values in families.items():
        lines.append(f"[{family}]")
        for key, value in values.items():
            shown = json.dumps(value) if isinstance(value, (dict, list)) else value
            lines.append(f"  {key}: {shown}")
    return lines


_HANDLERS: dict[str, Callable[[argparse.Namespace], Coroutine[Any, Any, int]]] = {
    "discover": _discover, "adopt": _adopt, "kits": _kits, "facts": _facts,
}


if __name__ == "__main__":
    sys.exit(main())
