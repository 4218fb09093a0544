"""Read a cron expression back to the technician before the kit sees it: next runs, or why not.

The kit is the judge (it evaluates schedules on its own clock and refuses bad expressions
with a 422); this only mirrors its rules so a typo shows while typing, not after Submit.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

__all__ = ["CronHint", "cron_hint"]

_USAGE = (
    "use 5 fields: minute hour day-of-month month day-of-week, e.g. 0 2 * * * for 02:00 "
    "every day (a 6th field is seconds)"
)


@dataclass(frozen=True)
class CronHint:
    ok: bool
    text: str
    next_runs: tuple[dt.datetime, ...] = ()


def cron_hint(cron: str, now: dt.datetime | None = None, count: int = 3) -> CronHint:
    """The next `count` run times after `now` (laptop clock), or a message saying what is wrong."""
    cron = cron.strip()
    if not cron:
        return CronHint(False, f"Enter a cron expression: {_USAGE}.")
    fields = len(cron.split())
    if fields not in (5, 6):  # as the kit: no @daily shorthands, no 7-field years
        return CronHint(
            False,
            f"Not a usable cron expression: it has {fields} field{'' if fields == 1 else 's'}; {_USAGE}.",
        )
    try:
        from croniter import croniter  # the kit's own parser, when this laptop has it
    except ImportError:
        return CronHint(True, "The kit checks the expression when you submit.")
    start = (now or dt.datetime.now()).astimezone()
    try:
        runs = croniter(cron, start)
        times = tuple(runs.get_next(dt.datetime) for _ in range(count))
    except (ValueError, KeyError) as exc:  # CroniterError is a ValueError
        return CronHint(False, f"Not a usable cron expression ({exc}); {_USAGE}.")
    shown = ", ".join(t.strftime("%a %d %b %H:%M") for t in times)
    return CronHint(True, f"Next runs: {shown} (laptop clock; the kit runs it on its own clock)", times)
