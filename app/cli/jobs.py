"""`kitfleet jobs`: submit work to kits (now or on a cron schedule), watch it, read its logs,
cancel it, and collect its results."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from agent.wire import JobInfo
from app.cli.common import emit, open_fleet, say
from app.cli.jobs_options import add_submit_options, spec_from
from app.cli.jobs_view import (
    Board,
    finished_ok,
    job_row,
    outcome_line,
    schedule_row,
    summary_lines,
)
from app.cli.types import CommandFactory, Handler
from app.fleet.client import KitClient
from app.fleet.errors import Error
from app.fleet.inventory import Kit
from app.fleet.jobs import (
    SubmitOutcome,
    SubmitProgress,
    async_cancel,
    async_each,
    async_follow_logs,
    async_job,
    async_results,
    async_submit,
    async_unschedule,
    async_watch,
    check_job_id,
    named,
)
from app.fleet.results import Refused, async_collect, sort_listing
from app.fleet.service import Fleet
from app.fleet.text import printable_lines

_SUBMIT_EXAMPLES = """examples:
  kitfleet jobs submit kit-a --kind batch-infer --model digits-cnn --upload ./images --watch
  kitfleet jobs submit kit-a --kit kit-b --kind benchmark --model digits-cnn --batch-sizes 1,8
  kitfleet jobs submit kit-a --kind evaluate --model digits-cnn --folder eval --cron '0 2 * * *'
