"""FP32 against its INT8 (or FP16) copy on this machine, side by side: size, latency, agreement and
accuracy, and the recommendation those figures make (`agent.toolkit.quantadvice`).
Timing lives in `app.fleet.latency`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from agent.toolkit.quantadvice import Measured, Recommendation, recommend
from agent.wire import InputSpec, Manifest, Normalisation
from app.fleet.images import folder_labels, image_files, listed_labels, load_image
from app.fleet.latency import latencies, latency_ms, ms, percentiles, time_models
from app.fleet.onnxmodel import (
    QuantizeError,
    cpu_session,
    input_spec_of,
    manifest_beside,
    read_model,
    seeded_input,
)

__all__ = [
    "ModelFigures",
    "Report",
    "compare",
    "latency_ms",
    "percentiles",
    "table",
    "time_models",
    "times_faster",
]


@dataclass(frozen=True)
class ModelFigures:
    """One side of a comparison: batch-1 milliseconds with ONNX Runtime's default thread count and with
    one thread (`_1t`); accuracy is a fraction (0-1), None without labelled images."""

    path: Path
    precision: str
    size_bytes: int
    latency_ms_p50: float
    latency_ms_p95: float
    latency_1t_ms_p50: float
    latency_1t_ms_p95: float
    accuracy_top1: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "path": str(self.path)}


@dataclass(frozen=True)
class Report:
    """FP32 against its converted copy on this machine: size, latency and how often they agree.

    `int8` is the converted side, FP16 too (its `precision` says which)."""

    fp32: ModelFigures
    int8: ModelFigures
    images: int
    labelled: bool
    agreement_top1: float | None
    mean_abs_error: float
    runs: int

    @property
    def speed_ratio(self) -> float:
        """How many times faster INT8 runs (p50, default threads)."""
        return self.fp32.latency_ms_p50 / self.int8.latency_ms_p50

    @property
    def speed_ratio_1t(self) -> float:
        """How many times faster INT8 runs on one thread (p50)."""
        return self.fp32.latency_1t_ms_p50 / self.int8.latency_1t_ms_p50

    @property
    def size_ratio(self) -> float:
        """How many times smaller the INT8 file is."""
        return self.fp32.size_bytes / self.int8.size_bytes

    @property
    def label(self) -> str:
        """ "INT8" or "FP16": the converted side's name in the table."""
        return self.int8.precision.upper()

    def measured(self, where: str = "this laptop") -> Measured:
        """The figures the recommendation is made from."""
        return Measured(
            precision=self.int8.precision,
            speed_ratio=self.speed_ratio,
            size_ratio=self.size_ratio,
            agreement=self.agreement_top1,
            accuracy_delta_points=self.accuracy_delta_points,
            where=where,
        )

    def recommendation(self, where: str = "this laptop") -> Recommendation:
        """What to deploy, from these figures alone (the target kit is not known here)."""
        return recommend(self.measured(where))

    @property
    def accuracy_delta_points(self) -> float | None:
        """INT8 accuracy minus FP32 accuracy, in percentage points."""
        if self.fp32.accuracy_top1 is None or self.int8.accuracy_top1 is None:
            return None
        return 100 * (self.int8.accuracy_top1 - self.fp32.accuracy_top1)

    def to_dict(self) -> dict[str, Any]:
        return {
            "fp32": self.fp32.to_dict(),
            "int8": self.int8.to_dict(),
            "images": self.images,
            "labelled": self.labelled,
            "agreement_top1": self.agreement_top1,
            "mean_abs_error": self.mean_abs_error,
            "runs": self.runs,
            "speed_ratio": self.speed_ratio,
            "speed_ratio_1t": self.speed_ratio_1t,
            "size_ratio": self.size_ratio,
            "accuracy_delta_points": self.accuracy_delta_points,
            "recommendation": _recommendation_dict(self.recommendation()),
        }

    def rows(self) -> list[tuple[str, ...]]:
        """The side-by-side table: a header, then (what, FP32, INT8, INT8 vs FP32) per figure."""
        label = self.label
        rows = [
            ("", f"FP32 {self.fp32.path.name}", f"{label} {self.int8.path.name}", f"{label} vs FP32"),
            (
                "size",
                _megabytes(self.fp32.size_bytes),
                _megabytes(self.int8.size_bytes),
                _times(self.size_ratio, "smaller", "larger"),
            ),
            *self._latency_rows(),
        ]
        delta = self.accuracy_delta_points
        if delta is not None:
            rows.append(
                (
                    "top-1 accuracy",
                    _percent(self.fp32.accuracy_top1),
                    _percent(self.int8.accuracy_top1),
                    f"{delta:+.2f} points",
                )
            )
        if self.agreement_top1 is not None:
            rows.append(("top-1 agreement", "", "", _percent(self.agreement_top1)))
        rows.append((f"mean |{label} − FP32|", "", "", f"{self.mean_abs_error:.4g}"))
        return rows

    def footnote(self) -> str:
        labels = " with labels" if self.labelled else ""
        source = f"{self.images} images{labels}" if self.images else "a random input"
        return f"latency: batch 1, {self.runs} runs each on this machine; outputs compared on {source}"

    def to_text(self) -> str:
        return "\n".join([*table(self.rows()), self.footnote(), "", self.recommendation().text()])

    def to_markdown(self) -> str:
        header, *body = self.rows()
        lines = [
            _markdown_row(header),
            _markdown_row(("---",) * len(header)),
            *(_markdown_row(row) for row in body),
        ]
        return "\n".join([*lines, "", self.footnote(), "", f"**{self.recommendation().text()}**"])

    def _latency_rows(self) -> list[tuple[str, ...]]:
        a, b = self.fp32, self.int8
        timed = [
            ("p50 (default threads)", a.latency_ms_p50, b.latency_ms_p50),
            ("p95 (default threads)", a.latency_ms_p95, b.latency_ms_p95),
            ("p50 (1 thread)", a.latency_1t_ms_p50, b.latency_1t_ms_p50),
            ("p95 (1 thread)", a.latency_1t_ms_p95, b.latency_1t_ms_p95),
        ]
        return [
            (f"latency {what}", f"{x:.3f} ms", f"{y:.3f} ms", times_faster(x / y)) for what, x, y in timed
        ]


