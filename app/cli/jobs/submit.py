"""`kitfleet jobs submit`: queue a job (or a cron schedule) on kits, optionally watching it through."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from app.cli.common import emit, open_fleet, say
from app.cli.jobs.options import spec_from
from app.cli.jobs.targets import model_version, resolve
from app.cli.jobs.watch import all_done, emit_watched, watch_kits
from app.cli.types import Handler
from app.fleet.errors import Error, IdentityChanged, KitUnreachable
from app.fleet.inventory import Kit
from app.fleet.jobs import SubmitOutcome, SubmitProgress, async_submit, named
from app.fleet.service import Fleet


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
        kits = resolve(fleet, [*(args.kits or []), *args.kit_args], args.tags)
        if not kits:
            raise Error(
                "name at least one kit: `kitfleet jobs submit KIT --kind ...` "
                "(or --kit, or --tag, repeatable)"
            )
        spec, upload = spec_from(args)
        await _name_the_version(fleet, kits, spec.params)
        job = (
            spec.schedule(spec.schedule_name, args.cron, args.missed) if args.cron else spec.request(args.key)
        )
        outcomes = await async_submit(fleet, kits, job, upload, None if args.json else _SubmitLine())
        rows, lines = _outcome_rows(outcomes)
        if not args.watch:
            emit(args, rows, lines)
            return 0 if all(o.ok for o in outcomes) else 1
        if not args.json:
            say(*lines)
        watched = await watch_kits(args, fleet, [(o.kit, [o.job.job_id]) for o in outcomes if o.job])
    finally:
        fleet.close()
    finals = {kit.name: result for kit, result in watched}
    for row in rows:
        final = finals.get(row["kit"])
        row["job"] = final[0].model_dump(mode="json") if isinstance(final, list) else None
    emit_watched(args, watched, rows)
    return 0 if all(o.ok for o in outcomes) and all_done(watched) else 1


async def _name_the_version(fleet: Fleet, kits: list[Kit], params: dict[str, Any]) -> None:
    """--version as `kitfleet models list` shows it, a unique prefix too, made the version it
    names: the same one on every kit that answers (a kit away is told of by the submit itself)."""
    model, ref = params.get("model"), params.get("version")
    if not isinstance(model, str) or not isinstance(ref, str):
        return

    async def on(kit: Kit) -> tuple[str, str] | None:
        try:
            return kit.name, await model_version(fleet, kit, model, ref)
        except (KitUnreachable, IdentityChanged):
            return None

    named = [found for found in await asyncio.gather(*(on(kit) for kit in kits)) if found]
    versions = {version for _, version in named}
    if len(versions) > 1:
        each = ", ".join(f"{version} on {kit}" for kit, version in named)
        raise Error(f"--version {ref!r} names different versions ({each}): give the whole version")
    if versions:
        params["version"] = versions.pop()


def _outcome_rows(outcomes: list[SubmitOutcome]) -> tuple[list[dict[str, Any]], list[str]]:
    rows = [
        {
            "kit": o.kit.name,
            "ok": o.ok,
            "message": o.message,
            "key": o.key,
            "job_id": o.job.job_id if o.job else None,
            "created": o.created,
            "schedule_id": o.schedule.schedule_id if o.schedule else None,
            "next_run_at": o.schedule.next_run_at if o.schedule else None,
            "dataset": o.dataset.name if o.dataset else None,
            "warnings": o.job.warnings if o.job else [],
        }
        for o in outcomes
    ]
    lines = [
        line
        for o in outcomes
        for line in (
            f"{'ok    ' if o.ok else 'FAILED'} {named(o.kit, o.message)}",
            *(f"  warning: {w}" for w in (o.job.warnings if o.job else [])),  # e.g. a gate it cannot keep
        )
    ]
    away = [o for o in outcomes if o.retryable and o.key]
    if away:
        lines.append(
            f"to send it to {', '.join(o.kit.name for o in away)} later without ever queuing "
            f"it twice, submit again with --key {away[0].key}"
        )
    return rows, lines


ACTIONS: dict[str, Handler] = {"submit": _submit}
