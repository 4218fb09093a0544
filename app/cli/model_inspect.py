"""`kitfleet models inspect MODEL.onnx`, and the flags that override what an inspection infers
(shared with `kitfleet deploy`)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from app.cli.choices import NORMALISE, TASKS
from app.cli.common import emit, say
from app.fleet.errors import Error

# The inspector (onnx, numpy) only when a model is inspected: these flags are in the parser.
if TYPE_CHECKING:
    from agent.wire import Requirements
    from app.fleet.inspection import Inspection, Overrides

__all__ = ["add_override_flags", "inferred_summary", "inspect_command", "overrides_from"]


def add_override_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per field of an inferred manifest (used when no manifest is beside the model)."""
    group = parser.add_argument_group("for a model without a manifest (each overrides what was inferred)")
    group.add_argument("--name", help="model name (default: from the file name)")
    group.add_argument(
        "--version",
        dest="model_version",
        metavar="VERSION",
        help="model version (default: metadata or sha256)",
    )
    group.add_argument("--task", choices=TASKS, help="what the outputs are (default: from their layout)")
    group.add_argument("--labels", type=Path, metavar="FILE", help="class names, one a line")
    group.add_argument("--input-size", type=_size, metavar="HxW", help="input height x width (e.g. 640x640)")
    group.add_argument("--normalise", choices=NORMALISE, help="pixel normalisation")
    group.add_argument(
        "--letterbox", action=argparse.BooleanOptionalAction, help="keep the aspect ratio and pad (detectors)"
    )
    group.add_argument("--score-threshold", type=_fraction, metavar="0-1", help="a detector's lowest score")
    group.add_argument(
        "--requires",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a hardware gate (repeatable): arch=x86_64,aarch64 min_memory_mb=N min_free_disk_mb=N "
        "providers=CUDAExecutionProvider,... cpu_features=vnni,avx512 min_onnxruntime=1.17",
    )


def overrides_from(args: argparse.Namespace) -> Overrides:
    from app.fleet.inspection import Overrides

    return Overrides(
        name=args.name,
        version=args.model_version,
        task=args.task,
        labels=args.labels,
        input_size=args.input_size,
        normalise=args.normalise,
        letterbox=args.letterbox,
        score_threshold=args.score_threshold,
        requires=_requires(args.requires),
    )


def _requires(items: list[str]) -> Requirements | None:
    from app.fleet.inspection.overrides import parse_requires

    try:
        return parse_requires(items)
    except ValueError as exc:
        raise Error(str(exc)) from None


async def inspect_command(args: argparse.Namespace) -> int:
    from app.fleet.inspection import inspect_model, write_manifest

    """What `args.kit` (the model, for this action) would be deployed as, and why."""
    model = Path(args.kit)
    golden = bool(args.write_manifest)  # running the model is only worth it for a saved manifest
    inspection = await asyncio.to_thread(inspect_model, model, overrides_from(args), golden=golden)
    written = write_manifest(model, inspection.manifest, args.force) if args.write_manifest else None
    data = {**inspection.to_json(), "written": str(written) if written else None}
    lines = _lines(model, inspection)
    if written:
        lines.append(
            f"manifest written to {written}; `kitfleet deploy {model.name} --kit KIT` uses it as it is"
        )
    else:
        lines.append(
            f"deploy it: kitfleet deploy {model.name} --kit KIT (with the same flags), or add "
            "--write-manifest to save this manifest beside the model and edit it"
        )
    emit(args, data, lines)
    return 0


def inferred_summary(model: Path, inspection: Inspection) -> None:
    """What `kitfleet deploy` inferred for a model without a manifest, on stderr."""
    m = inspection.manifest
    say(
        f"{model.name} has no manifest: deploying it as {m.name} {m.version} ({inspection.family}, "
        f"{m.input.height}x{m.input.width}, {inspection.why.get('normalise_name', '')}); "
        f"`kitfleet models inspect {model.name}` shows why",
        *(f"warning: {w}" for w in inspection.warnings),
        file=sys.stderr,
    )


def _lines(model: Path, inspection: Inspection) -> list[str]:
    facts = inspection.facts
    made = ", ".join(
        p for p in (facts.producer and f"exported by {facts.producer}", f"opset {facts.opset}") if p
    )
    lines = [f"{model.name}: {inspection.family} ({made})"]
    if facts.doc_string:
        lines.append(f"  doc: {facts.doc_string[:300]}")
    for field, value, why in inspection.rows():
        lines.append(f"  {field:<16} {value:<24} {why}")
    lines += [f"warning: {w}" for w in inspection.warnings]
    return lines


def _size(text: str) -> tuple[int, int]:
    from app.fleet.inspection import parse_size

    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a score between 0 and 1 (e.g. 0.4)")
    return value
