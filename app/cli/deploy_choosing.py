"""`kitfleet deploy --choose-precision FP32.onnx INT8.onnx --kit …`: each kit picks its variant."""

from __future__ import annotations

import argparse

from app.cli.common import emit, open_fleet, select_kits
from app.cli.progress_line import ProgressLine
from app.fleet.errors import Error

__all__ = ["deploy_choosing"]


async def deploy_choosing(args: argparse.Namespace) -> int:
    """Install the variants on every kit; each kit measures them and serves its choice."""
    from app.fleet.precision_deploy import async_deploy_choosing

    variants = ([args.model] if args.model else []) + list(args.choose_precision)
    fleet = open_fleet(args)
    try:
        kits = select_kits(fleet, args.kits, args.tags)
        if not kits:
            raise Error("name the kits to deploy to: --kit KIT or --tag TAG (repeatable)")
        progress = None if args.json else ProgressLine()
        choices = await async_deploy_choosing(
            fleet, variants, kits, args.eval, args.max_accuracy_loss, progress, args.prefer
        )
    finally:
        fleet.close()
    rows = [
        {
            "kit": c.kit.name,
            "ok": c.decision is not None,
            "version": c.decision.chosen.version if c.decision else None,
            "precision": c.decision.chosen.precision if c.decision else None,
            "reason": c.decision.reason if c.decision else c.error,
        }
        for c in choices
    ]
    lines = [
        f"ok     {r['kit']}: serving {r['version']} ({r['precision']}): {r['reason']}"
        if r["ok"]
        else f"FAILED {r['kit']}: {r['reason']}"
        for r in rows
    ]
    emit(args, rows, lines)
    return 0 if all(r["ok"] for r in rows) else 1
