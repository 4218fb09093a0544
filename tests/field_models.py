"""The field-style models in tests/data/field_models/ (made by packaging/models/make_field_models.py):
a hand-written manifest for each, and a reference pipeline written from each exporter's documented
layout, independently of kitfleet's decoders (plain numpy; Ultralytics' letterbox and
`scale_boxes` arithmetic, TF's normalised yxyx, EfficientNMS's num_dets), to check kitfleet against.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from agent.toolkit.hashing import sha256_file
from agent.wire import Manifest

__all__ = [
    "FAMILIES",
    "FIELD",
    "SCENES",
    "Box",
    "agreement",
    "field_manifest",
    "reference",
]

FIELD = Path(__file__).parent / "data" / "field_models"
SCENES = ("scene-a.png", "scene-b.png")
COLOURS = ["red", "green", "blue"]
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


@dataclass(frozen=True)
class Box:
    """One reference answer: class index, score, and (x1, y1, x2, y2) in the picture's pixels
    (a classifier's answers have no box)."""

    index: int
    score: float
    box: tuple[float, float, float, float] | None


def _input(
    name: str, size: int, layout: str = "NCHW", dtype: str = "float32", letterbox: bool = True
) -> dict[str, Any]:
    return {
        "name": name,
        "layout": layout,
        "height": size,
        "width": size,
        "dtype": dtype,
        "letterbox": letterbox,
    }


_DETECTORS = {
    "yolov8-det": (_input("images", 320), {"format": "yolov8", "iou_threshold": 0.7, "max_detections": 300}),
    "yolov5-det": (_input("images", 256), {"format": "yolo", "iou_threshold": 0.45}),
    "end2end-det": (_input("images", 320), {"format": "end2end"}),
    "efficientnms-det": (
        _input("images", 256),
        {
            "format": "end2end",
            "outputs": {
                "count": "num_dets",
                "boxes": "det_boxes",
                "scores": "det_scores",
                "classes": "det_classes",
            },
        },
    ),
    "ssd-tf": (
        _input("image_tensor:0", 160, "NHWC", "uint8", letterbox=False),
        {
            "format": "ssd",
            "outputs": {
                "boxes": "detection_boxes:0",
                "scores": "detection_scores:0",
                "classes": "detection_classes:0",
                "count": "num_detections:0",
            },
            "box_order": "yxyx",
            "normalised_boxes": True,
            "class_offset": 1,
            "score_threshold": 0.5,
        },
    ),
}
FAMILIES = (*_DETECTORS, "classifier-tv", "classifier-probs")


def field_manifest(family: str, model: Path | None = None, **changes: Any) -> Manifest:
    """The manifest a technician would write for `family`'s model file (default: the committed one)."""
    path = model or FIELD / f"{family}.onnx"
    fields: dict[str, Any] = {
        "name": family,
        "version": "1",
        "sha256": sha256_file(path),
        "size_bytes": path.stat().st_size,
        "source_model": f"tests/data/field_models/{family}.onnx",
    }
    if family in _DETECTORS:
        spec, detection = _DETECTORS[family]
        fields.update(task="detection", input=spec, labels=COLOURS, detection=detection)
    elif family == "classifier-tv":
        fields.update(
            task="classification",
            input=_input("input", 224, letterbox=False),
            normalisation={"scale": 1 / 255, "mean": IMAGENET_MEAN, "std": IMAGENET_STD},
            labels=[*COLOURS, "grey"],
            scores="logits",
        )
    else:
        fields.update(
            task="classification",
            input=_input("input_1", 96, "NHWC", letterbox=False),
            labels=[*COLOURS, "grey"],
            scores="probabilities",
        )
    fields.update(changes)
    return Manifest.model_validate(fields)


# --- the reference pipeline -------------------------------------------------------------------


def reference(
    family: str, session: Any, image: Image.Image, top_k: int = 5, thresholds: Manifest | None = None
) -> list[Box]:
    """What the exporter's own pipeline answers for `image` (RGB), best first, at the score and
    IoU thresholds of `thresholds` (default: the hand-written manifest's)."""
    if family.startswith("classifier"):
        return _classify(family, session, image, top_k)
    manifest = thresholds or field_manifest(family)
    size = manifest.input.height
    if family == "ssd-tf":
        return _ssd(session, image, size, manifest.detection.score_threshold if manifest.detection else 0.5)
    canvas, gain, pad = _letterbox(image, size)
    tensor = (canvas.astype(np.float32) / 255).transpose(2, 0, 1)[None]
    outputs = session.run(None, {"images": tensor})
    assert manifest.detection is not None
    threshold, iou = manifest.detection.score_threshold, manifest.detection.iou_threshold
    if family == "yolov8-det":
        rows = _nms(*_yolov8(outputs[0][0], threshold), iou)
    elif family == "yolov5-det":
        rows = _nms(*_yolov5(outputs[0][0], threshold), iou)
    elif family == "end2end-det":
        detections = outputs[0][0]
        keep = detections[:, 4] > threshold
        rows = detections[keep][:, :4], detections[keep][:, 4], detections[keep][:, 5].astype(int)
    else:
        count, boxes, scores, classes = (o[0] for o in outputs)
        n = int(count[0])
        keep = scores[:n] > threshold
        rows = boxes[:n][keep], scores[:n][keep], classes[:n][keep].astype(int)
    return _scaled(*rows, gain, pad, image.size)


def _letterbox(image: Image.Image, size: int) -> tuple[np.ndarray, float, tuple[int, int]]:
    """Ultralytics' LetterBox(new_shape=(size, size), auto=False): one gain, grey 114 bars,
    `round(d - 0.1)` on the top/left side."""
    width, height = image.size
    gain = min(size / height, size / width)
    new_width, new_height = round(width * gain), round(height * gain)
    dw, dh = (size - new_width) / 2, (size - new_height) / 2
    top, left = round(dh - 0.1), round(dw - 0.1)
    canvas = np.full((size, size, 3), 114, np.uint8)
    resized = np.asarray(image.convert("RGB").resize((new_width, new_height), Image.Resampling.BILINEAR))
    canvas[top : top + new_height, left : left + new_width] = resized
    return canvas, gain, (left, top)


def _xywh2xyxy(boxes: np.ndarray) -> np.ndarray:
    out: np.ndarray = boxes.copy()
    out[:, 0], out[:, 1] = boxes[:, 0] - boxes[:, 2] / 2, boxes[:, 1] - boxes[:, 3] / 2
    out[:, 2], out[:, 3] = boxes[:, 0] + boxes[:, 2] / 2, boxes[:, 1] + boxes[:, 3] / 2
    return out


def _yolov8(output: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ultralytics' non_max_suppression front half: [4 + C, A] → candidates over `conf`."""
    rows = output.T
    scores, classes = rows[:, 4:].max(1), rows[:, 4:].argmax(1)
    keep = scores > threshold
    return _xywh2xyxy(rows[keep, :4]), scores[keep], classes[keep]


def _yolov5(output: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """YOLOv5's non_max_suppression front half: objectness first, then obj × class."""
    rows = output[output[:, 4] > threshold].copy()
    rows[:, 5:] *= rows[:, 4:5]
    scores, classes = rows[:, 5:].max(1), rows[:, 5:].argmax(1)
    keep = scores > threshold
    return _xywh2xyxy(rows[keep, :4]), scores[keep], classes[keep]


def _nms(
    boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Class-aware NMS the Ultralytics way: boxes shifted by class × 7680 so classes never overlap."""
    shifted = boxes + classes[:, None] * 7680.0
    order = list(np.argsort(-scores))
    keep = []
    while order:
        best = order.pop(0)
        keep.append(best)
        order = [i for i in order if _iou(shifted[best], shifted[i]) <= iou]
    return boxes[keep], scores[keep], classes[keep]


def _iou(a: np.ndarray | tuple[float, ...], b: np.ndarray | tuple[float, ...]) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    overlap = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - overlap
    return float(overlap / union) if union > 0 else 0.0


def _scaled(
    boxes: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray,
    gain: float,
    pad: tuple[int, int],
    size: tuple[int, int],
) -> list[Box]:
    """Ultralytics' scale_boxes: remove the pad, divide by the gain, clip to the picture."""
    placed = (boxes - [pad[0], pad[1], pad[0], pad[1]]) / gain
    placed = np.clip(placed, 0, [size[0], size[1], size[0], size[1]])
    found = [
        Box(int(c), float(s), (b[0], b[1], b[2], b[3]))
        for b, s, c in zip(placed.tolist(), scores, classes, strict=True)
    ]
    return sorted(found, key=lambda box: -box.score)


def _ssd(session: Any, image: Image.Image, size: int, threshold: float) -> list[Box]:
    """TF's SSD: a plain resize; boxes normalised ymin xmin ymax xmax, so they scale straight to
    the picture; classes 1-based."""
    pixels = np.asarray(image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR))[None]
    boxes, scores, classes, count = (o[0] for o in session.run(None, {"image_tensor:0": pixels}))
    width, height = image.size
    found = []
    for i in range(int(count)):
        if scores[i] >= threshold:
            ymin, xmin, ymax, xmax = boxes[i].tolist()
            found.append(
                Box(
                    int(classes[i]) - 1,
                    float(scores[i]),
                    (xmin * width, ymin * height, xmax * width, ymax * height),
                )
            )
    return sorted(found, key=lambda box: -box.score)


def _classify(family: str, session: Any, image: Image.Image, top_k: int) -> list[Box]:
    """torchvision's transform (resize, ToTensor, Normalize) or Keras' x/255 NHWC; softmax on logits."""
    size = 224 if family == "classifier-tv" else 96
    unit = np.asarray(image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR), np.float32) / 255
    if family == "classifier-tv":
        tensor = ((unit - IMAGENET_MEAN) / IMAGENET_STD).astype(np.float32).transpose(2, 0, 1)[None]
        logits = session.run(None, {"input": tensor})[0][0].astype(np.float64)
        probabilities = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    else:
        probabilities = session.run(None, {"input_1": unit[None]})[0][0]
    best = np.argsort(-probabilities)[:top_k]
    return [Box(int(i), float(probabilities[i]), None) for i in best]


def agreement(ours: list[Box], theirs: list[Box], iou: float = 0.99, score_tolerance: float = 1e-3) -> float:
    """The share of the reference's answers that ours match (same class, score within tolerance,
    box IoU >= `iou`), one to one; 1.0 also needs ours to have no extra answers."""
    if not ours and not theirs:
        return 1.0
    unused = list(ours)
    matched = 0
    for want in theirs:
        for got in unused:
            same_box = want.box is None or (got.box is not None and _iou(got.box, want.box) >= iou)
            if got.index == want.index and abs(got.score - want.score) <= score_tolerance and same_box:
                unused.remove(got)
                matched += 1
                break
    return matched / max(len(theirs), len(ours))
