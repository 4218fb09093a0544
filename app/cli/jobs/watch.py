"""`kitfleet jobs list|show|watch|logs|cancel`: look at jobs on kits, follow them, stop them."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from agent.wire import JobInfo
from app.cli.common import emit, open_fleet
from app.cli.jobs.targets import each_kit, job_ids
from app.cli.jobs.view import Board, finished_ok, job_row, outcome_line, summary_lines
from app.cli.types import Handler
from app.fleet.errors import Error
from app.fleet.inventory import Kit
from app.fleet.jobs import (
    async_cancel,
    async_follow_logs,
    async_job,
    async_results,
    async_watch,
    named,
)
from app.fleet.service import Fleet
from app.fleet.summary import size
from app.fleet.text import printable_lines

Watched = list[tuple[Kit, "list[JobInfo] | Error"]]


async def _list(args: argparse.Namespace) -> int:
    return await each_kit(
        args,
        lambda c: c.jobs(args.states, args.limit),
        job_row,
        "no jobs" + (" in that state" if args.states else ""),
    )


async def _show(args: argparse.Namespace) -> int:
    fleet = open_fleet(args)
    try:
        kit = fleet.inventory.resolve(args.kit)
        [job_id] = await job_ids(fleet, kit, [args.job_id])
        job = await async_job(fleet, kit, job_id)
        files = (await async_results(fleet, kit, job.job_id)).files
    finally:
        fleet.close()
    req = job.request
    lines = [
        job_row(kit.name, job),
        f"  params: {json.dumps(req.params)}",
        f"  resources: {req.resources.threads} thread(s), {req.resources.memory_mb} MiB, "
        f"{req.resources.gpu} GPU; priority {req.priority}; timeout {req.timeout_s:g} s; "
        f"attempts {job.attempts}/{req.max_retries + 1}",
        *(f"  warning: {w}" for w in job.warnings),  # e.g. a gate it cannot keep
    ]
    if job.state in ("done", "failed", "cancelled", "interrupted"):
        lines += summary_lines(job.kind, job.result)
    lines += [f"  file {f.name} ({size(f.size)})" for f in files]
    emit(
        args,
        {"kit": kit.name, **job.model_dump(mode="json"), "files": [f.model_dump() for f in files]},
        lines,
    )
    return 0


async def _watch(args: argparse.Namespace) -> int:
    fleet = open_fleet(args)
    try:
        kit = fleet.inventory.resolve(args.kit)
        ids = await job_ids(fleet, kit, args.job_ids)
        watched = await watch_kits(args, fleet, [(kit, ids or None)])
    finally:
        fleet.close()
    emit_watched(args, watched)
    return 0 if all_done(watched) else 1


async def watch_kits(
    args: argparse.Namespace, fleet: Fleet, targets: list[tuple[Kit, list[str] | None]]
) -> Watched:
    """Watch jobs on several kits at once, on one board; each kit's final jobs, or why not."""
    board = Board()

    def update(kit: Kit, job: JobInfo) -> None:
        if not args.json:
            board.update(kit.name, job)

    def retry(kit: Kit, why: str, wait: float) -> None:
        board.note(kit.name, f"{kit.name}: kit unreachable, retrying in {wait:.0f} s ({why})")

    finished = await asyncio.gather(
        *(async_watch(fleet, kit, ids, update, on_retry=retry) for kit, ids in targets),
        return_exceptions=True,
    )
    watched: Watched = []
    for (kit, _), result in zip(targets, finished, strict=True):
        if isinstance(result, BaseException) and not isinstance(result, Error):
            raise result
        watched.append((kit, result))
    return watched


def all_done(watched: Watched) -> bool:
    return all(isinstance(jobs, list) and finished_ok(jobs) for _, jobs in watched)


def emit_watched(
    args: argparse.Namespace, watched: Watched, rows: list[dict[str, Any]] | None = None
) -> None:
    data: list[dict[str, Any]] = []
    lines: list[str] = []
    for kit, jobs in watched:
        if isinstance(jobs, Error):
            data.append({"kit": kit.name, "error": str(jobs)})
            lines.append(f"FAILED  {named(kit, jobs)}")
            continue
        data += [{"kit": kit.name, **j.model_dump(mode="json")} for j in jobs]
        lines += [outcome_line(kit.name, j) for j in jobs] or [f"no unfinished jobs on {kit.name}"]
    emit(args, data if rows is None else rows, lines)


async def _logs(args: argparse.Namespace) -> int:
    fleet = open_fleet(args)
    pieces: list[str] = []

    def write(text: str) -> None:
        if args.json:
            pieces.append(text)
        else:
            sys.stdout.write(printable_lines(text))  # the kit's text: no terminal control
            sys.stdout.flush()

    try:
        kit = fleet.inventory.resolve(args.kit)
        [job_id] = await job_ids(fleet, kit, [args.job_id])
        finished = await async_follow_logs(fleet, kit, job_id, write, args.follow)
    finally:
        fleet.close()
    if args.json:
        emit(args, {"kit": kit.name, "job_id": job_id, "text": "".join(pieces), "finished": finished}, [])
    return 0


async def _cancel(args: argparse.Namespace) -> int:
    fleet = open_fleet(args)
    try:
        kit = fleet.inventory.resolve(args.kit)
        ids = await job_ids(fleet, kit, args.job_ids)
        answers = await asyncio.gather(
            *(async_cancel(fleet, kit, job_id) for job_id in ids), return_exceptions=True
        )
    finally:
        fleet.close()
    rows: list[dict[str, Any]] = []
    lines = []
    for job_id, answer in zip(ids, answers, strict=True):
        if isinstance(answer, Error):
            rows.append({"job_id": job_id, "ok": False, "message": str(answer)})
            lines.append(f"FAILED  {answer}")
        elif isinstance(answer, BaseException):
            raise answer
        else:
            rows.append({"job_id": job_id, "ok": True, "state": answer.state})
            lines.append(f"{answer.state:<7} {kit.name}: job {job_id}")
    emit(args, rows, lines)
    return 0 if all(r["ok"] for r in rows) else 1


ACTIONS: dict[str, Handler] = {
    "list": _list,
    "show": _show,
    "watch": _watch,
    "logs": _logs,
    "cancel": _cancel,
}
