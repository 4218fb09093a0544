"""`kitfleet jobs`: submit work to kits (now or on a cron schedule), watch it, read its logs,
cancel it, and collect its results.

The command and its options are declared here; what each action does lives beside the actions
like it: `submit`, `watch` (list, show, watch, logs, cancel), `results` (results, schedules).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from app.cli.common import add_tag_option
from app.cli.jobs.options import add_submit_options
from app.cli.types import CommandFactory, Handler

_SUBMIT_EXAMPLES = """examples:
  kitfleet jobs submit kit-a --kind batch-infer --model digits-cnn --upload ./images --watch
  kitfleet jobs submit kit-a --kit kit-b --kind benchmark --model digits-cnn --batch-sizes 1,8
  kitfleet jobs submit kit-a --kind evaluate --model digits-cnn --folder eval --cron '0 2 * * *'
"""
STATES = ["queued", "running", "done", "failed", "cancelled", "interrupted"]


def add_commands(command: CommandFactory) -> None:
    jobs = command(
        "jobs",
        "run work on kits: submit (now or on a cron schedule), list, watch, logs, cancel, results",
        False,
    )
    actions = jobs.add_subparsers(dest="action", metavar="ACTION", required=True)

    def action(name: str, help_text: str, epilog: str | None = None) -> argparse.ArgumentParser:
        parser = actions.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        parser.add_argument("--json", action="store_true", help="print JSON")
        return parser

    add_submit_options(
        action("submit", "queue a job on one or more kits, or schedule it with --cron", _SUBMIT_EXAMPLES)
    )

    listing = action("list", "jobs on kits, newest first (all adopted kits when none is named)")
    listing.add_argument("kits", nargs="*", metavar="KIT", help="kit name or device ID")
    add_tag_option(listing)
    listing.add_argument(
        "--state", dest="states", action="append", choices=STATES, help="only jobs in this state (repeatable)"
    )
    listing.add_argument("--limit", type=int, default=50, help="jobs per kit (default 50)")

    show = action("show", "one job: state, request, progress, error, result summary and files")
    _kit_job(show)

    watch = action(
        "watch",
        "follow jobs until they finish: a live progress bar on a terminal; "
        "exit 0 when all are done, 1 when one failed or was cancelled",
    )
    watch.add_argument("kit", help="kit name or device ID")
    watch.add_argument(
        "job_ids",
        nargs="*",
        metavar="JOB",
        help="job ID or a unique prefix of it (repeatable; default: every unfinished job on the kit)",
    )

    logs = action("logs", "a job's log")
    _kit_job(logs)
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing until the job finishes")

    cancel = action("cancel", "cancel queued jobs, or stop running ones")
    cancel.add_argument("kit", help="kit name or device ID")
    cancel.add_argument(
        "job_ids", nargs="+", metavar="JOB", help="job ID or a unique prefix of it (repeatable)"
    )

    results = action(
        "results", "a finished job's summary; with --out, download its files to OUT/<kit>/<job>/"
    )
    _kit_job(results)
    results.add_argument("--out", type=Path, help="folder to download the result files into")
    results.add_argument(
        "--forget", action="store_true", help="after downloading, delete the job and its files on the kit"
    )

    schedules = action("schedules", "cron schedules on kits (all adopted kits when none is named)")
    schedules.add_argument("kits", nargs="*", metavar="KIT", help="kit name or device ID")
    add_tag_option(schedules)

    unschedule = action("unschedule", "delete a schedule; jobs it already queued stay")
    unschedule.add_argument("kit", help="kit name or device ID")
    unschedule.add_argument("schedule_id", metavar="SCHEDULE", help="schedule ID or a unique prefix of it")


def _kit_job(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kit", help="kit name or device ID")
    parser.add_argument("job_id", metavar="JOB", help="job ID, or its first 6+ hex digits (from `jobs list`)")


async def _jobs(args: argparse.Namespace) -> int:
    # The actions (and the fleet they use) are imported when one runs: building the parser,
    # which every `kitfleet` command does, stays light.
    from app.cli.jobs import results, submit, watch

    actions: dict[str, Handler] = {**submit.ACTIONS, **watch.ACTIONS, **results.ACTIONS}
    return await actions[args.action](args)


HANDLERS: dict[str, Handler] = {"jobs": _jobs}
