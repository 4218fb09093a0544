"""`kitfleet rollout`: a staged rollout (canaries, waves, soak checks, rollback), and
`rollout status|pause|resume|abort ID`, `rollout list`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.cli.common import add_tag_option, emit, open_fleet, say, select_kits
from app.cli.prefer import add_prefer_flag
from app.cli.types import CommandFactory, Handler
from app.fleet.errors import Error

# The fleet and the engine are imported when the command runs (a light parser).
if TYPE_CHECKING:
    from app.fleet.rollout import Event, Rollout

ACTIONS = ("status", "pause", "resume", "abort", "list")


def add_commands(command: CommandFactory) -> None:
    cmd = command(
        "rollout",
        "roll a model out in stages: canaries, soak and checks, then waves; "
        "or `rollout status|pause|resume|abort ID`, `rollout list`",
    )
    cmd.add_argument(
        "words", nargs="+", metavar="MODEL | ACTION ID", help="MODEL.onnx, or an action and a rollout ID"
    )
    cmd.add_argument(
        "--kit", dest="kits", action="append", default=[], help="kit name or device ID (repeatable)"
    )
    add_tag_option(cmd)
    cmd.add_argument(
        "--canary",
        dest="canaries",
        action="append",
        default=[],
        metavar="N|KIT",
        help="how many kits go first (default 1), or which (repeatable)",
    )
    cmd.add_argument("--waves", default="100%", help="cumulative shares of the rest, e.g. 25%%,100%%")
    cmd.add_argument("--max-failures", default="0", help="kits (N) or share (P%%) of a wave that may fail")
    cmd.add_argument("--soak", type=float, default=60.0, help="seconds each wave serves before its checks")
    cmd.add_argument("--eval", type=Path, help="a folder of labelled images (one sub-folder per label)")
    cmd.add_argument(
        "--max-accuracy-loss", type=float, default=1.0, help="top-1 points below the previous version"
    )
    cmd.add_argument("--max-latency-ratio", type=float, default=1.5, help="p50 vs the previous version")
    cmd.add_argument(
        "--max-error-rate",
        type=float,
        default=0.0,
        help="failed share, since activation, of the model's jobs and of its infer requests on the new "
        "version (failed through the kit's fault; requests refused as bad input do not count)",
    )
    cmd.add_argument(
        "--choose-precision",
        action="store_true",
        help="each kit benchmarks the precision variants and picks one",
    )
    cmd.add_argument(
        "--variant",
        dest="variants",
        action="append",
        default=[],
        type=Path,
        help="another precision of the model for --choose-precision (default: those beside MODEL)",
    )
    add_prefer_flag(cmd)
    cmd.add_argument("--force", action="store_true", help="past the manifest's hardware gates (audited)")


async def _rollout(args: argparse.Namespace) -> int:
    action = args.words[0]
    if action in ACTIONS and not Path(action).exists():
        return await _act(args, action, args.words[1:])
    if len(args.words) != 1:
        raise Error(f"rollout takes one model file, or one of {', '.join(ACTIONS)} and a rollout ID")
    return await _start(args, Path(action))


async def _start(args: argparse.Namespace, model: Path) -> int:
    from app.fleet.rollout import Plan, Thresholds, async_start
    from app.fleet.rollout.record import parse_max_failures, parse_waves

    counts = [c for c in args.canaries if c.isdigit()]
    fleet = open_fleet(args)
    try:
        plan = Plan(
            model=model,
            kits=select_kits(fleet, args.kits, args.tags),
            canaries=[c for c in args.canaries if not c.isdigit()],
            canary_count=int(counts[-1]) if counts else 1,
            waves=tuple(parse_waves(args.waves)),
            thresholds=Thresholds(
                max_failures=parse_max_failures(args.max_failures),
                max_latency_ratio=args.max_latency_ratio,
                max_accuracy_loss=args.max_accuracy_loss,
                max_error_rate=args.max_error_rate,
            ),
            soak_s=args.soak,
            eval_dataset=args.eval,
            choose_precision=args.choose_precision,
            variants=tuple(args.variants),
            prefer=args.prefer,
            force=args.force,
        )
        rollout = await async_start(fleet, plan, _printer(args))
    finally:
        fleet.close()
    return _end(args, rollout)


async def _act(args: argparse.Namespace, action: str, ids: list[str]) -> int:
    from app.fleet.rollout import RolloutStore, async_abort, async_resume, pause, status_lines

    if action == "list":
        fleet = open_fleet(args)
        try:
            rollouts = RolloutStore(fleet.inventory).all()
        finally:
            fleet.close()
        emit(args, [r.to_json() for r in rollouts], [_one_line(r) for r in rollouts] or ["no rollouts yet"])
        return 0
    if action == "resume" and not ids:
        return await _resume_waiting(args)
    if len(ids) != 1:
        raise Error(f"rollout {action} takes one rollout ID (`kitfleet rollout list` shows them)")
    fleet = open_fleet(args)
    try:
        if action == "status":
            rollout = RolloutStore(fleet.inventory).get(ids[0])
            emit(args, rollout.to_json(), status_lines(rollout))
            return 0
        if action == "pause":
            rollout = pause(fleet, ids[0])
            say(f"{rollout.rollout_id}: pause asked; it stops at its next step")
            return 0
        runner = async_resume if action == "resume" else async_abort
        rollout = await runner(fleet, ids[0], _printer(args))
    finally:
        fleet.close()
    return _end(args, rollout)


async def _resume_waiting(args: argparse.Namespace) -> int:
    """Every rollout waiting for kits that were away: the ones back are brought along."""
    from app.fleet.rollout import async_resume_waiting

    fleet = open_fleet(args)
    try:
        rollouts = await async_resume_waiting(fleet, _printer(args))
    finally:
        fleet.close()
    if not rollouts:
        emit(args, [], ["no rollout is waiting for kits"])
        return 0
    codes = [_end(args, r) for r in rollouts]
    return max(codes)


def _printer(args: argparse.Namespace) -> Any:
    if args.json:
        return None

    def show(event: Event) -> None:
        say(
            f"{event.rollout_id} {event.kit}: {event.text}"
            if event.kit
            else f"{event.rollout_id}: {event.text}"
        )

    return show


def _end(args: argparse.Namespace, rollout: Rollout) -> int:
    from app.fleet.rollout import status_lines

    lines = status_lines(rollout)
    if rollout.phase not in ("done", "failed", "aborted"):
        lines.append(f"continue with `kitfleet rollout resume {rollout.rollout_id}`")
    emit(args, rollout.to_json(), lines)
    return 1 if rollout.phase == "failed" else 0


def _one_line(r: Rollout) -> str:
    passed = sum(1 for k in r.kits if k.state == "passed")
    return f"{r.rollout_id}  {r.model} {r.version}  {r.phase:<12} {passed}/{len(r.kits)} kits passed"


HANDLERS: dict[str, Handler] = {"rollout": _rollout}
