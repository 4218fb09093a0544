"""`kitfleet jobs submit` options, and how they become a job spec.

Options are only parsed here (numbers, lists, times); whether they make a valid job is
decided by the wire contract in `app.fleet.jobspec`, so the CLI and the kit agree.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.cli.choices import JOB_KINDS
from app.cli.common import add_tag_option

# The job's contract (pydantic) is imported when options are turned into a job, not when the
# parser is built.
if TYPE_CHECKING:
    from app.fleet.datasets import LocalDataset
    from app.fleet.jobspec import JobSpec

_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}
FINE_TUNE_OPTIONS = ("embedding", "epochs", "val_fraction", "l2", "min_per_class", "seed", "activate")


def add_submit_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kits", nargs="*", metavar="KIT", help="kit name or device ID")
    parser.add_argument(
        "--kit",
        dest="kit_args",
        action="append",
        default=[],
        metavar="KIT",
        help="another kit (repeatable): the same job goes to each",
    )
    add_tag_option(parser)
    what = parser.add_argument_group("what to run")
    what.add_argument("--kind", required=True, help=f"one of {', '.join(JOB_KINDS)}")
    what.add_argument("--model", help="a deployed model's name")
    what.add_argument(
        "--version", help="a model version, or a unique prefix of it (default: the serving one)"
    )
    what.add_argument("--batch-sizes", metavar="N,N", help="benchmark: batch sizes, e.g. 1,8")
    what.add_argument(
        "--thread-counts",
        metavar="N,N",
        help="benchmark: thread counts to compare, e.g. 1,4 (default: --threads)",
    )
    what.add_argument(
        "--param",
        dest="params",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any parameter of the kind; VALUE is JSON when it parses (runs=20, "
        "argv='[\"/usr/bin/true\"]'), else text (repeatable)",
    )
    tune = parser.add_argument_group("fine-tune (--model: the backbone, --dataset: the labelled images)")
    tune.add_argument("--embedding", help="the tensor the new head learns from (default: found)")
    tune.add_argument("--epochs", type=int, metavar="N", help="training steps of the head (default 200)")
    tune.add_argument(
        "--val-fraction", type=float, metavar="F", help="share of each class held out (default 0.2)"
    )
    tune.add_argument("--l2", type=float, metavar="X", help="L2 regularisation of the head (default 1e-3)")
    tune.add_argument(
        "--min-per-class", type=int, metavar="N", help="fewest images a class may have (default 5)"
    )
    tune.add_argument("--seed", type=int, metavar="N", help="the split's shuffle (default 0)")
    tune.add_argument(
        "--activate", action="store_true", default=None, help="serve the new version at once if it is better"
    )
    images = parser.add_argument_group("images (batch-infer, evaluate, fine-tune)")
    images.add_argument("--folder", help="a folder on the kit, under its data roots")
    images.add_argument("--dataset", help="a dataset uploaded to the kit earlier")
    images.add_argument(
        "--upload",
        type=Path,
        metavar="DIR",
        help="a local folder of images: sent to each kit as a dataset first",
    )
    limits = parser.add_argument_group("resources and limits")
    limits.add_argument("--threads", type=int, metavar="N", help="CPU threads the job holds (default 1)")
    limits.add_argument(
        "--memory-mb", type=int, metavar="MIB", help="memory the job holds, MiB (default 256)"
    )
    limits.add_argument("--gpu", type=int, metavar="N", help="whole GPUs the job holds (default 0)")
    limits.add_argument(
        "--priority", type=int, metavar="P", help="-100..100; higher starts first (default 0)"
    )
    limits.add_argument("--timeout", metavar="DURATION", help="per attempt: 90s, 30m, 2h (default 1h)")
    limits.add_argument("--retries", type=int, metavar="N", help="retries after a failure (default 0)")
    when = parser.add_argument_group("when")
    when.add_argument(
        "--not-before",
        metavar="TIME",
        help="start no earlier than: +30m, 2025-06-01T22:00 (this computer's time zone), or Unix seconds",
    )
    when.add_argument("--window", metavar="HH:MM-HH:MM", help="start only in this window of the kit's clock")
    when.add_argument(
        "--min-battery", type=float, metavar="PERCENT", help="on battery, start only above this charge"
    )
    when.add_argument(
        "--max-temp",
        type=float,
        metavar="CELSIUS",
        help="start only while the kit's hottest sensor is below this",
    )
    when.add_argument(
        "--cron",
        metavar="EXPR",
        help="schedule instead of queuing now: 'minute hour day month weekday' on the kit's clock",
    )
    when.add_argument(
        "--missed",
        choices=["skip", "run_once"],
        default="skip",
        help="with --cron: runs missed while the kit was off (default skip)",
    )
    out = parser.add_argument_group("output")
    out.add_argument("--label", default="", help="a name for the job (and the schedule)")
    out.add_argument(
        "--key",
        help="idempotency key; submitting again with the same key never "
        "queues a second job (default: a new key)",
    )
    out.add_argument("--watch", action="store_true", help="then watch the jobs until they finish")


def spec_from(args: argparse.Namespace) -> tuple[JobSpec, LocalDataset | None]:
    """The job the options describe (not yet checked against the contract), and the local
    folder to upload for it."""
    from app.fleet.datasets import scan
    from app.fleet.jobspec import JobInputError, JobSpec, parse_numbers

    if args.cron and (args.key or args.watch):
        raise JobInputError(
            [
                "--cron makes a schedule, which queues its jobs later: --key and --watch "
                "apply to a job queued now"
            ]
        )
    params = _params(args.params)
    for key in ("model", "version", "folder", "dataset", *FINE_TUNE_OPTIONS):
        if getattr(args, key, None) is not None:
            params[key] = getattr(args, key)
    threads = args.threads
    if args.batch_sizes is not None:
        params["batch_sizes"] = parse_numbers(args.batch_sizes, "--batch-sizes")
    if args.thread_counts is not None:
        params["threads"] = parse_numbers(args.thread_counts, "--thread-counts")
        threads = threads or max(params["threads"])  # admission must reserve the most it will use
    upload = None
    if args.upload is not None:
        _check_upload(args, params)
        upload = scan(args.upload)
        params["dataset"] = upload.name
    return JobSpec(
        kind=args.kind,
        params=params,
        priority=args.priority,
        threads=threads,
        memory_mb=args.memory_mb,
        gpu=args.gpu,
        timeout_s=_duration("--timeout", args.timeout) if args.timeout else None,
        max_retries=args.retries,
        not_before=_when(args.not_before) if args.not_before else None,
        window=args.window,
        min_battery_percent=args.min_battery,
        max_temperature_c=args.max_temp,
        label=args.label,
    ), upload


def _check_upload(args: argparse.Namespace, params: dict[str, Any]) -> None:
    from app.fleet.jobspec import JobInputError, takes_images

    if not takes_images(args.kind):
        raise JobInputError([f"--upload sends images; a {args.kind} job reads none"])
    if "dataset" in params or "folder" in params:
        raise JobInputError(["give one of --upload, --dataset or --folder"])


def _params(pairs: list[str]) -> dict[str, Any]:
    from app.fleet.jobspec import JobInputError

    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise JobInputError([f"--param {pair!r}: write KEY=VALUE, e.g. --param runs=20"])
        try:
            params[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            params[key.strip()] = raw
    return params


def _duration(option: str, text: str) -> float:
    from app.fleet.jobspec import JobInputError

    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d)?\s*", text)
    if not match:
        raise JobInputError([f"{option} {text!r}: give seconds or a duration such as 90s, 30m, 2h"])
    return float(match[1]) * _UNITS[match[2] or "s"]


def _when(text: str) -> float:
    """Unix time from +DURATION, an ISO date-time (local if no zone is given) or Unix seconds."""
    from app.fleet.jobspec import JobInputError

    if text.startswith("+"):
        return time.time() + _duration("--not-before", text[1:])
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return dt.datetime.fromisoformat(text).astimezone().timestamp()
    except ValueError:
        raise JobInputError(
            [f"--not-before {text!r}: give +30m, 2025-06-01T22:00, or Unix seconds"]
        ) from None
