"""YOLOv8/YOLO11-style detectors (Ultralytics' detect export): one output [N, 4 + classes, boxes],
(cx, cy, w, h) in input pixels then class scores, no objectness. As Ultralytics'
`non_max_suppression` by default: the score is the best class score, one class per box, NMS
within each class."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from agent.models.decode.shapes import Shape, first, known, mismatch
from agent.models.decode.yolo import per_image
from agent.toolkit.images import Placement
from agent.wire import Detection, DetectionSpec, Manifest

__all__ = ["check", "decode"]


def check(shapes: Mapping[str, Shape], manifest: Manifest) -> None:
    name, shape = first(shapes)
    count = len(manifest.labels)
    height = known(shape[1]) if len(shape) == 3 else None
    wrong = len(shape) != 3 or (height is not None and (height < 5 or (count and height != 4 + count)))
    if wrong:
        raise mismatch(
            "a YOLOv8-style detector (format yolov8)", f"[N, 4 + {count or 'classes'}, boxes]", {name: shape}
        )


def decode(
    outputs: Mapping[str, np.ndarray], manifest: Manifest, placements: Sequence[Placement]
) -> list[list[Detection]]:
    check({name: value.shape for name, value in outputs.items()}, manifest)
    spec = manifest.detection or DetectionSpec()
    raw = next(iter(outputs.values()))[: len(placements)]
    rows = np.asarray(raw, dtype=np.float64).transpose(0, 2, 1)  # [images, boxes, 4 + classes]
    class_scores = rows[..., 4:]
    classes = class_scores.argmax(axis=-1)
    scores = np.take_along_axis(class_scores, classes[..., None], axis=-1)[..., 0]
    return per_image(rows, scores, classes, spec, manifest.labels, placements)
