"""Model packages: the manifest, uploads, versions and infer answers."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from agent.wire.base import WireModel
from agent.wire.common import MAX_INT64
from agent.wire.requirements import Requirements

__all__ = [
    "NAME_PATTERN",
    "VERSION_PATTERN",
    "ActivateRequest",
    "Classification",
    "Detection",
    "DetectionFormat",
    "DetectionSpec",
    "Golden",
    "InferResult",
    "InputSpec",
    "Manifest",
    "ModelInfo",
    "ModelVersion",
    "Normalisation",
    "Precision",
    "Task",
    "UploadRequest",
    "UploadStatus",
]


NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"


VERSION_PATTERN = r"^[0-9A-Za-z][0-9A-Za-z._+-]{0,31}$"


Task = Literal["classification", "detection", "raw"]


Precision = Literal["fp32", "fp16", "int8"]


class InputSpec(WireModel):
    name: str = Field(min_length=1, max_length=128, description="the model's input tensor name")
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    height: int = Field(ge=1, le=8192)
    width: int = Field(ge=1, le=8192)
    channels: Literal[1, 3] = 3
    dtype: Literal["float32", "float16", "uint8", "int8"] = "float32"
    letterbox: bool = Field(
        default=False,
        description="keep the image's aspect ratio and pad to height x width with grey (114), "
        "centred, as Ultralytics exports expect; boxes are mapped back to the image's pixels",
    )


class Normalisation(WireModel):
    """x' = (x * scale - mean) / std, per channel, on pixel values 0-255."""

    scale: float = Field(default=1 / 255, gt=0)
    mean: list[float] = Field(default_factory=lambda: [0.0], min_length=1, max_length=3)
    std: list[float] = Field(default_factory=lambda: [1.0], min_length=1, max_length=3)


DetectionFormat = Literal["yolo", "yolov8", "end2end", "ssd"]


class DetectionSpec(WireModel):
    """How to decode a detector's outputs; `format` names the family:

    - `yolo`: YOLOv5-style [N, boxes, 5 + classes] (cx, cy, w, h, objectness, class scores)
    - `yolov8`: YOLOv8/YOLO11-style [N, 4 + classes, boxes] (cx, cy, w, h, class scores; no objectness)
    - `end2end`: NMS inside the model: one [N, K, 6] output (x1, y1, x2, y2, score, class), or
      separate boxes [N, K, 4] / scores [N, K] / classes [N, K] outputs named in `outputs`
    - `ssd`: boxes [N, K, 4], scores [N, K], classes [N, K], count [N] (named in `outputs`)

    Box coordinates are in the model input's pixels unless `normalised_boxes` says they are 0-1.
    """

    format: DetectionFormat = "yolo"
    outputs: dict[str, str] | None = Field(
        default=None,
        description="for multi-output families: role (boxes, scores, classes, count) -> output name",
    )
    box_order: Literal["xyxy", "yxyx"] = Field(default="xyxy", description="end2end/ssd box corner order")
    normalised_boxes: bool = Field(default=False, description="box coordinates are 0-1, not input pixels")
    class_offset: int = Field(default=0, ge=0, le=1, description="1 when class 0 is background")
    score_threshold: float = Field(default=0.25, ge=0, le=1)
    iou_threshold: float = Field(default=0.45, ge=0, le=1)
    max_detections: int = Field(default=100, ge=1, le=10000)


class Golden(WireModel):
    """A self-check run before install: a seeded random input must give these outputs.

    The input is `numpy.random.default_rng(seed).random(shape)` cast to the input
    dtype; `outputs` holds the first values of each output, flattened.
    """

    seed: int = Field(ge=0, le=MAX_INT64)
    outputs: dict[str, list[float]] = Field(min_length=1)
    atol: float = Field(default=1e-3, gt=0)


class Manifest(WireModel):
    """What a model is and how to feed it. Validated before anything is stored."""

    name: str = Field(pattern=NAME_PATTERN, description="lower-case letters, digits, - and _")
    version: str = Field(pattern=VERSION_PATTERN)
    task: Task
    input: InputSpec
    normalisation: Normalisation = Field(default_factory=Normalisation)
    labels: list[str] = Field(default_factory=list, max_length=100000)
    precision: Precision = "fp32"
    sha256: str = Field(pattern="^[0-9a-f]{64}$")
    size_bytes: int = Field(ge=1, le=MAX_INT64)
    source_model: str | None = None
    figures: dict[str, float] = Field(default_factory=dict, description="accuracy/latency figures when known")
    detection: DetectionSpec | None = None
    scores: Literal["auto", "logits", "probabilities"] = Field(
        default="auto",
        description="a classifier's output: logits get a softmax, probabilities are used as they are; "
        "auto decides per answer (a row in [0, 1] summing to 1 is taken as probabilities)",
    )
    golden: Golden | None = None
    requires: Requirements | None = Field(
        default=None, description="hardware gates: kits that do not meet them are refused unless forced"
    )

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        channels = self.input.channels
        for name, values in (("mean", self.normalisation.mean), ("std", self.normalisation.std)):
            if len(values) not in (1, channels):
                raise ValueError(f"normalisation.{name} needs 1 or {channels} values, not {len(values)}")
        if any(v <= 0 for v in self.normalisation.std):
            raise ValueError("normalisation.std values must be positive")
        if self.task == "detection" and self.detection is None:
            self.detection = DetectionSpec()
        return self


class UploadRequest(WireModel):
    manifest: Manifest
    activate: bool = False
    force: bool = Field(
        default=False, description="install even where the manifest's `requires` are not met (audited)"
    )


class UploadStatus(WireModel):
    upload_id: str
    name: str
    version: str
    offset: int
    size: int
    state: Literal["receiving", "verifying", "installed", "failed"]
    error: str | None = None
    gates_overridden: list[str] = Field(
        default_factory=list, description="the manifest's requirements this kit does not meet, forced past"
    )


class ModelVersion(WireModel):
    version: str
    precision: Precision
    sha256: str
    size_bytes: int
    installed_at: float
    active: bool


class ActivateRequest(WireModel):
    """The body of POST /v1/models/{name}/activate: which installed version to serve."""

    version: str = Field(pattern=VERSION_PATTERN)


class ModelInfo(WireModel):
    name: str
    task: Task
    active_version: str | None
    previous_version: str | None
    versions: list[ModelVersion]


class Classification(WireModel):
    label: str
    index: int
    score: float


class Detection(WireModel):
    label: str
    index: int
    score: float
    box: tuple[float, float, float, float] = Field(
        description="x1, y1, x2, y2 in the pixels of the image sent (not the model input)"
    )


class InferResult(WireModel):
    model: str
    version: str
    sha256: str
    task: Task
    latency_ms: float
    classes: list[Classification] | None = None
    detections: list[Detection] | None = None
