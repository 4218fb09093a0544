"""The output family, from the output shapes (and what Ultralytics writes as `task`).

Each family the outputs fit is a candidate, most likely first; a task the technician forces
picks the first candidate of that task, or is refused saying what layout it needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from agent.wire import DetectionSpec, Task
from app.fleet.inspection.facts import Facts, InspectionError, Tensor

__all__ = ["EXPECTED", "Family", "candidates", "choose_family"]

Scores = Literal["auto", "logits", "probabilities"]

EXPECTED: dict[str, str] = {
    "classification": "one output [N, classes]",
    "detection": "a detector's outputs: [N, boxes, 5 + classes] (YOLOv5), [N, 4 + classes, boxes] "
    "(YOLOv8/YOLO11), [N, K, 6] or boxes/scores/classes (NMS inside), or "
    "boxes/scores/classes/count (SSD)",
}
_END2END_MAX = 1000  # an NMS-inside export keeps at most a few hundred boxes; YOLOv5 has thousands
_ULTRALYTICS_UNDECODED = ("segment", "pose", "obb")


@dataclass(frozen=True)
class Family:
    task: Task
    why: str
    detection: DetectionSpec | None = None
    classes: int | None = None  # how many classes the outputs score, when the shape says
    scores: Scores = "auto"

    @property
    def name(self) -> str:
        return self.detection.format if self.detection else self.task


def choose_family(facts: Facts, task: Task | None) -> Family:
    found = candidates(facts)
    if task == "raw":
        return Family("raw", "as given (--task raw): the kit answers the outputs as they are")
    if task is not None:
        forced = next((f for f in found if f.task == task), None)
        if forced is None:
            raise InspectionError(
                f"--task {task} does not fit {facts.path.name}: expected {EXPECTED[task]}; found "
                f"{_outputs_text(facts)}. Leave --task out to use what the outputs say"
                + (f" ({found[0].name})" if found else "")
            )
        return forced
    if found:
        return found[0]
    return Family("raw", _raw_hint(facts))


def candidates(facts: Facts) -> list[Family]:
    """Every family the outputs fit, the likeliest first."""
    hint = facts.metadata.get("task", "") if facts.ultralytics else ""
    if hint in _ULTRALYTICS_UNDECODED:
        return []
    outputs = facts.outputs
    found = _single(facts, outputs[0]) if len(outputs) == 1 else _separate(outputs)
    if hint == "detect":  # Ultralytics says detect: its own layouts first
        found.sort(key=lambda f: f.name not in ("yolov8", "end2end"))
    elif hint == "classify":
        found.sort(key=lambda f: f.task != "classification")
    return found


def _single(facts: Facts, out: Tensor) -> list[Family]:
    dims = out.dims
    if len(dims) == 2 and (dims[1] is None or dims[1] >= 2):
        return [
            Family(
                "classification", f"{out.describe()}: one score per class", None, dims[1], _scores(facts, out)
            )
        ]
    if len(dims) != 3 or _per_step(facts, out):
        return []
    rows, cols = dims[1], dims[2]
    found: list[Family] = []
    if cols == 6 and (rows is None or rows <= _END2END_MAX):
        found.append(_end2end_one(out))
    if rows is not None and rows >= 5 and (cols is None or cols > rows):
        why = f"{out.describe()}: 4 box values + {rows - 4} class scores per box, boxes last (no objectness)"
        # Ultralytics' own predict settings: IoU 0.7, up to 300 boxes
        spec = DetectionSpec(format="yolov8", iou_threshold=0.7, max_detections=300)
        found.append(Family("detection", why, spec, rows - 4))
    if cols is not None and cols >= 6 and (rows is None or rows > cols):
        why = f"{out.describe()}: 4 box values + objectness + {cols - 5} class scores per box"
        found.append(Family("detection", why, DetectionSpec(format="yolo"), cols - 5))
    if cols == 6 and rows is not None and rows > _END2END_MAX:
        found.append(_end2end_one(out))
    return found


def _end2end_one(out: Tensor) -> Family:
    why = f"{out.describe()}: x1, y1, x2, y2, score, class per kept box (NMS inside the model)"
    return Family("detection", why, DetectionSpec(format="end2end"))


def _separate(outputs: tuple[Tensor, ...]) -> list[Family]:
    """boxes [N, K, 4] + scores [N, K] + classes [N, K] (+ count [N]): NMS inside, or SSD."""
    boxes = [o for o in outputs if len(o.dims) == 3 and o.dims[2] == 4]
    per_box = [o for o in outputs if len(o.dims) == 2 and o not in boxes]
    counts = [o for o in outputs if len(o.dims) == 1]
    if len(boxes) != 1 or len(outputs) not in (3, 4):
        return []
    if len(outputs) == 4 and not counts and len(per_box) == 3:  # count as [N, 1]
        counts = [o for o in per_box if o.dims[1] == 1]
        per_box = [o for o in per_box if o.dims[1] != 1]
    if len(per_box) != 2 or len(counts) != len(outputs) - 3:
        return []
    scores, classes = _scores_and_classes(per_box)
    roles = {"boxes": boxes[0].name, "scores": scores.name, "classes": classes.name}
    tf_style = "detection_boxes" in boxes[0].name  # TensorFlow's detection API: yxyx, 0-1, class 1 first
    extra: dict[str, Any] = (
        {"box_order": "yxyx", "normalised_boxes": True, "class_offset": 1} if tf_style else {}
    )
    listed = ", ".join(o.describe() for o in outputs)
    if counts and not tf_style and counts[0].name.lower().startswith("num_det"):  # TensorRT EfficientNMS
        spec = DetectionSpec.model_validate(
            {"format": "end2end", "outputs": {**roles, "count": counts[0].name}}
        )
        return [Family("detection", f"{listed}: count, boxes, scores and classes (EfficientNMS-style)", spec)]
    if counts:
        spec = DetectionSpec.model_validate(
            {"format": "ssd", "outputs": {**roles, "count": counts[0].name}, **extra}
        )
        return [Family("detection", f"{listed}: boxes, scores, classes and a count (SSD-style)", spec)]
    spec = DetectionSpec.model_validate({"format": "end2end", "outputs": roles, **extra})
    return [Family("detection", f"{listed}: boxes, scores and classes (NMS inside the model)", spec)]


def _scores_and_classes(pair: list[Tensor]) -> tuple[Tensor, Tensor]:
    """By name (score/conf vs class/label), else by type (classes are integers), else in order."""
    for first, second in (pair, pair[::-1]):
        if any(w in first.name.lower() for w in ("score", "conf")) or any(
            w in second.name.lower() for w in ("class", "label", "cls")
        ):
            return first, second
    for first, second in (pair, pair[::-1]):
        if second.dtype.startswith("int") and not first.dtype.startswith("int"):
            return first, second
    return pair[0], pair[1]


def _scores(facts: Facts, out: Tensor) -> Scores:
    """A classifier ending in Softmax/Sigmoid gives probabilities; in Gemm/MatMul/Add, logits."""
    op = facts.producers.get(out.name, "")
    if op in ("Softmax", "Sigmoid"):
        return "probabilities"
    if op in ("Gemm", "MatMul", "Add"):
        return "logits"
    return "auto"


def _per_step(facts: Facts, out: Tensor) -> bool:
    """A 3-D output made by a Softmax is one distribution per row: per-step class scores of a
    sequence recogniser (PP-OCR's CTC text-line model: [N, steps, characters]). A detector's rows
    carry box values, which no softmax makes, so it is never read as one."""
    return len(out.dims) == 3 and facts.producers.get(out.name) == "Softmax"


def _outputs_text(facts: Facts) -> str:
    return "; ".join(o.describe() for o in facts.outputs) or "no outputs"


def _raw_hint(facts: Facts) -> str:
    hint = facts.metadata.get("task", "") if facts.ultralytics else ""
    if hint in _ULTRALYTICS_UNDECODED:
        why = f"an Ultralytics {hint} model: kitfleet decodes detect and classify exports"
    elif len(facts.outputs) == 1 and _per_step(facts, facts.outputs[0]):
        why = (
            "class scores per step (a Softmax over each row), as a sequence recogniser such as a "
            "CTC text-line model gives: not a classifier or detector layout kitfleet decodes"
        )
    else:
        why = "no classifier or detector layout kitfleet decodes"
    return (
        f"{_outputs_text(facts)}: {why}; deployed as raw, the kit answers the outputs as they are "
        "to an input tensor (`kitfleet infer KIT MODEL INPUT.npy --out outputs.npz`; a kit takes tensors, "
        "not pictures, for a raw model). If it is a classifier or detector, "
        "give --task with the layout it needs"
    )
