"""Make the field-style test models in tests/data/field_models/: tiny networks exported the way
vendors' exporters write them (TorchScript ONNX exporter, as Ultralytics and torchvision use),
one per output family kitfleet decodes, with two test scenes.

    /work/torchenv/bin/python packaging/models/make_field_models.py [--out DIR]

Needs torch, onnx and Pillow only (no kitfleet import, so it runs in a torch-only venv).
Weights are drawn from a seeded generator and then hand-set where it matters: a colour-purity
map (how much a pixel is red, green or blue rather than grey), blurred by a Gaussian window three
strides wide at strides 8/16/32, with a 3x3 max-pool keeping only each blob's peak cell (a slight
ramp breaks ties between twin peaks). Class c
fires at level c only (red at stride 8, green at 16, blue at 32), so a scene with one square of
each colour gives three confident, well-separated boxes; the grey background's noise gives many
low-score candidates, as a real detector's does. Box offsets and sizes come from a random 1x1 conv,
so coordinates differ per anchor. Deterministic: the same run writes the same bytes.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from PIL import Image, ImageDraw
from torch import nn
from torch.nn import functional

SEED = 17
OUT = Path(__file__).resolve().parents[2] / "tests" / "data" / "field_models"
CLASSES = ("red", "green", "blue")
CLASSIFIER_LABELS = (*CLASSES, "grey")
COLOURS = {"red": (230, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}
STRIDES = (8, 16, 32)
BOXES = (32.0, 64.0, 112.0)  # box side per level, before the random size factor
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
# Ultralytics writes its export's arguments and build date; fixed here so re-runs match byte for byte
ULTRALYTICS_DATE = "2026-12-01T00:00:00"


@dataclass(frozen=True)
class Thing:
    label: str
    cx: float
    cy: float
    size: int


# Scene A is 4:3 (letterboxed to 320x320 with 40 px of grey above and below, gain 1), its squares
# centred on their level's cells; scene B is portrait and lands at a non-integer gain.
SCENES = {
    "scene-a.png": ((320, 240), (Thing("red", 44, 60, 32), Thing("green", 264, 80, 64), Thing("blue", 144, 136, 112))),
    "scene-b.png": ((240, 360), (Thing("red", 60, 300, 36), Thing("green", 170, 60, 60), Thing("blue", 110, 180, 100))),
}


def draw_scene(size: tuple[int, int], things: tuple[Thing, ...], rng: np.random.Generator) -> Image.Image:
    """Grey 114 with a little noise, and a filled square per thing."""
    width, height = size
    noise = rng.normal(0, 4, (height, width, 3))
    image = Image.fromarray(np.clip(114 + noise, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for thing in things:
        half = thing.size / 2
        corners = (thing.cx - half, thing.cy - half, thing.cx + half - 1, thing.cy + half - 1)
        draw.rectangle(corners, fill=COLOURS[thing.label])
    return image


def _gaussian(stride: int) -> torch.Tensor:
    """A 3-stride-wide Gaussian window (sigma = stride), summing to 1."""
    offsets = torch.arange(3 * stride, dtype=torch.float64) - (3 * stride - 1) / 2
    weights = torch.exp(-0.5 * (offsets / stride) ** 2)
    return (weights / weights.sum()).float()


class Levels(nn.Module):
    """Unit-scale NCHW RGB → per level (boxes cx, cy, w, h in input pixels [N, 4, A], logits [N, C, A])."""

    def __init__(self) -> None:
        super().__init__()
        self.purity = nn.Conv2d(3, 3, 1)
        self.across = nn.ModuleList()
        self.down = nn.ModuleList()
        self.head = nn.ModuleList()
        self.regress = nn.ModuleList()
        with torch.no_grad():
            self.purity.weight.copy_((torch.eye(3) * 1.5 - 0.5).reshape(3, 3, 1, 1))  # c - (others)/2
            self.purity.bias.zero_()
            for level, stride in enumerate(STRIDES):
                across = nn.Conv2d(3, 3, (1, 3 * stride), (1, stride), (0, stride), groups=3, bias=False)
                down = nn.Conv2d(3, 3, (3 * stride, 1), (stride, 1), (stride, 0), groups=3, bias=False)
                across.weight.copy_(_gaussian(stride).reshape(1, 1, 1, -1).repeat(3, 1, 1, 1))
                down.weight.copy_(_gaussian(stride).reshape(1, 1, -1, 1).repeat(3, 1, 1, 1))
                head = nn.Conv2d(6, len(CLASSES), 1)
                head.weight.mul_(0.05)  # the random part: small, so the hand-set part decides
                head.weight[level, level] += 10.0  # blob strength
                head.weight[level, 3 + level] += 2000.0  # below its 3x3 neighbourhood's peak: off
                head.bias.copy_(torch.full((len(CLASSES),), -14.0))
                head.bias[level] = -2.0
                self.across.append(across)
                self.down.append(down)
                self.head.append(head)
                self.regress.append(nn.Conv2d(3, 4, 1))  # random: per-anchor offsets and sizes

    def forward(self, images: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        purity = self.purity(images)
        levels = []
        for level, stride in enumerate(STRIDES):
            blurred = self.down[level](self.across[level](purity))
            ranked = blurred + _ramp(blurred)
            peak = ranked - functional.max_pool2d(ranked, 3, 1, 1)
            logits = self.head[level](torch.cat([blurred, peak], 1)).flatten(2)
            levels.append((self._boxes(blurred, level, stride), logits))
        return levels

    def _boxes(self, blurred: torch.Tensor, level: int, stride: int) -> torch.Tensor:
        rows, cols = blurred.shape[2], blurred.shape[3]
        ys = (torch.arange(rows, dtype=torch.float32) + 0.5) * stride
        xs = (torch.arange(cols, dtype=torch.float32) + 0.5) * stride
        grid_y = ys.reshape(-1, 1).expand(rows, cols).reshape(1, -1)
        grid_x = xs.reshape(1, -1).expand(rows, cols).reshape(1, -1)
        shift = torch.tanh(self.regress[level](blurred * 4)).flatten(2)
        cx = grid_x + 0.25 * stride * shift[:, 0]
        cy = grid_y + 0.25 * stride * shift[:, 1]
        w = BOXES[level] * torch.exp(0.15 * shift[:, 2])
        h = BOXES[level] * torch.exp(0.15 * shift[:, 3])
        return torch.stack([cx, cy, w, h], 1)


def _ramp(features: torch.Tensor) -> torch.Tensor:
    """0.03 more per cell to the right, 0.02 per cell down: a blob whose peak falls between two
    cells still has one local maximum, so exactly one anchor fires per blob."""
    rows, cols = features.shape[2], features.shape[3]
    across = torch.arange(cols, dtype=torch.float32).reshape(1, -1) * 0.03
    down = torch.arange(rows, dtype=torch.float32).reshape(-1, 1) * 0.02
    return (across + down).reshape(1, 1, rows, cols)


def _anchors(levels: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """All levels' (boxes [N, 4, A], logits [N, C, A]), level by level as Ultralytics orders them."""
    return torch.cat([b for b, _ in levels], 2), torch.cat([s for _, s in levels], 2)


