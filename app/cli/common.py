"""Helpers every CLI command shares: settings, the fleet, output as text or JSON."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any, TextIO

from app.fleet.ages import age_text
from app.fleet.errors import Error
from app.fleet.settings import AppSettings

# The fleet (pydantic, httpx, SQLite) is imported when a command opens it: every command
# module imports this one, and building the parser must stay light.
if TYPE_CHECKING:
    from app.fleet.inventory import Kit
    from app.fleet.service import Fleet


def settings(args: argparse.Namespace) -> AppSettings:
    interfaces = (getattr(args, "sub_interfaces", None) or []) + (args.interfaces or [])
    return AppSettings.resolve(args.home, interfaces or None)


def open_fleet(args: argparse.Namespace) -> Fleet:
    from app.fleet.service import Fleet

    return Fleet(settings(args))


def add_tag_option(parser: argparse.ArgumentParser, what: str = "every kit") -> None:
    """`--tag T`: aim a command at every kit carrying a tag (see `select_kits`)."""
    parser.add_argument(
        "--tag",
        dest="tags",
        action="append",
        default=[],
        metavar="TAG",
        help=f"{what} carrying this tag, as `kitfleet tag` set it (repeatable)",
    )


def select_kits(fleet: Fleet, refs: list[str], tags: list[str] | None = None) -> list[Kit]:
    """The kits named, and every kit carrying one of `tags`, each once, in the order given.
    A tag no kit carries is refused: a typo must not quietly aim at nothing."""
    from app.fleet.snapshot import Tags

    kits: dict[str, Kit] = {}
    for ref in refs:
        kit = fleet.inventory.resolve(ref)
        kits.setdefault(kit.device_id, kit)
    if tags:
        carried = Tags(fleet.inventory).all()
        for tag in tags:
            tagged = [k for k in fleet.inventory.kits() if tag in carried.get(k.device_id, [])]
            if not tagged:
                known = sorted({t for ts in carried.values() for t in ts})
                raise Error(
                    f"no kit carries the tag {tag!r} (tags in use: {', '.join(known) or 'none'}); "
                    "`kitfleet kits` shows each kit's tags, `kitfleet tag KIT TAG` adds one"
                )
            for kit in tagged:
                kits.setdefault(kit.device_id, kit)
    return list(kits.values())


def emit(args: argparse.Namespace, data: Any, lines: list[str]) -> None:
    """`data` as JSON (which escapes every control character), or `lines` for a person."""
    if getattr(args, "json", False):
        print(json.dumps(data, indent=2, default=str))
    else:
        say(*lines)


def say(*lines: str, file: TextIO | None = None) -> None:
    """Print lines the app made, often around names and labels a kit sent: each one stays one
    line, and nothing in it can steer the terminal (see app.fleet.text)."""
    from app.fleet.text import printable

    print("\n".join(printable(line) for line in lines), file=file or sys.stdout, flush=True)


def age(ts: float | None) -> str:
    return age_text(ts)
