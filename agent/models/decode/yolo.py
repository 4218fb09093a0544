"""YOLOv5-style detectors: one output [N, boxes, 5 + classes] of (cx, cy, w, h) in input pixels,
objectness and class scores (sigmoid already applied, as YOLOv5's export does)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from agent.models.decode.boxes import finish
from agent.models.decode.shapes import Shape, first, known, mismatch
from agent.toolkit.images import Placement
from agent.wire import Detection, DetectionSpec, Manifest

__all__ = ["check", "decode", "decode_rows", "per_image"]


def check(shapes: Mapping[str, Shape], manifest: Manifest) -> None:
    name, shape = first(shapes)
    count = len(manifest.labels)
    width = known(shape[2]) if len(shape) == 3 else None
    wrong = len(shape) != 3 or (width is not None and (width < 5 or (count and width != 5 + count)))
    if wrong:
        raise mismatch(
            "a YOLOv5-style detector (format yolo)", f"[N, boxes, 5 + {count or 'classes'}]", {name: shape}
        )


def decode(
    outputs: Mapping[str, np.ndarray], manifest: Manifest, placements: Sequence[Placement]
) -> list[list[Detection]]:
    check({name: value.shape for name, value in outputs.items()}, manifest)
    spec = manifest.detection or DetectionSpec()
    rows = np.asarray(next(iter(outputs.values()))[: len(placements)], dtype=np.float64)
    return decode_rows(rows, spec, manifest.labels, placements)


def decode_rows(
    rows: np.ndarray, spec: DetectionSpec, labels: Sequence[str], placements: Sequence[Placement]
) -> list[list[Detection]]:
    """Detections of each image of [images, boxes, 5 + classes] rows."""
    classes, scores = _scored(rows)
    return per_image(rows, scores, classes, spec, labels, placements)


def per_image(
    rows: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray,
    spec: DetectionSpec,
    labels: Sequence[str],
    placements: Sequence[Placement],
) -> list[list[Detection]]:
    """For rows [images, boxes, >= 4] starting (cx, cy, w, h) with each box's score and class:
    the boxes over the threshold, suppressed per class. Scoring ran once for the whole batch."""
    wanted = scores >= spec.score_threshold  # NaN compares False, so broken rows drop out here
    found = []
    for index, placement in enumerate(placements):
        picked = np.flatnonzero(wanted[index])
        found.append(
            finish(
                rows[index, picked, :4],
                scores[index, picked],
                classes[index, picked],
                spec,
                labels,
                placement,
                centres=True,
            )
        )
    return found


def _scored(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's class (its best class score) and score (objectness × that class score)."""
    class_scores = rows[..., 5:] if rows.shape[-1] > 5 else np.ones((*rows.shape[:-1], 1))
    classes = class_scores.argmax(axis=-1)
    scores: np.ndarray = rows[..., 4] * np.take_along_axis(class_scores, classes[..., None], axis=-1)[..., 0]
    return classes, scores