class YoloV8(nn.Module):
    """Ultralytics YOLOv8/YOLO11 detect head: [N, 4 + C, A], cx cy w h then sigmoid class scores."""

    def __init__(self) -> None:
        super().__init__()
        self.levels = Levels()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        boxes, logits = _anchors(self.levels(images))
        return torch.cat([boxes, logits.sigmoid()], 1)


class YoloV5(YoloV8):
    """YOLOv5 export: [N, A, 5 + C], cx cy w h, objectness, class scores (all probabilities)."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        boxes, logits = _anchors(self.levels(images))
        objectness = logits.max(1, keepdim=True).values.sigmoid()
        return torch.cat([boxes, objectness, logits.sigmoid()], 1).transpose(1, 2)


def _top(images: torch.Tensor, levels: Levels, keep: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The `keep` best anchors, best first: corner boxes [N, K, 4] (x1 y1 x2 y2), scores, classes."""
    boxes, logits = _anchors(levels(images))
    scores, classes = logits.sigmoid().max(1)
    best, index = scores.topk(keep, dim=1)
    centre = boxes.transpose(1, 2).gather(1, index.unsqueeze(2).expand(-1, -1, 4))
    corners = torch.cat([centre[..., :2] - centre[..., 2:] / 2, centre[..., :2] + centre[..., 2:] / 2], 2)
    return corners, best, classes.gather(1, index)


