"""`kitfleet quantize IN.onnx OUT.onnx`: INT8 (or FP16) beside a manifest, FP32 vs the copy side by
side, the nodes left FP32, and one recommendation made from the measurement.

Without `--mode`, calibration images choose static mode and their absence dynamic mode; an explicit
`--mode static` without `--calibration` is refused rather than quietly quantized another way.
Weights take 7 bits unless `--full-range-weights`: this laptop cannot know the CPU of the kit that
will run the model, and only VNNI/AMX or ARM dot-product CPUs keep full 8-bit signed weights accurate
(unsigned ones, dynamic mode's default for Conv models, are accurate on every CPU).
Dynamic mode stores a Conv model's weights unsigned (faster, and every ONNX Runtime runs them);
`--signed-conv-weights` asks for signed ones (an experiment), refused when `--kit K`'s ONNX Runtime
(its facts) lacks the kernel for them.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.cli.choices import QUANTIZE_METHODS, QUANTIZE_MODES
from app.cli.common import emit, open_fleet
from app.cli.types import CommandFactory, Handler
from app.fleet.errors import Error

# The quantizer (onnx, ONNX Runtime, numpy, Pillow: seconds to import) only when it runs.
if TYPE_CHECKING:
    from app.fleet.quantize import Mode, QuantizeResult

_SIZE = re.compile(r"(\d+)(?:[x×](\d+))?")


def add_commands(command: CommandFactory) -> None:
    quantize = command("quantize", "make an INT8 (or FP16) copy of an FP32 ONNX model and compare the two")
    quantize.add_argument("source", type=Path, metavar="IN.onnx", help="the FP32 model")
    quantize.add_argument(
        "output",
        type=Path,
        metavar="OUT.onnx",
        help="where the INT8 model goes (its manifest is written beside it)",
    )
    quantize.add_argument(
        "--calibration", type=Path, metavar="DIR", help="typical input images (a few hundred) for static mode"
    )
    quantize.add_argument(
        "--mode",
        choices=list(QUANTIZE_MODES),
        help="static: INT8 QDQ per-channel, calibrated; dynamic: INT8 weights only; fp16: half "
        "precision, for kits whose execution provider favours it (a GPU; see `kitfleet facts KIT`) "
        "(default: static with --calibration, else dynamic)",
    )
    quantize.add_argument(
        "--method",
        choices=list(QUANTIZE_METHODS),
        default="minmax",
        help="how static mode picks activation ranges (default minmax)",
    )
    quantize.add_argument(
        "--eval",
        dest="evaluation",
        type=Path,
        metavar="DIR",
        help="images to compare FP32 and INT8 on; one sub-folder per label "
        "(named as the model's labels, listed in labels.txt, or numbered) "
        "adds top-1 accuracy",
    )
    quantize.add_argument(
        "--input-size", metavar="HxW", help="picture size the kit feeds, for a model whose input size is free"
    )
    quantize.add_argument(
        "--max-images",
        type=int,
        default=300,
        metavar="N",
        help="calibration images used at most, spread over the folder (default 300)",
    )
    quantize.add_argument(
        "--runs",
        type=int,
        default=100,
        metavar="N",
        help="timed runs of each model for the latency figures (default 100)",
    )
    quantize.add_argument(
        "--full-range-weights",
        action="store_true",
        help="full 8-bit weights: signed ones (static mode, MatMul-only models) are accurate only on "
        "kits with VNNI/AMX or ARM dot-product, as x86 CPUs without VNNI saturate on them; dynamic "
        "mode's unsigned Conv weights on every CPU (default: 7-bit weights, accurate on every CPU)",
    )
    quantize.add_argument(
        "--signed-conv-weights",
        action="store_true",
        help="dynamic mode: signed Conv weights (an experiment: they need onnxruntime 1.24+ and "
        "measured slower; default: unsigned, faster and run by every version)",
    )
    quantize.add_argument(
        "--kit",
        metavar="KIT",
        help="the kit that will run the model: with --signed-conv-weights, refused unless its "
        "ONNX Runtime (from its facts) has the signed ConvInteger kernel",
    )
    quantize.add_argument(
        "--report",
        type=Path,
        metavar="FILE",
        help="also write the report: JSON for .json, Markdown for .md, else text",
    )


async def _quantize(args: argparse.Namespace) -> int:
    from app.fleet.quantize import quantize_model

    mode: Mode = args.mode or ("static" if args.calibration else "dynamic")
    _check(args, mode)
    runtime = await _kit_runtime(args) if args.kit and args.signed_conv_weights else None
    result = await asyncio.to_thread(
        quantize_model,
        args.source,
        args.output,
        mode,
        args.calibration,
        method=args.method,
        max_images=args.max_images,
        evaluation=args.evaluation,
        runs=args.runs,
        input_size=_input_size(args.input_size),
        reduce_range=not args.full_range_weights,
        runtime=runtime,
        signed_conv=args.signed_conv_weights,
    )
    notes = [*_chosen_mode(args), *result.notes, *_kept_float(result), *_unlabelled(args.evaluation, result)]
    data = _data(result, args.method, notes)
    if args.report is not None:
        _write_report(args.report, data, result, args.method, notes)
    emit(args, data, _lines(result, args.method, notes))
    return 0


async def _kit_runtime(args: argparse.Namespace) -> str | None:
    """The ONNX Runtime version the kit reports, live or last known; None if it reports none."""
    fleet = open_fleet(args)
    try:
        facts = await fleet.async_facts(fleet.inventory.resolve(args.kit))
    finally:
        fleet.close()
    runtime = facts.families.runtime
    return runtime.version if runtime is not None and runtime.available else None


def _check(args: argparse.Namespace, mode: str) -> None:
    """Refuse what the library would accept, or would only find wrong after minutes of work."""
    from app.fleet.images import image_files
    from app.fleet.models import manifest_path

    if mode == "static" and args.calibration is None:
        raise Error(
            "--mode static needs --calibration DIR (a few hundred typical input images); or use "
            "--mode dynamic, which needs none"
        )
    if args.max_images < 1 or args.runs < 1:
        raise Error("--max-images and --runs must be at least 1")
    if args.evaluation is not None:
        image_files(args.evaluation, "--eval folder")
    if args.report is not None:
        taken = {p.resolve() for p in (args.source, args.output, manifest_path(args.output))}
        if args.report.resolve() in taken or args.report.is_dir():
            raise Error(f"--report {args.report} would overwrite a model or manifest; give another file name")


def _input_size(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    match = _SIZE.fullmatch(text.strip())
    if match is None or not 1 <= int(match[1]) <= 8192 or not 1 <= int(match[2] or match[1]) <= 8192:
        raise Error(f"--input-size {text!r}: give height x width in pixels, e.g. 224x224 (1-8192)")
    return int(match[1]), int(match[2] or match[1])


def _chosen_mode(args: argparse.Namespace) -> list[str]:
    if args.mode is None and args.calibration is None:
        return [
            "dynamic mode (weights only): no --calibration given; static mode with calibration "
            "images is usually faster on CPUs with INT8 dot-product instructions"
        ]
    return []


def _kept_float(result: QuantizeResult) -> list[str]:
    kept = result.kept_float
    if not kept:
        return []
    shown = "; ".join(str(node) for node in kept[:8])
    more = f"; and {len(kept) - 8} more (see --json)" if len(kept) > 8 else ""
    return [f"{len(kept)} node(s) with weights stay FP32: {shown}{more}"]


def _unlabelled(folder: Path | None, result: QuantizeResult) -> list[str]:
    from app.fleet.images import listed_labels

    if folder is None or result.report.labelled:
        return []
    listed = " (labels.txt was found but its names match no sub-folder)" if listed_labels(folder) else ""
    return [
        f"no accuracy: {folder} has no labels{listed}; put each image in a sub-folder named after "
        "its label for a top-1 accuracy row"
    ]


def _data(result: QuantizeResult, method: str, notes: list[str]) -> dict[str, Any]:
    manifest = result.manifest
    return {
        "model": str(result.model),
        "mode": result.mode,
        "method": method if result.mode == "static" else None,
        "source_opset": result.source_opset,
        "opset": result.opset,
        "calibration_images": result.calibration_images,
        "weight_bits": result.weight_bits,
        "manifest": str(result.manifest_path) if result.manifest_path else None,
        "sha256": manifest.sha256 if manifest else None,
        "precision": result.precision,
        "kept_float": [dataclasses.asdict(node) for node in result.kept_float],
        "notes": notes,
        "report": result.report.to_dict(),
    }


def _summary(result: QuantizeResult, method: str) -> list[str]:
    how = {
        "static": f"static INT8, QDQ per-channel, {method} on {result.calibration_images} calibration images",
        "dynamic": "dynamic INT8, weights only",
        "fp16": "FP16, FP32 inputs and outputs",
    }[result.mode]
    lines = [f"wrote {result.model} ({how}; opset {result.source_opset} → {result.opset})"]
    if result.manifest is not None:
        lines.append(
            f"manifest {result.manifest_path}: {result.manifest.name} {result.manifest.version}, "
            f"sha256 {result.manifest.sha256[:16]}…"
        )
    return lines


def _lines(result: QuantizeResult, method: str, notes: list[str]) -> list[str]:
    from app.fleet.quantreport import table

    report = result.report
    return [
        *_summary(result, method),
        *(f"note: {note}" for note in notes),
        "",
        *table(report.rows()),
        report.footnote(),
        "",
        report.recommendation().text(),
    ]


def _write_report(
    path: Path, data: dict[str, Any], result: QuantizeResult, method: str, notes: list[str]
) -> None:
    suffix = path.suffix.lower()
    if suffix == ".json":
        text = json.dumps(data, indent=2) + "\n"
    elif suffix in (".md", ".markdown"):
        summary = [f"- {line}" for line in [*_summary(result, method), *notes]]
        title = f"# {result.report.label} vs FP32"
        text = "\n".join([title, "", *summary, "", result.report.to_markdown(), ""])
    else:
        text = "\n".join(_lines(result, method, notes)) + "\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise Error(f"cannot write the report to {path}: {exc.strerror}; the model was written") from None


HANDLERS: dict[str, Handler] = {"quantize": _quantize}
