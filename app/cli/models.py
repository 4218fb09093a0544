"""Model commands: deploy, models list|activate|rollback|delete, infer."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.cli.common import add_tag_option, age, emit, open_fleet, say, select_kits
from app.cli.model_inspect import add_override_flags, inferred_summary, inspect_command, overrides_from
from app.cli.prefer import add_prefer_flag
from app.cli.progress_line import ProgressLine
from app.cli.types import CommandFactory, Handler
from app.fleet.errors import Error, IdentityChanged, KitUnreachable

# The contract, the fleet and the model tools are imported by the command that uses them, so
# building the parser stays light (tests/unit/app/test_cli_start.py).
if TYPE_CHECKING:
    from agent.wire import InferResult, InferTimings, ModelInfo
    from app.fleet.inventory import Kit
    from app.fleet.known_models import KnownModels
    from app.fleet.service import Fleet


def add_commands(command: CommandFactory) -> None:
    deploy = command("deploy", "send a model package to one or more kits")
    deploy.add_argument(
        "model",
        type=Path,
        nargs="?",
        help="MODEL.onnx (its MODEL.manifest.json if beside it, else one is inferred)",
    )
    deploy.add_argument(
        "--kit", dest="kits", action="append", default=[], help="kit name or device ID (repeatable)"
    )
    add_tag_option(deploy)
    deploy.add_argument("--activate", action="store_true", help="serve it once installed")
    deploy.add_argument(
        "--force",
        action="store_true",
        help="install even on kits that miss the manifest's `requires` (audited here and on the kit)",
    )
    precision = deploy.add_argument_group("choosing the precision per kit (instead of MODEL)")
    precision.add_argument(
        "--choose-precision",
        nargs="+",
        type=Path,
        default=[],
        metavar="VARIANT",
        help="variants of one model (e.g. FP32.onnx INT8.onnx): each kit benchmarks them and serves the "
        "fastest within the accuracy tolerance",
    )
    precision.add_argument(
        "--eval", type=Path, metavar="FOLDER", help="labelled images to compare accuracy on"
    )
    precision.add_argument(
        "--max-accuracy-loss",
        type=float,
        default=1.0,
        metavar="POINTS",
        help="top-1 points below FP32 allowed",
    )
    add_prefer_flag(precision)
    add_override_flags(deploy)

    models = command("models", "models on a kit: list, activate, rollback, delete; inspect a model file")
    models.add_argument("action", choices=["list", "activate", "rollback", "delete", "inspect"])
    models.add_argument("kit", help="kit name or device ID (inspect: the MODEL.onnx file)")
    models.add_argument("name", nargs="?", help="model name (activate, rollback, delete)")
    models.add_argument(
        "version", nargs="?", help="version, or a unique prefix of it or of its sha256 (activate, delete)"
    )
    models.add_argument(
        "--force", action="store_true", help="delete even the serving version; inspect: replace a manifest"
    )
    models.add_argument(
        "--write-manifest", action="store_true", help="inspect: save MODEL.manifest.json beside the model"
    )
    models.add_argument(
        "--timings",
        action="store_true",
        help="list: also where each model's infer requests spent their time on the kit, per stage",
    )
    add_override_flags(models)

    infer = command("infer", "run an image or .npy tensor through a kit's serving model")
    infer.add_argument("kit", help="kit name or device ID")
    infer.add_argument("model", help="model name")
    infer.add_argument("input", type=Path, help="image (JPEG, PNG, BMP, WebP) or tensor (.npy)")
    infer.add_argument(
        "--version", help="an installed version, or a unique prefix of it (default: the serving one)"
    )
    infer.add_argument("--top-k", type=int, default=5)
    infer.add_argument("--out", type=Path, help="where to write a raw model's outputs (.npz)")


async def _deploy(args: argparse.Namespace) -> int:
    from app.fleet.deploy import async_deploy, async_prepare

    if args.choose_precision:
        from app.cli.deploy_choosing import deploy_choosing

        return await deploy_choosing(args)
    if args.model is None:
        raise Error("name the model to deploy (MODEL.onnx), or its variants with --choose-precision")
    fleet = open_fleet(args)
    try:
        kits = select_kits(fleet, args.kits, args.tags)
        if not kits:
            raise Error("name the kits to deploy to: --kit KIT or --tag TAG (repeatable)")
        package = await async_prepare(args.model, overrides_from(args))  # checked as it is sent
        if package.inspection is not None:
            inferred_summary(args.model, package.inspection)
        progress = None if args.json else ProgressLine()
        outcomes = await async_deploy(
            fleet, args.model, kits, args.activate, progress, package=package, force=args.force
        )
    finally:
        fleet.close()
    rows = [
        {
            "kit": o.kit.name,
            "ok": o.ok,
            "message": o.message,
            "int8_advice": o.advice,
            "active_version": o.info.active_version if o.info else None,
            "gates": list(o.gates),
            "forced": o.forced,
        }
        for o in outcomes
    ]
    lines = [f"{_verdict(o.ok, bool(o.gates), o.forced)} {o.kit.name}: {o.message}" for o in outcomes]
    lines += [o.advice for o in outcomes if o.advice]
    emit(args, rows, lines)
    return 0 if all(o.ok for o in outcomes) else 1


def _verdict(ok: bool, gated: bool, forced: bool) -> str:
    if ok:
        return "FORCED" if forced else "ok    "
    return "REFUSED" if gated and not forced else "FAILED"


async def _models(args: argparse.Namespace) -> int:
    from agent.wire import MAX_INT64
    from app.cli.infer_timings import timing_lines
    from app.fleet.known_models import KnownModels
    from app.fleet.snapshot import Snapshots

    if args.action == "inspect":  # the second word is the model file here, not a kit
        return await inspect_command(args)
    if args.action != "list" and not args.name:
        raise Error(f"`kitfleet models {args.action}` needs a model name")
    if args.action in ("activate", "delete") and not args.version:
        raise Error(f"`kitfleet models {args.action}` needs a version")
    fleet = open_fleet(args)
    timings: list[InferTimings] | None = None
    try:
        kit = fleet.inventory.resolve(args.kit)
        known = KnownModels(Snapshots(fleet.inventory))
        await _change_models(args, fleet, kit, known)
        try:
            infos = await fleet.async_call(kit, lambda c: c.models())
            known.listed(kit.device_id, infos)
            note = []
            if args.timings and args.action == "list":
                latest = await fleet.async_call(kit, lambda c: c.metrics(since_seq=MAX_INT64, limit=1))
                timings = latest.infer  # no samples: only the infer timings are wanted
        except (KitUnreachable, IdentityChanged) as exc:
            last = known.of(kit.device_id) if args.action == "list" else None
            if last is None:
                raise
            infos, note = (
                last[0],
                [
                    f"{kit.name} is away: {exc}",
                    f"its last known models (as read "
                    f"{age(last[1])}, with the changes made from this laptop since):",
                ],
            )
    finally:
        fleet.close()
    if note and args.json:
        say(*note, file=sys.stderr)
    data: Any = [i.model_dump() for i in infos]
    lines = note + model_lines(kit.name, infos)
    if timings is not None:
        data = {"models": data, "infer_timings": [t.model_dump() for t in timings]}
        lines += timing_lines(timings)
    elif args.timings and note:
        lines.append("(where requests spent their time is shown only while the kit answers)")
    emit(args, data, lines)
    return 0


async def _change_models(args: argparse.Namespace, fleet: Fleet, kit: Kit, known: KnownModels) -> None:
    """Activate, roll back or delete as asked, and record what the kit confirmed at once."""
    from app.cli.jobs.targets import model_version

    if args.action in ("activate", "delete"):  # a version as shown: itself, or a unique prefix
        args.version = await model_version(fleet, kit, args.name, args.version)
    if args.action == "activate":
        known.confirmed(
            kit.device_id, await fleet.async_call(kit, lambda c: c.activate(args.name, args.version))
        )
    elif args.action == "rollback":
        known.confirmed(kit.device_id, await fleet.async_call(kit, lambda c: c.rollback(args.name)))
    elif args.action == "delete":
        await fleet.async_call(kit, lambda c: c.delete_version(args.name, args.version, args.force))
        known.deleted(kit.device_id, args.name, args.version)


def model_lines(kit: str, infos: list[ModelInfo]) -> list[str]:
    """Every version, sizes in human units (--json keeps bytes), then what the marks mean."""
    from app.fleet import summary

    lines = [
        f"{mark} {info.name:<20} {v.version:<16} {v.precision:<5} {summary.size(v.size_bytes):>10} "
        f"{v.sha256[:12]}"
        for info in infos
        for v in info.versions
        for mark in ["*" if v.active else ("<" if v.version == info.previous_version else " ")]
    ]
    if not lines:
        return [f"no models on {kit}"]
    header = f"  {'MODEL':<20} {'VERSION':<16} {'PREC':<5} {'SIZE':>10} SHA256"
    return [header, *lines, "(* serving, < previous: what `kitfleet models rollback` returns to)"]


async def _infer(args: argparse.Namespace) -> int:
    from app.cli.jobs.targets import model_version
    from app.fleet.inference import async_infer, read_input

    given = read_input(args.input)
    fleet = open_fleet(args)
    try:
        kit = fleet.inventory.resolve(args.kit)
        if args.version:  # as `kitfleet models list` shows it: itself, or a unique prefix
            args.version = await model_version(fleet, kit, args.model, args.version)
        answer = await async_infer(fleet, kit, args.model, given, args.version, args.top_k)
    finally:
        fleet.close()
    if answer.raw is not None:
        out = args.out or args.input.with_suffix(".out.npz")
        out.write_bytes(answer.raw.npz)
        emit(
            args,
            {
                "outputs": str(out),
                "model": args.model,
                "version": answer.raw.version,
                "sha256": answer.raw.sha256,
            },
            [f"{args.model} {answer.raw.version} ({answer.raw.sha256[:12]}): raw outputs written to {out}"],
        )
        return 0
    assert answer.result is not None
    emit(args, answer.result.model_dump(), _result_lines(answer.result))
    return 0


def _result_lines(result: InferResult) -> list[str]:
    head = f"{result.model} {result.version} ({result.sha256[:12]}) in {result.latency_ms:.1f} ms"
    rows: list[Any] = []
    for c in result.classes or []:
        rows.append(f"  {c.score:6.3f}  {c.label}")
    for d in result.detections or []:
        box = ", ".join(f"{v:.0f}" for v in d.box)
        rows.append(f"  {d.score:6.3f}  {d.label:<12} [{box}]")
    return [head, *rows] if rows else [head, "  (nothing above the threshold)"]


HANDLERS: dict[str, Handler] = {"deploy": _deploy, "models": _models, "infer": _infer}