class EndToEnd(YoloV8):
    """NMS-free export (YOLOv10/YOLO26 `end2end`): [N, K, 6] of x1 y1 x2 y2 score class."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        corners, scores, classes = _top(images, self.levels, 20)
        return torch.cat([corners, scores.unsqueeze(2), classes.unsqueeze(2).float()], 2)


class EfficientNms(YoloV8):
    """TensorRT EfficientNMS-style outputs: num_dets [N, 1] int32, det_boxes [N, K, 4] x1 y1 x2 y2,
    det_scores [N, K], det_classes [N, K] int32; rows past num_dets are zeros."""

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        corners, scores, classes = _top(images, self.levels, 16)
        valid = scores > 0.25
        count = valid.sum(1, keepdim=True).to(torch.int32)
        mask = valid.float()
        return count, corners * mask.unsqueeze(2), scores * mask, (classes * valid).to(torch.int32)


class TfSsd(YoloV8):
    """TF Object Detection API SSD as tf2onnx writes it: uint8 NHWC in; detection_boxes [N, K, 4]
    normalised ymin xmin ymax xmax, detection_scores, detection_classes (float, 1-based: 0 is
    background), num_detections [N] float; rows past num_detections are zeros."""

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        unit = images.permute(0, 3, 1, 2).float() / 255
        corners, scores, classes = _top(unit, self.levels, 10)
        valid = (scores > 0.3).float()
        height, width = images.shape[1], images.shape[2]
        x1, y1, x2, y2 = corners.unbind(2)
        boxes = torch.stack([y1 / height, x1 / width, y2 / height, x2 / width], 2).clamp(0, 1)
        return (
            boxes * valid.unsqueeze(2),
            scores * valid,
            (classes.float() + 1) * valid,
            valid.sum(1),
        )


class Classifier(nn.Module):
    """torchvision-style: ImageNet-normalised NCHW in, logits [N, classes] out (or, `probabilities`,
    a softmax as Keras models end with, over NHWC unit-scale input)."""

    def __init__(self, probabilities: bool = False) -> None:
        super().__init__()
        self.probabilities = probabilities
        self.purity = nn.Conv2d(3, 3, 1)
        self.fc = nn.Linear(3, len(CLASSIFIER_LABELS))
        with torch.no_grad():
            self.purity.weight.copy_((torch.eye(3) * 1.5 - 0.5).reshape(3, 3, 1, 1))
            self.purity.bias.zero_()
            self.fc.weight.mul_(0.1)
            self.fc.weight[:3, :3] += torch.eye(3) * 40.0
            self.fc.bias.copy_(torch.tensor([0.0, 0.0, 0.0, 2.0]))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.probabilities:
            unit = images.permute(0, 3, 1, 2)
        else:
            mean = torch.tensor(IMAGENET[0]).reshape(1, 3, 1, 1)
            std = torch.tensor(IMAGENET[1]).reshape(1, 3, 1, 1)
            unit = images * std + mean
        logits = self.fc(self.purity(unit).mean((2, 3)))
        return logits.softmax(1) if self.probabilities else logits


@dataclass(frozen=True)
class Export:
    file: str
    module: type[nn.Module]
    example: tuple[int, ...]
    dtype: torch.dtype
    opset: int
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    dynamic: dict[str, dict[int, str]]
    metadata: dict[str, str]


def _names() -> str:
    return repr(dict(enumerate(CLASSES)))


def _ultralytics(imgsz: int, opset: int, version: str) -> dict[str, str]:
    """The metadata_props an Ultralytics export writes (values as Python reprs, as it does)."""
    return {
        "description": f"Ultralytics YOLO{version}n model trained on field-shapes.yaml",
        "author": "Ultralytics",
        "date": ULTRALYTICS_DATE,
        "version": "8.3.40",
        "license": "AGPL-3.0 License (https://ultralytics.com/license)",
        "docs": "https://docs.ultralytics.com",
        "stride": "32",
        "task": "detect",
        "batch": "1",
        "imgsz": repr([imgsz, imgsz]),
        "names": _names(),
        "args": repr({"batch": 1, "half": False, "dynamic": True, "simplify": False, "opset": opset}),
    }


EXPORTS = (
    Export(
        "yolov8-det.onnx", YoloV8, (1, 3, 320, 320), torch.float32, 17, ("images",), ("output0",),
        {"images": {0: "batch", 2: "height", 3: "width"}, "output0": {0: "batch", 2: "anchors"}},
        _ultralytics(320, 17, "v8"),
    ),
    Export(
        "yolov5-det.onnx", YoloV5, (1, 3, 256, 256), torch.float32, 12, ("images",), ("output0",),
        {}, {"stride": "32", "names": _names()},
    ),
    Export(
        "end2end-det.onnx", EndToEnd, (1, 3, 320, 320), torch.float32, 16, ("images",), ("output0",),
        {"images": {0: "batch"}, "output0": {0: "batch"}}, _ultralytics(320, 16, "26"),
    ),
    Export(
        "efficientnms-det.onnx", EfficientNms, (1, 3, 256, 256), torch.float32, 14, ("images",),
        ("num_dets", "det_boxes", "det_scores", "det_classes"),
        {name: {0: "batch"} for name in ("images", "num_dets", "det_boxes", "det_scores", "det_classes")},
        {},
    ),
    Export(
        "ssd-tf.onnx", TfSsd, (1, 160, 160, 3), torch.uint8, 11, ("image_tensor:0",),
        ("detection_boxes:0", "detection_scores:0", "detection_classes:0", "num_detections:0"), {}, {},
    ),
    Export(
        "classifier-tv.onnx", Classifier, (1, 3, 224, 224), torch.float32, 13, ("input",), ("output",),
        {"input": {0: "batch_size"}, "output": {0: "batch_size"}}, {},
    ),
    Export(
        "classifier-probs.onnx", Classifier, (1, 96, 96, 3), torch.float32, 15, ("input_1",), ("predictions",),
        {"input_1": {0: "N"}, "predictions": {0: "N"}}, {},
    ),
)


def export(spec: Export, out: Path) -> Path:
    torch.manual_seed(SEED + sum(spec.file.encode()))
    module = spec.module(True) if spec.file == "classifier-probs.onnx" else spec.module()  # type: ignore[call-arg]
    example = torch.zeros(spec.example, dtype=spec.dtype)
    path = out / spec.file
    torch.onnx.export(
        module.eval(),
        (example,),
        str(path),
        opset_version=spec.opset,
        dynamo=False,
        input_names=list(spec.inputs),
        output_names=list(spec.outputs),
        dynamic_axes=spec.dynamic or None,
        do_constant_folding=True,
    )
    model = onnx.load(str(path))
    model.producer_name, model.producer_version = "pytorch", "2.13.0"  # not the local build's suffix
    for key, value in spec.metadata.items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


def write_scenes(out: Path) -> None:
    rng = np.random.default_rng(SEED)
    truth = {}
    for name, (size, things) in SCENES.items():
        draw_scene(size, things, rng).save(out / name, optimize=False)
        truth[name] = [asdict(thing) for thing in things]
    (out / "scenes.json").write_text(json.dumps(truth, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    write_scenes(args.out)
    for spec in EXPORTS:
        path = export(spec, args.out)
        print(f"{path.name}: opset {spec.opset}, {math.ceil(path.stat().st_size / 1024)} KB")


if __name__ == "__main__":
    main()
