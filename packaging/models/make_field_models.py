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
from field_nets import CLASSES, Classifier, EfficientNms, EndToEnd, TfSsd, YoloV5, YoloV8
from PIL import Image, ImageDraw
from torch import nn

SEED = 17
OUT = Path(__file__).resolve().parents[2] / "tests" / "data" / "field_models"
COLOURS = {"red": (230, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}
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
    "scene-a.png": (
        (320, 240),
        (Thing("red", 44, 60, 32), Thing("green", 264, 80, 64), Thing("blue", 144, 136, 112)),
    ),
    "scene-b.png": (
        (240, 360),
        (Thing("red", 60, 300, 36), Thing("green", 170, 60, 60), Thing("blue", 110, 180, 100)),
    ),
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
        "yolov8-det.onnx",
        YoloV8,
        (1, 3, 320, 320),
        torch.float32,
        17,
        ("images",),
        ("output0",),
        {"images": {0: "batch", 2: "height", 3: "width"}, "output0": {0: "batch", 2: "anchors"}},
        _ultralytics(320, 17, "v8"),
    ),
    Export(
        "yolov5-det.onnx",
        YoloV5,
        (1, 3, 256, 256),
        torch.float32,
        12,
        ("images",),
        ("output0",),
        {},
        {"stride": "32", "names": _names()},
    ),
    Export(
        "end2end-det.onnx",
        EndToEnd,
        (1, 3, 320, 320),
        torch.float32,
        16,
        ("images",),
        ("output0",),
        {"images": {0: "batch"}, "output0": {0: "batch"}},
        _ultralytics(320, 16, "26"),
    ),
    Export(
        "efficientnms-det.onnx",
        EfficientNms,
        (1, 3, 256, 256),
        torch.float32,
        14,
        ("images",),
        ("num_dets", "det_boxes", "det_scores", "det_classes"),
        {name: {0: "batch"} for name in ("images", "num_dets", "det_boxes", "det_scores", "det_classes")},
        {},
    ),
    Export(
        "ssd-tf.onnx",
        TfSsd,
        (1, 160, 160, 3),
        torch.uint8,
        11,
        ("image_tensor:0",),
        ("detection_boxes:0", "detection_scores:0", "detection_classes:0", "num_detections:0"),
        {},
        {},
    ),
    Export(
        "classifier-tv.onnx",
        Classifier,
        (1, 3, 224, 224),
        torch.float32,
        13,
        ("input",),
        ("output",),
        {"input": {0: "batch_size"}, "output": {0: "batch_size"}},
        {},
    ),
    Export(
        "classifier-probs.onnx",
        Classifier,
        (1, 96, 96, 3),
        torch.float32,
        15,
        ("input_1",),
        ("predictions",),
        {"input_1": {0: "N"}, "predictions": {0: "N"}},
        {},
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
