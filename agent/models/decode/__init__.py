"""Model outputs into answers, one module per output family (the manifest's task and
`detection.format`): `classify` (top-k from logits or probabilities), `yolo` (YOLOv5-style),
`yolov8` (YOLOv8/YOLO11-style), `end2end` (NMS inside the model) and `ssd`.

Every family checks the outputs' shapes first and refuses (`Invalid` output_mismatch, naming
what it expected and what it found) rather than decoding garbage or failing inside numpy; the
same check runs at install on the file's declared shapes (`agent/models/verify.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from agent.models.decode import classify, end2end, ssd, yolo, yolov8
from agent.models.decode.shapes import Shape
from agent.toolkit.images import Placement
from agent.wire import Classification, Detection, DetectionSpec, Manifest

__all__ = ["Shape", "check_outputs", "classes", "detections"]

_Decoder = Callable[[Mapping[str, np.ndarray], Manifest, Sequence[Placement]], list[list[Detection]]]
_Checker = Callable[[Mapping[str, Shape], Manifest], None]
_DECODERS: dict[str, _Decoder] = {
    "yolo": yolo.decode,
    "yolov8": yolov8.decode,
    "end2end": end2end.decode,
    "ssd": ssd.decode,
}
_CHECKERS: dict[str, _Checker] = {
    "yolo": yolo.check,
    "yolov8": yolov8.check,
    "end2end": end2end.check,
    "ssd": ssd.check,
}


def _format(manifest: Manifest) -> str:
    return (manifest.detection or DetectionSpec()).format


def detections(
    manifest: Manifest, outputs: Mapping[str, np.ndarray], placements: Sequence[Placement]
) -> list[list[Detection]]:
    """Each image's detections, boxes in its own pixels. Refuses outputs of another shape."""
    return _DECODERS[_format(manifest)](outputs, manifest, placements)


def classes(
    manifest: Manifest, outputs: Mapping[str, np.ndarray], count: int, k: int
) -> list[list[Classification]]:
    """The k best classes of each of `count` images. Refuses outputs of another shape."""
    return classify.classes(manifest, outputs, count, k)


def check_outputs(manifest: Manifest, shapes: Mapping[str, Shape]) -> None:
    """Refuse (Invalid) output shapes that contradict the manifest's task and family."""
    if manifest.task == "classification":
        classify.check(shapes, manifest)
    elif manifest.task == "detection":
        _CHECKERS[_format(manifest)](shapes, manifest)