"""
STATES = ["queued", "running", "done", "failed", "cancelled", "interrupted"]
M = TypeVar("M", bound=BaseModel)


def add_commands(command: CommandFactory) -> None:
    jobs = command("jobs", "run work on kits: submit (now or on a cron schedule), list, watch, logs, "
                           "cancel, results", False)
    actions = jobs.add_subparsers(dest="action", metavar="ACTION", required=True)

    def action(name: str, help_text: str, epilog: str | None = None) -> argparse.ArgumentParser:
        parser = actions.add_parser(name, help=help_text, description=help_text, epilog=epilog,
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.add_argument("--json", action="store_true", help="print JSON")
        return parser

    add_submit_options(action("submit", "queue a job on one or more kits, or schedule it with --cron",
                              _SUBMIT_EXAMPLES))

    listing = action("list", "jobs on kits, newest first (all adopted kits when none is named)")
    listing.add_argument("kits", nargs="*", metavar="KIT", help="kit name or device ID")
    listing.add_argument("--state", dest="states", action="append", choices=STATES,
                         help="only jobs in this state (repeatable)")
    listing.add_argument("--limit", type=int, default=50, help="jobs per kit (default 50)")

    show = action("show", "one job: state, request, progress, error, result summary and files")
    _kit_job(show)

    watch = action("watch", "follow jobs until they finish: a live progress bar on a terminal; "
                            "exit 0 when all are done, 1 when one failed or was cancelled")
    watch.add_argument("kit", help="kit name or device ID")
    watch.add_argument("job_ids", nargs="*", metavar="JOB",
                       help="job ID (repeatable; default: every unfinished job on the kit)")

    logs = action("logs", "a job's log")
    _kit_job(logs)
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing until the job finishes")

    cancel = action("cancel", "cancel queued jobs, or stop running ones")
    cancel.add_argument("kit", help="kit name or device ID")
    cancel.add_argument("job_ids", nargs="+", metavar="JOB", help="job ID (repeatable)")

    results = action("results", "a finished job's summary; with --out, download its files to "
                                "OUT/<kit>/<job>/")
    _kit_job(results)
    results.add_argument("--out", type=Path, help="folder to download the result files into")
    results.add_argument("--forget", action="store_true",
                         help="after downloading, delete the job and its files on the kit")

    schedules = action("schedules", "cron schedules on kits (all adopted kits when none is named)")
    schedules.add_argument("kits", nargs="*", metavar="KIT", help="kit name or device ID")

    unschedule = action("unschedule", "delete a schedule; jobs it already queued stay")
    unschedule.add_argument("kit", help="kit name or device ID")
    unschedule.add_argument("schedule_id", metavar="SCHEDULE", help="schedule ID")


def _kit_job(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kit", help="kit name or device ID")
    parser.add_argument("job_id", metavar="JOB", help="job ID (24 hex digits, from `jobs list`)")


# --- submit ------------------------------------------------------------------------------


class _SubmitLine:
    """Upload progress and retries on stderr, so stdout stays the outcome."""

    def __init__(self) -> None:
        self._last: dict[str, str] = {}

    def __call__(self, p: SubmitProgress) -> None:
        if p.stage == "uploading":
            pct = 100 * p.done // p.total if p.total else 100
            if pct % 10 and pct != 100:
                return
            text = f"{p.kit}: uploading images {pct}%"
        elif p.stage == "retrying":
            text = f"{p.kit}: retrying ({p.message})"
        else:
            return
        if self._last.get(p.kit) != text:
            self._last[p.kit] = text
            say(text, file=sys.stderr)


async def _submit(args: argparse.Namespace) -> int:
    fleet = open_fleet(args)
    try:
        kits = _resolve(fleet, [*(args.kits or []), *args.kit_args])
        if not kits:
            raise Error("name at least one kit: `kitfleet jobs submit KIT --kind ...` (or --kit, repeatable)")
        spec, upload = spec_from(args)
        job = (spec.schedule(spec.schedule_name, args.cron, args.missed) if args.cron
               else spec.request(args.key))
        outcomes = await async_submit(fleet, kits, job, upload, None if args.json else _SubmitLine())
        rows, lines = _outcome_rows(outcomes)
        if not args.watch:
            emit(args, rows, lines)
            return 0 if all(o.ok for o in outcomes) else 1
        if not args.json:
            say(*lines)
        watched = await _watch_kits(args, fleet, [(o.kit, [o.job.job_id]) for o in outcomes if o.job])
    finally:
        fleet.close()
    finals = {kit.name: result for kit, result in watched}
    for row in rows:
        final = finals.get(row["kit"])
        row["job"] = final[0].model_dump(mode="json") if isinstance(final, list) else None
    _emit_watched(args, watched, rows)
    return 0 if all(o.ok for o in outcomes) and _all_done(watched) else 1


def _outcome_rows(outcomes: list[SubmitOutcome]) -> tuple[list[dict[str, Any]], list[str]]:
    rows = [{"kit": o.kit.name, "ok": o.ok, "message": o.message, "key": o.key,
             "job_id": o.job.job_id if o.job else None, "created": o.created,
             "schedule_id": o.schedule.schedule_id if o.schedule else None,
             "next_run_at": o.schedule.next_run_at if o.schedule else None,
             "dataset": o.dataset.name if o.dataset else None} for o in outcomes]
    lines = [f"{'ok    ' if o.ok else 'FAILED'} {named(o.kit, o.message)}" for o in outcomes]
    away = [o for o in outcomes if o.retryable and o.key]
    if away:
        lines.append(f"to send it to {', '.join(o.kit.name for o in away)} later without ever queuing "
                     f"it twice, submit again with --key {away[0].key}")
    return rows, lines


# --- list, show, watch, logs, cancel -----------------------------------------------------


async def _list(args: argparse.Namespace) -> int:
    return await _each_kit(args, lambda c: c.jobs(args.states, args.limit), job_row,
                           "no jobs" + (" in that state" if args.states else ""))


async def _each_kit(args: argparse.Namespace, call: Callable[[KitClient], Awaitable[list[M]]],
                    line: Callable[[str, M], str], nothing: str) -> int:
    """What `call` lists on each named kit (all adopted kits when none is named), kit by kit."""
    fleet = open_fleet(args)
    try:
        kits = _resolve(fleet, args.kits) or fleet.inventory.kits()
        answers = await async_each(fleet, kits, call)
    finally:
        fleet.close()
    rows: list[dict[str, Any]] = []
    lines: list[str] = []
    for answer in answers:
        if answer.value is None:
            rows.append({"kit": answer.kit.name, "error": answer.error})
            lines.append(f"not listed: {answer.error}")
            continue
        rows += [{"kit": answer.kit.name, **item.model_dump(mode="json")} for item in answer.value]
        lines += [line(answer.kit.name, item) for item in answer.value]
    emit(args, rows, lines or [nothing])
    return 0 if all(a.value is not None for a in answers) else 1


async def _show(args: argparse.Namespace) -> int:
    fleet = open_fleet(args)
    try:
        kit = fleet.inventory.resolve(args.kit)
        job = await async_job(fleet, kit, args.job_id)
        files = (await async_results(fleet, kit, job.job_id)).files
    finally:
        fleet.close()
    req = job.request
    lines = [job_row(kit.name, job), f"  params: {json.dumps(req.params)}",
             f"  resources: {req.resources.threads} thread(s), {req.resources.memory_mb} MiB, "
             f"{req.resources.gpu} GPU; priority {req.priority}; timeout {req.timeout_s:g} s; "
             f"attempts {job.attempts}/{req.max_retries + 1}"]
    if job.state in ("done", "failed", "cancelled", "interrupted"):
        lines += summary_lines(job.kind, job.result)
    lines += [f"  file {f.name} ({f.size} bytes)" for f in files]
    emit(args, {"kit": kit.name, **job.model_dump(mode="json"),
                "files": [f.model_dump() for f in files]}, lines)
    return 0


async def _watch(args: argparse.Namespace) -> int:
    for job_id in args.job_ids:
        check_job_id(job_id)
    fleet = open_fleet(args)
    try:
        kit = fleet.inventory.resolve(args.kit)
        watched = await _watch_kits(args, fleet, [(kit, args.job_ids or None)])
    finally:
        fleet.close()
    _emit_watched(args, watched)
    return 0 if _all_done(watched) else 1


Watched = list[tuple[Kit, "list[JobInfo] | Error"]]


async def _watch_kits(args: argparse.Namespace, fleet: Fleet,
                      targets: list[tuple[Kit, list[str] | None]]) -> Watched:
    """Watch jobs on several kits at once, on one board; each kit's final jobs, or why not."""
    board = Board()

    def update(kit: Kit, job: JobInfo) -> None:
        if not args.json:
            board.update(kit.name, job)

    finished = await asyncio.gather(*(async_watch(fleet, kit, ids, update) for kit, ids in targets),
                                    return_exceptions=True)
    watched: Watched = []
    for (kit, _), result in zip(targets, finished, strict=True):
        if isinstance(result, BaseException) and not isinstance(result, Error):
            raise result
        watched.append((kit, result))
    return watched