def _recommendation_dict(recommendation: Recommendation) -> dict[str, str]:
    return {"use": recommendation.use, "text": recommendation.text()}


def table(rows: Sequence[Sequence[str]]) -> list[str]:
    """Rows as left-aligned columns two spaces apart."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    ]


def _markdown_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def times_faster(ratio: float) -> str:
    """'2.10× faster' or '1.25× slower' for a time ratio (old / new)."""
    return _times(ratio, "faster", "slower")


def _times(ratio: float, better: str, worse: str) -> str:
    return f"{ratio:.2f}× {better}" if ratio >= 1 else f"{1 / ratio:.2f}× {worse}"


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.2f} MB"


def _percent(fraction: float | None) -> str:
    return "" if fraction is None else f"{100 * fraction:.2f} %"


def compare(
    fp32: Path,
    int8: Path,
    images: Path | None = None,
    labels: Sequence[str] | None = None,
    *,
    runs: int = 200,
    warmup: int = 20,
    input_spec: InputSpec | None = None,
    precision: str = "int8",
) -> Report:
    """Time both models on this machine (default threads and one thread) and compare their outputs.

    Outputs are compared on `images` (a seeded random input without). Accuracy needs a
    folder-per-label `images`; `labels` names the model's classes in score order (by default the
    manifest's labels, else the folder's labels.txt, else numeric folder names as class indices).
    `input_spec` describes the input when neither the manifest nor the model fixes its size.
    `precision` names the converted side ("int8" or "fp16").
    """
    sessions = (cpu_session(fp32), cpu_session(int8))
    manifest = manifest_beside(fp32) or manifest_beside(int8)
    spec = manifest.input if manifest else (input_spec or input_spec_of(read_model(fp32)))
    name = sessions[0].get_inputs()[0].name
    probe = seeded_input(sessions[0], spec.dtype if spec else "float32", 0, spec=spec)
    if images is None:
        outputs, truth = [[s.run(None, {name: probe})[0] for s in sessions]], None
    else:
        outputs, truth = _outputs_on(images, sessions, spec, manifest, labels)
    single = (cpu_session(fp32, threads=1), cpu_session(int8, threads=1))
    timings = list(
        zip(
            latencies(sessions, name, probe, runs, warmup),
            latencies(single, name, probe, runs, warmup),
            strict=True,
        )
    )
    return _report(
        (fp32, int8),
        timings,
        outputs,
        truth,
        runs,
        images=0 if images is None else len(outputs),
        precision=precision,
    )


def _outputs_on(
    folder: Path,
    sessions: Sequence[ort.InferenceSession],
    spec: InputSpec | None,
    manifest: Manifest | None,
    labels: Sequence[str] | None,
) -> tuple[list[list[np.ndarray]], list[int] | None]:
    """First outputs of each session per image in `folder`, and the images' class indices if known."""
    if spec is None:
        raise QuantizeError(
            "cannot feed images to this model: its input is not an image with fixed "
            "height and width, and no manifest beside it or input size describes one"
        )
    files = image_files(folder)
    names = list(labels or (manifest.labels if manifest else []) or listed_labels(folder))
    norm = manifest.normalisation if manifest else Normalisation()
    name = sessions[0].get_inputs()[0].name
    tensors = (load_image(path, spec, norm) for path in files)
    outputs = [[s.run(None, {name: tensor})[0] for s in sessions] for tensor in tensors]
    return outputs, folder_labels(folder, files, names)


