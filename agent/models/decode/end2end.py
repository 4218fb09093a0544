"""Detectors with NMS inside the model, so only a threshold is left to apply:

- `end2end`: one output [N, K, 6] (x1, y1, x2, y2, score, class), as Ultralytics' NMS-free
  exports (YOLOv10, YOLO26) write it; or separate outputs (EfficientNMS's num_dets, det_boxes,
  det_scores, det_classes; torchvision's boxes, scores, labels).
- `ssd`: separate boxes [N, K, 4], scores [N, K], classes [N, K] and count [N], as TF's Object
  Detection API exports write them (normalised ymin, xmin, ymax, xmax; class 0 is background,
  so `class_offset` 1): the split form with the manifest's box conventions.

Outputs are told apart by the manifest's `detection.outputs` (role -> output name), else by
their names (box, score/conf, class/label, num/count).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from agent.models.decode.boxes import finish
from agent.models.decode.shapes import Shape, describe, first, known, mismatch
from agent.toolkit.images import Placement
from agent.wire import Detection, DetectionSpec, Manifest

__all__ = ["check", "check_split", "decode", "decode_split", "roles"]

_WORDS = {
    "boxes": ("box",),
    "scores": ("score", "conf"),
    "classes": ("class", "label"),
    "count": ("num", "count"),
}
_NEEDED = ("boxes", "scores", "classes")
_SPLIT = "boxes [N, K, 4], scores [N, K], classes [N, K] (and optionally count [N])"


def _spec(manifest: Manifest) -> DetectionSpec:
    return manifest.detection or DetectionSpec()


def _is_split(spec: DetectionSpec, names: Sequence[str]) -> bool:
    return bool(spec.outputs) or len(names) > 1


def roles(spec: DetectionSpec, shapes: Mapping[str, Shape], family: str) -> dict[str, str]:
    """Role -> output name: the manifest's, else guessed from the names; refused when one of
    boxes, scores, classes is missing or names no output of the model."""
    if spec.outputs:
        named = dict(spec.outputs)
    else:
        named = {}
        for role, words in _WORDS.items():
            matches = [name for name in shapes if any(word in name.lower() for word in words)]
            if len(matches) == 1:
                named[role] = matches[0]
    missing = [role for role in _NEEDED if named.get(role) not in shapes]
    absent = [name for name in named.values() if name not in shapes]
    if missing or absent:
        expected = f"{_SPLIT}, named in the manifest's detection.outputs"
        raise mismatch(family, expected, f"{describe(shapes)} (no output for {', '.join(missing or absent)})")
    return named


def check(shapes: Mapping[str, Shape], manifest: Manifest) -> None:
    spec = _spec(manifest)
    if _is_split(spec, list(shapes)):
        check_split(shapes, manifest, "an end-to-end detector (format end2end)")
        return
    name, shape = first(shapes)
    if len(shape) != 3 or known(shape[2]) not in (6, None):
        raise mismatch(
            "an end-to-end detector (format end2end)",
            f"[N, K, 6] (x1, y1, x2, y2, score, class), or {_SPLIT}",
            {name: shape},
        )


def check_split(
    shapes: Mapping[str, Shape], manifest: Manifest, family: str = "an SSD-style detector (format ssd)"
) -> None:
    named = roles(_spec(manifest), shapes, family)
    boxes = shapes[named["boxes"]]
    wrong = len(boxes) != 3 or known(boxes[2]) not in (4, None)
    for role in ("scores", "classes"):
        shape = shapes[named[role]]
        wrong |= not (len(shape) == 2 or (len(shape) == 3 and known(shape[2]) in (1, None)))
    if "count" in named:
        count = shapes[named["count"]]
        wrong |= not (len(count) == 1 or (len(count) == 2 and known(count[1]) in (1, None)))
    if wrong:
        found = {f"{role} ({name})": shapes[name] for role, name in named.items()}
        raise mismatch(family, _SPLIT, found)


def decode(
    outputs: Mapping[str, np.ndarray], manifest: Manifest, placements: Sequence[Placement]
) -> list[list[Detection]]:
    spec = _spec(manifest)
    if _is_split(spec, list(outputs)):
        return decode_split(outputs, manifest, placements, "an end-to-end detector (format end2end)")
    check({name: value.shape for name, value in outputs.items()}, manifest)
    rows = np.asarray(next(iter(outputs.values())), dtype=np.float64)
    return [
        _kept(rows[i, :, :4], rows[i, :, 4], rows[i, :, 5], manifest, placement)
        for i, placement in enumerate(placements)
    ]


def decode_split(
    outputs: Mapping[str, np.ndarray],
    manifest: Manifest,
    placements: Sequence[Placement],
    family: str = "an SSD-style detector (format ssd)",
) -> list[list[Detection]]:
    shapes = {name: value.shape for name, value in outputs.items()}
    check_split(shapes, manifest, family)
    named = roles(_spec(manifest), shapes, family)
    boxes = np.asarray(outputs[named["boxes"]], dtype=np.float64)
    scores = np.asarray(outputs[named["scores"]], dtype=np.float64).reshape(len(boxes), -1)
    classes = np.asarray(outputs[named["classes"]], dtype=np.float64).reshape(len(boxes), -1)
    counts = outputs[named["count"]].reshape(len(boxes), -1)[:, 0] if "count" in named else None
    found = []
    for i, placement in enumerate(placements):
        valid = len(boxes[i]) if counts is None else int(np.clip(np.nan_to_num(counts[i]), 0, len(boxes[i])))
        found.append(_kept(boxes[i, :valid], scores[i, :valid], classes[i, :valid], manifest, placement))
    return found


def _kept(
    boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, manifest: Manifest, placement: Placement
) -> list[Detection]:
    """One image's rows over the threshold, as the manifest's conventions say, best first."""
    spec = _spec(manifest)
    indices = np.rint(np.nan_to_num(classes, nan=-1.0)).astype(np.int64) - spec.class_offset
    if spec.box_order == "yxyx":
        boxes = boxes[:, [1, 0, 3, 2]]
    if spec.normalised_boxes:
        width, height = manifest.input.width, manifest.input.height
        boxes = boxes * np.array([width, height, width, height], dtype=np.float64)
    wanted = (scores >= spec.score_threshold) & (indices >= 0)  # NaN scores compare False
    return finish(
        boxes[wanted], scores[wanted], indices[wanted], spec, manifest.labels, placement, suppress=False
    )