def _all_done(watched: Watched) -> bool:
    return all(isinstance(jobs, list) and finished_ok(jobs) for _, jobs in watched)


def _emit_watched(args: argparse.Namespace, watched: Watched,
                  rows: list[dict[str, Any]] | None = None) -> None:
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
    check_job_id(args.job_id)
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
        finished = await async_follow_logs(fleet, kit, args.job_id, write, args.follow)
    finally:
        fleet.close()
    if args.json:
        emit(args, {"kit": kit.name, "job_id": args.job_id, "text": "".join(pieces),
                    "finished": finished}, [])
    return 0


async def _cancel(args: argparse.Namespace) -> int:
    fleet = open_fleet(args)
    try:
        kit = fleet.inventory.resolve(args.kit)
        answers = await asyncio.gather(*(async_cancel(fleet, kit, job_id) for job_id in args.job_ids),
                                       return_exceptions=True)
    finally:
        fleet.close()
    rows: list[dict[str, Any]] = []
    lines = []
    for job_id, answer in zip(args.job_ids, answers, strict=True):
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


# --- results and schedules ---------------------------------------------------------------


async def _results(args: argparse.Namespace) -> int:
    check_job_id(args.job_id)
    fleet = open_fleet(args)
    try:
        kit = fleet.inventory.resolve(args.kit)
        if args.out:
            got = await async_collect(fleet, kit, args.job_id, args.out, args.forget)
            job, results, where, refused = got.job, got.results, str(got.folder), got.refused
        else:
            job = await async_job(fleet, kit, args.job_id)
            results = await async_results(fleet, kit, args.job_id)
            where, refused = "", sort_listing(results)[1]
    finally:
        fleet.close()
    kept = [f for f in results.files if f.name not in {r.name for r in refused}]
    lines = [outcome_line(kit.name, job), *summary_lines(job.kind, results.result)]
    lines += ([f"  {f.name} ({f.size} bytes) → {Path(where) / f.name}" for f in kept] if where
              else [f"  {f.name} ({f.size} bytes); download with --out DIR" for f in kept])
    lines += _refused_lines(kit, refused)
    emit(args, {"kit": kit.name, "folder": where or None, **results.model_dump(mode="json"),
                "refused": [{"name": r.name, "reason": r.reason} for r in refused]}, lines)
    return 1 if refused else 0


def _refused_lines(kit: Kit, refused: list[Refused]) -> list[str]:
    """The names a kit listed that are not saved, each once, shortened, escaped where shown."""
    if not refused:
        return []
    lines = [f"  refused {_short(r.name)}: {r.reason}" for r in refused]
    return [*lines, f"{kit.name} listed {len(refused)} result file name(s) the app does not save; "
                    "an up-to-date agent never does: check the kit (`kitfleet audit` shows who changed "
                    "what on it)"]


def _short(name: str, limit: int = 80) -> str:
    return name if len(name) <= limit else name[:limit] + "…"


async def _schedules(args: argparse.Namespace) -> int:
    return await _each_kit(args, lambda c: c.schedules(), schedule_row, "no schedules")


async def _unschedule(args: argparse.Namespace) -> int:
    fleet = open_fleet(args)
    try:
        kit = fleet.inventory.resolve(args.kit)
        await async_unschedule(fleet, kit, args.schedule_id)
    finally:
        fleet.close()
    emit(args, {"kit": kit.name, "schedule_id": args.schedule_id, "deleted": True},
         [f"schedule {args.schedule_id} deleted on {kit.name}"])
    return 0


def _resolve(fleet: Fleet, refs: list[str]) -> list[Kit]:
    kits: dict[str, Kit] = {}
    for ref in refs:
        kit = fleet.inventory.resolve(ref)
        kits.setdefault(kit.device_id, kit)
    return list(kits.values())


_ACTIONS: dict[str, Handler] = {
    "submit": _submit, "list": _list, "show": _show, "watch": _watch, "logs": _logs,
    "cancel": _cancel, "results": _results, "schedules": _schedules, "unschedule": _unschedule,
}


async def _jobs(args: argparse.Namespace) -> int:
    return await _ACTIONS[args.action](args)


HANDLERS: dict[str, Handler] = {"jobs": _jobs}
