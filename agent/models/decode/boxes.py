"""What every detector family ends with: per-class NMS (when the model has none inside), best
first, capped, and boxes mapped from the model input's pixels back to the image's."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from agent.toolkit.images import Placement
from agent.wire import Detection, DetectionSpec

__all__ = ["SMALL", "finish", "label", "nms"]

SMALL = 64  # up to this many candidates, plain Python is quicker than numpy's calls


def label(labels: Sequence[str], index: int) -> str:
    return labels[index] if 0 <= index < len(labels) else str(index)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression on (x1, y1, x2, y2) boxes: kept indices, best first."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    order = np.argsort(-np.asarray(scores), kind="stable")
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(best)
        order = rest[_iou(boxes[best], areas[best], boxes[rest], areas[rest]) <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def _iou(box: np.ndarray, area: float, others: np.ndarray, other_areas: np.ndarray) -> np.ndarray:
    width = np.clip(np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]), 0, None)
    height = np.clip(np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]), 0, None)
    overlap = width * height
    union = area + other_areas - overlap
    result: np.ndarray = np.where(union > 0, overlap / np.where(union > 0, union, 1), 0.0)
    return result


def finish(
    boxes: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray,
    spec: DetectionSpec,
    labels: Sequence[str],
    placement: Placement,
    *,
    centres: bool = False,
    suppress: bool = True,
) -> list[Detection]:
    """Detections from candidates already over the threshold: boxes [K, 4] in input pixels,
    corners (x1, y1, x2, y2) or, `centres`, (cx, cy, w, h). `suppress` runs NMS within each
    class (a person may stand in front of a car), as Ultralytics does by default."""
    if len(scores) <= SMALL and np.isfinite(boxes).all():
        return _finish_small(
            boxes.tolist(), scores.tolist(), classes.tolist(), spec, labels, placement, centres, suppress
        )
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    finite = np.isfinite(boxes).all(axis=1)  # a NaN or infinite box has nowhere to be drawn
    boxes, scores, classes = boxes[finite], np.asarray(scores)[finite], np.asarray(classes)[finite]
    if centres:
        boxes = np.concatenate([boxes[:, :2] - boxes[:, 2:] / 2, boxes[:, :2] + boxes[:, 2:] / 2], axis=1)
    if suppress:
        keep = _per_class_nms(boxes, scores, classes, spec.iou_threshold)
    else:
        keep = np.argsort(-scores, kind="stable")
    keep = keep[: spec.max_detections]
    placed = _place(boxes[keep], placement)
    return [
        Detection(label=label(labels, int(c)), index=int(c), score=float(s), box=(b[0], b[1], b[2], b[3]))
        for b, s, c in zip(placed.tolist(), scores[keep], classes[keep], strict=True)
    ]


def _place(boxes: np.ndarray, placement: Placement) -> np.ndarray:
    scale_x, scale_y, pad_x, pad_y, width, height = placement
    shift = np.array([pad_x, pad_y, pad_x, pad_y])
    scale = np.array([scale_x, scale_y, scale_x, scale_y])
    placed: np.ndarray = np.clip((boxes - shift) * scale, 0, [width, height, width, height])
    return placed


def _per_class_nms(
    boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou_threshold: float
) -> np.ndarray:
    kept = [
        np.flatnonzero(classes == c)[nms(boxes[classes == c], scores[classes == c], iou_threshold)]
        for c in np.unique(classes)
    ]
    merged = np.concatenate(kept) if kept else np.zeros(0, dtype=np.int64)
    return merged[np.argsort(-scores[merged], kind="stable")]


_Box = tuple[float, float, float, float]


def _finish_small(
    rows: list[list[float]],
    scores: list[float],
    classes: list[int],
    spec: DetectionSpec,
    labels: Sequence[str],
    placement: Placement,
    centres: bool,
    suppress: bool,
) -> list[Detection]:
    """`finish` in plain Python for a few finite candidates: the same arithmetic in the same
    order, so the same answers (~0.02 ms an image against ~0.1 with numpy's calls)."""
    if centres:
        boxes = [(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2) for cx, cy, w, h in rows]
    else:
        boxes = [(x1, y1, x2, y2) for x1, y1, x2, y2 in rows]
    kept: list[int] = []
    if suppress:
        for group in sorted(set(classes)):
            members = sorted((i for i in range(len(boxes)) if classes[i] == group), key=lambda i: -scores[i])
            kept += _nms_small(boxes, members, spec.iou_threshold)
    else:
        kept = list(range(len(boxes)))
    kept.sort(key=lambda i: -scores[i])
    scale_x, scale_y, pad_x, pad_y, width, height = placement
    return [
        Detection(
            label=label(labels, classes[i]),
            index=classes[i],
            score=scores[i],
            box=(
                min(max((x1 - pad_x) * scale_x, 0.0), width),
                min(max((y1 - pad_y) * scale_y, 0.0), height),
                min(max((x2 - pad_x) * scale_x, 0.0), width),
                min(max((y2 - pad_y) * scale_y, 0.0), height),
            ),
        )
        for i in kept[: spec.max_detections]
        for x1, y1, x2, y2 in [boxes[i]]
    ]


def _nms_small(boxes: list[_Box], order: list[int], iou_threshold: float) -> list[int]:
    """`nms` over `order` (best first) in plain Python."""
    keep: list[int] = []
    while order:
        best, order = order[0], order[1:]
        keep.append(best)
        order = [i for i in order if _iou_small(boxes[best], boxes[i]) <= iou_threshold]
    return keep


def _iou_small(a: _Box, b: _Box) -> float:
    width = max(min(a[2], b[2]) - max(a[0], b[0]), 0.0)
    height = max(min(a[3], b[3]) - max(a[1], b[1]), 0.0)
    overlap = width * height
    union = _area_small(a) + _area_small(b) - overlap
    return overlap / union if union > 0 else 0.0


def _area_small(box: _Box) -> float:
    return max(box[2] - box[0], 0.0) * max(box[3] - box[1], 0.0)
