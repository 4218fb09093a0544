"""`kitfleet jobs results|schedules|unschedule`: collect what finished jobs made, and manage the
cron schedules that queue new ones."""

from __future__ import annotations

import argparse
from pathlib import Path

from app.cli.common import emit, open_fleet
from app.cli.jobs.targets import each_kit, job_ids, schedule_id
from app.cli.jobs.view import outcome_line, schedule_row, summary_lines
from app.cli.types import Handler
from app.fleet.inventory import Kit
from app.fleet.jobs import async_job, async_results, async_unschedule
from app.fleet.results import Refused, async_collect, sort_listing
from app.fleet.summary import size


async def _results(args: argparse.Namespace) -> int:
    fleet = open_fleet(args)
    try:
        kit = fleet.inventory.resolve(args.kit)
        [job_id] = await job_ids(fleet, kit, [args.job_id])
        if args.out:
            got = await async_collect(fleet, kit, job_id, args.out, args.forget)
            job, results, where, refused = got.job, got.results, str(got.folder), got.refused
            note = got.note
        else:
            note = ""
            job = await async_job(fleet, kit, job_id)
            results = await async_results(fleet, kit, job_id)
            where, refused = "", sort_listing(results)[1]
    finally:
        fleet.close()
    kept = [f for f in results.files if f.name not in {r.name for r in refused}]
    lines = [outcome_line(kit.name, job), *summary_lines(job.kind, results.result)]
    lines += (
        [f"  {f.name} ({size(f.size)}) → {Path(where) / f.name}" for f in kept]
        if where
        else [f"  {f.name} ({size(f.size)}); download with --out DIR" for f in kept]
    )
    lines += _refused_lines(kit, refused)
    lines += [f"  ({note})"] if note else []
    emit(
        args,
        {
            "kit": kit.name,
            "folder": where or None,
            **results.model_dump(mode="json"),
            "refused": [{"name": r.name, "reason": r.reason} for r in refused],
        },
        lines,
    )
    return 1 if refused else 0


def _refused_lines(kit: Kit, refused: list[Refused]) -> list[str]:
    """The names a kit listed that are not saved, each once, shortened, escaped where shown."""
    if not refused:
        return []
    lines = [f"  refused {_short(r.name)}: {r.reason}" for r in refused]
    return [
        *lines,
        f"{kit.name} listed {len(refused)} result file name(s) the app does not save; "
        "an up-to-date agent never does: check the kit (`kitfleet audit` shows who changed "
        "what on it)",
    ]


def _short(name: str, limit: int = 80) -> str:
    return name if len(name) <= limit else name[:limit] + "…"


async def _schedules(args: argparse.Namespace) -> int:
    return await each_kit(args, lambda c: c.schedules(), schedule_row, "no schedules")


async def _unschedule(args: argparse.Namespace) -> int:
    fleet = open_fleet(args)
    try:
        kit = fleet.inventory.resolve(args.kit)
        found = await schedule_id(fleet, kit, args.schedule_id)
        await async_unschedule(fleet, kit, found)
    finally:
        fleet.close()
    emit(
        args,
        {"kit": kit.name, "schedule_id": found, "deleted": True},
        [f"schedule {found} deleted on {kit.name}"],
    )
    return 0


ACTIONS: dict[str, Handler] = {"results": _results, "schedules": _schedules, "unschedule": _unschedule}