def _report(
    paths: tuple[Path, Path],
    timings: Sequence[tuple[np.ndarray, np.ndarray]],
    outputs: list[list[np.ndarray]],
    truth: list[int] | None,
    runs: int,
    *,
    images: int,
    precision: str,
) -> Report:
    """`timings`: per model, milliseconds with default threads and with one thread."""
    reference, quantized = (np.stack([pair[i] for pair in outputs]).astype(np.float64) for i in (0, 1))
    top = (_top1(reference), _top1(quantized))
    sides = [
        ModelFigures(
            path=path,
            precision=precision,
            size_bytes=path.stat().st_size,
            latency_ms_p50=ms(default, 50),
            latency_ms_p95=ms(default, 95),
            latency_1t_ms_p50=ms(single, 50),
            latency_1t_ms_p95=ms(single, 95),
            accuracy_top1=_matching(best, truth) if images else None,
        )
        for path, precision, (default, single), best in zip(
            paths, ("fp32", precision), timings, top, strict=True
        )
    ]
    rows = (_per_row(reference), _per_row(quantized))
    agreement = _matching(rows[0], None if rows[1] is None else rows[1].tolist()) if images else None
    return Report(
        fp32=sides[0],
        int8=sides[1],
        images=images,
        labelled=sides[0].accuracy_top1 is not None,
        agreement_top1=agreement,
        mean_abs_error=float(np.mean(np.abs(reference - quantized))),
        runs=runs,
    )


def _top1(outputs: np.ndarray) -> np.ndarray | None:
    """Best class per image, when each image gave one row of class scores ([1, classes])."""
    if outputs.ndim != 3 or outputs.shape[1] != 1:
        return None
    best: np.ndarray = outputs.argmax(axis=-1).ravel()
    return best


def _per_row(outputs: np.ndarray) -> np.ndarray | None:
    """Best class of every row of scores per image: one row for a classifier, one per step for a
    sequence recogniser ([1, steps, classes], e.g. PP-OCR's CTC text-line model), whose answers
    change when any step's best class does."""
    if outputs.ndim < 3 or outputs.shape[1] != 1:
        return None
    best: np.ndarray = outputs.argmax(axis=-1).ravel()
    return best


def _matching(predicted: np.ndarray | None, expected: Sequence[int] | None) -> float | None:
    """The fraction of predictions equal to `expected`; None when either is unknown."""
    if predicted is None or expected is None:
        return None
    return float(np.mean(predicted == np.asarray(expected)))
