"""`kitfleet stream`: run a detector on a kit's camera, stream or video, and watch it live."""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import TYPE_CHECKING, Any

from app.cli.common import add_tag_option, emit, open_fleet, say, select_kits
from app.cli.types import CommandFactory, Handler
from app.fleet.errors import Error

if TYPE_CHECKING:
    from app.fleet.inventory import Kit
    from app.fleet.service import Fleet
    from app.fleet.stream import StreamOptions

# app.fleet.stream (the fleet, httpx, pydantic) is imported by each action that uses it, so
# building the parser stays light.

_EXAMPLES = """examples:
  kitfleet stream start kit-a --model shapes-yolo --source /dev/video0 --fps 10
  kitfleet stream start kit-a --model shapes-yolo --source rtsp://camera.local/stream1
  kitfleet stream start kit-a --model shapes-yolo --source videos/gate.mp4 --keep counts --loop
  kitfleet stream start kit-a --model shapes-yolo --source ~/Videos/gate.mp4 --upload
  kitfleet stream start kit-a --model shapes-yolo --source incoming/ --live
  kitfleet stream watch kit-a JOB
  kitfleet stream stop kit-a JOB
"""
_OK_ENDINGS = ("done", "cancelled")


def add_commands(command: CommandFactory) -> None:
    stream = command("stream", "continuous inference on a kit's camera, stream, video or folder", False)
    actions = stream.add_subparsers(dest="action", metavar="ACTION", required=True)

    def action(name: str, help_text: str, kits: bool = False) -> argparse.ArgumentParser:
        parser = actions.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=_EXAMPLES,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        parser.add_argument("--json", action="store_true", help="print JSON")
        if kits:  # one kit, or with --tag every kit carrying the tag
            parser.add_argument("kit", nargs="?", help="kit name or device ID")
            add_tag_option(parser)
        else:
            parser.add_argument("kit", help="kit name or device ID")
        return parser

    start = action(
        "start", "start a stream job; it runs on the kit until stopped or the source ends", kits=True
    )
    start.add_argument("--model", required=True, help="a deployed detection or classification model")
    start.add_argument(
        "--source",
        required=True,
        help="/dev/videoN, rtsp:// or http(s):// URL, or a video file or image folder "
        "under the kit's data roots",
    )
    start.add_argument(
        "--version", help="a model version, or a unique prefix of it (default: the serving one)"
    )
    start.add_argument("--fps", type=float, help="frames processed per second at most")
    start.add_argument(
        "--keep",
        type=_keep,
        default=None,
        help="what the kit stores: detections,counts,snapshots (default: all)",
    )
    start.add_argument("--interval", type=float, dest="interval_s", help="seconds per counts row")
    start.add_argument("--snapshots", type=int, dest="max_snapshots", help="annotated frames kept")
    start.add_argument(
        "--every-frame",
        action="store_true",
        help="read a file or folder as fast as the model goes, dropping nothing",
    )
    start.add_argument("--loop", action="store_true", help="play a video file again when it ends")
    start.add_argument(
        "--live",
        action="store_true",
        help="a watched folder as a live camera: skip images the model cannot keep up with "
        "(default: every image, as a backlog)",
    )
    start.add_argument(
        "--upload",
        action="store_true",
        help="a video or folder on this computer: send it to the kit as a dataset and stream it "
        "(asked on a terminal)",
    )
    start.add_argument("--threads", type=int, help="CPU threads for the model (default 1)")
    start.add_argument("--label", default="", help="a name for the job")

    watch = action(
        "watch", "live counts, fps, drops and latency until the job ends (Ctrl-C leaves it running)"
    )
    watch.add_argument("job_id", metavar="JOB")
    watch.add_argument("--frames", action="store_true", help="with --json, every frame's results too")

    stop = action("stop", "stop a stream job (its kept results stay on the kit)")
    stop.add_argument("job_id", metavar="JOB")


def _keep(text: str) -> list[str]:
    try:
        from app.fleet.stream import parse_keep

        return parse_keep(text)
    except Error as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


