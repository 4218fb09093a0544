"""`kitfleet report` (the field report) and `kitfleet audit` (who changed what, verified)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from app.cli.common import add_tag_option, emit, open_fleet, say, select_kits
from app.cli.types import CommandFactory, Handler
from app.fleet.errors import Error

# The fleet and the report's builders are imported when a command runs (a light parser).


def add_commands(command: CommandFactory) -> None:
    report = command(
        "report",
        "write the field report: inventory, hardware, models, jobs, "
        "metrics, alerts and the audit trail, as one HTML file",
        False,
    )
    report.add_argument("--out", type=Path, required=True, help="the HTML file to write")
    report.add_argument("--pdf", action="store_true", help="also print it to FILE.pdf (needs Qt)")
    report.add_argument("--hours", type=float, default=24.0, help="hours of metrics to chart")
    report.add_argument(
        "--offline", action="store_true", help="do not poll the kits: report what the inventory holds"
    )
    add_tag_option(report, "only the kits")

    audit = command("audit", "the app's audit log, or a kit's log pulled and verified")
    audit.add_argument("kit", nargs="?", help="a kit's name or device ID; none: this app's log")
    audit.add_argument("--limit", type=int, default=50, help="newest entries to show")


async def _report(args: argparse.Namespace) -> int:
    from app.fleet.report import async_build_report, write_report

    if args.hours <= 0:
        raise Error("--hours must be positive")
    fleet = open_fleet(args)
    try:
        only = select_kits(fleet, [], args.tags) if args.tags else None
        report = await async_build_report(fleet, args.hours, poll=not args.offline, only=only)
        out = write_report(report, args.out)
    finally:
        fleet.close()
    say(f"wrote {out} ({len(report.kits)} kits, {len(report.alerts)} alerts)")
    if args.pdf:
        pdf = out.with_suffix(".pdf")
        try:
            from app.gui.report_pdf import print_pdf
        except ImportError as exc:
            raise Error(
                f"no PDF renderer here ({exc.name} is missing): install the [app] extra, "
                f"or open {out} in a browser and print it"
            ) from exc
        say(f"wrote {print_pdf(out, pdf)}")
    return 0


async def _audit(args: argparse.Namespace) -> int:
    from app.fleet.ops import FleetOps

    fleet = open_fleet(args)
    try:
        if args.kit is None:
            entries, problems = fleet.audit.entries(limit=args.limit), fleet.audit.verify()
            title = f"this app ({fleet.audit.actor_label})"
            state = "BROKEN: " + problems[0] if problems else "verified"
        else:
            kit = fleet.inventory.resolve(args.kit)
            ops = FleetOps(fleet)
            try:
                chain = await ops.async_verify_audit(kit)
                state = chain.summary()
            except Error as exc:  # away: show the copy pulled before, and say so
                chain = fleet.audit.chain_status(kit.device_id)
                state = f"{chain.summary()} (copy pulled before; the kit is away: {exc})"
            entries, problems = fleet.audit.kit_entries(kit.device_id, args.limit), chain.problems
            title = kit.name
    finally:
        fleet.close()
    data = {"log": title, "chain": state, "problems": problems, "entries": [e.model_dump() for e in entries]}
    lines = [f"audit log of {title}: {state}"] + [
        f"{e.seq:>5} {_clock(e.ts)}  {e.action:<17} {e.target[:32]:<32} {e.outcome:<24} "
        f"{e.detail.get('kit', '') or e.actor_label}"
        for e in entries
    ]
    emit(args, data, lines)
    return 1 if problems else 0


def _clock(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


HANDLERS: dict[str, Handler] = {"report": _report, "audit": _audit}
