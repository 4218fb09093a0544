"""`kitfleet bundle receive DIR|FILE`: merge receipts kits wrote with `kitfleet-agent export`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from app.cli.common import emit, open_fleet, say

# The fleet and the receipt reader are imported when the command runs (a light parser).


def add_receive(actions: Any) -> None:
    """The `receive` action under `kitfleet bundle` (`actions`: its subparsers)."""
    receive = actions.add_parser(
        "receive",
        help="merge kits' receipts (DEVICE-SEQ.kfr) into the inventory",
        description="verify each receipt against the kit's pinned certificate and merge its jobs, "
        "metrics, audit log and imports as if pulled over the network; a receipt merges once",
    )
    receive.add_argument("source", type=Path, metavar="DIR|FILE", help="a receipt, or a folder of them")
    receive.add_argument("--json", action="store_true", help="print JSON")


async def receive_command(args: argparse.Namespace) -> int:
    from app.fleet.ops import FleetOps
    from app.fleet.receipts import async_receive

    fleet = open_fleet(args)
    try:
        report = await async_receive(FleetOps(fleet), args.source)
    finally:
        fleet.close()
    data = {
        "received": [
            {
                "file": str(r.file),
                "kit": r.kit_name,
                "device_id": r.device_id,
                "seq": r.seq,
                "sha256": r.sha256,
                "already_merged": r.already,
                "jobs": r.jobs,
                "samples_new": r.samples_new,
                "audit_new": r.audit_new,
                "imports_new": r.imports_new,
                "unsure_new": r.unsure_new,
                "audit_chain": r.chain,
                "chain_ok": r.chain_ok,
                "notes": r.notes,
            }
            for r in report.received
        ],
        "refused": [{"file": str(path), "reason": why} for path, why in report.refused],
    }
    lines = [r.line() for r in report.received] or (
        [] if report.refused else ["no receipt (.kfr) found there"]
    )
    if lines or args.json:
        emit(args, data, lines)
    for _, why in report.refused:
        say(f"kitfleet: {why}", file=sys.stderr)
    broken = any(not r.chain_ok for r in report.received if not r.already)
    return 1 if report.refused or broken else 0