async def _stream(args: argparse.Namespace) -> int:
    handler = {"start": _start, "watch": _watch, "stop": _stop}[args.action]
    return await handler(args)


async def _start(args: argparse.Namespace) -> int:
    from app.cli.stream_upload import async_start_or_upload, interactive
    from app.fleet.stream import StreamOptions

    options = StreamOptions(
        model=args.model,
        source=args.source,
        version=args.version,
        fps=args.fps,
        **({"keep": args.keep} if args.keep is not None else {}),
        interval_s=args.interval_s,
        max_snapshots=args.max_snapshots,
        realtime=not args.every_frame,
        loop=args.loop,
        live=args.live,
        threads=args.threads,
        label=args.label,
    )
    fleet = open_fleet(args)
    try:
        kits = select_kits(fleet, [args.kit] if args.kit else [], args.tags)
        if not kits:
            raise Error("name the kit to stream on: `kitfleet stream start KIT ...` or --tag TAG")
        ask = interactive()
        jobs = [
            (
                kit,
                await async_start_or_upload(
                    fleet, kit, await _versioned(fleet, kit, options), args.upload, ask
                ),
            )
            for kit in kits
        ]
    finally:
        fleet.close()
    data = [{"kit": kit.name, **job.model_dump(mode="json")} for kit, job in jobs]
    lines = [
        line
        for kit, job in jobs
        for line in (
            f"stream job {job.job_id} {job.state} on {kit.name}",
            f"watch it: kitfleet stream watch {kit.name} {job.job_id}",
            f"stop it:  kitfleet stream stop {kit.name} {job.job_id}",
        )
    ]
    emit(args, data[0] if len(data) == 1 and not args.tags else data, lines)
    return 0


async def _versioned(fleet: Fleet, kit: Kit, options: StreamOptions) -> StreamOptions:
    """`options` with the version as the kit knows it: a unique prefix names one on each kit."""
    from app.cli.jobs.targets import model_version

    if not options.version:
        return options
    return dataclasses.replace(
        options, version=await model_version(fleet, kit, options.model, options.version)
    )


async def _watch(args: argparse.Namespace) -> int:
    from app.cli.jobs.targets import job_ids
    from app.fleet.stream import async_watch, stats_line

    fleet = open_fleet(args)
    try:
        kit = fleet.inventory.resolve(args.kit)
        [args.job_id] = await job_ids(fleet, kit, [args.job_id])  # a unique prefix names it too
        ending: dict[str, Any] = {}
        async for event in async_watch(fleet, kit, args.job_id):
            if args.json and (event.kind != "frame" or args.frames):
                print(json.dumps({"event": event.kind, **event.data}), flush=True)
            elif not args.json and event.kind == "stats":
                say(stats_line(event.data))
            if event.kind == "end":
                ending = event.data
    finally:
        fleet.close()
    if not ending:
        raise Error(f"{kit.name} closed the live view of {args.job_id} before the job ended")
    if not args.json:
        say(*_ending_lines(args.job_id, ending))
    return 0 if ending.get("state") in _OK_ENDINGS else 1


def _ending_lines(job_id: str, ending: dict[str, Any]) -> list[str]:
    from app.fleet.stream import summary_lines

    line = f"job {job_id} {ending.get('state')}"
    if ending.get("error") and ending.get("state") != "cancelled":
        line += f": {ending['error']}"
    return [line, *(f"  {text}" for text in summary_lines(ending.get("result")))]


async def _stop(args: argparse.Namespace) -> int:
    from app.cli.jobs.targets import job_ids
    from app.fleet.stream import async_stop, summary_lines

    fleet = open_fleet(args)
    try:
        kit = fleet.inventory.resolve(args.kit)
        [job_id] = await job_ids(fleet, kit, [args.job_id])  # a unique prefix names it too
        job = await async_stop(fleet, kit, job_id)
    finally:
        fleet.close()
    emit(
        args,
        job.model_dump(mode="json"),
        [
            f"stream job {job.job_id} {job.state} on {kit.name}",
            *(f"  {text}" for text in summary_lines(job.result)),
        ],
    )
    return 0


HANDLERS: dict[str, Handler] = {"stream": _stream}
