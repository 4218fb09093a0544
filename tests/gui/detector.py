"""A fixed-answer YOLO-style detector and a picture that matches it, for the Try-it tests.

The model answers the same boxes whatever it is shown (the input only enters multiplied by
zero), so a test checks how boxes travel and are drawn, not how well something detects.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from PIL import Image, ImageDraw

from agent.wire import InputSpec, Manifest

LABELS = ["square", "circle", "triangle"]
SIZE = 64  # the model's input: 64 × 64 RGB
SCALE = 4  # the picture is 4× the input, so boxes come back ×4
# (cx, cy, w, h) in input pixels, objectness, one score per label.
ROWS = [
    [20, 22, 24, 24, 0.95, 0.97, 0.02, 0.01],
    [44, 42, 20, 20, 0.90, 0.03, 0.93, 0.04],
    [32, 32, 10, 10, 0.10, 0.30, 0.30, 0.40],
]  # 0.04 overall: under the threshold


def detector(path: Path, name: str = "shapes-fixed", version: str = "1") -> Manifest:
    rows = numpy_helper.from_array(np.asarray([ROWS], dtype=np.float32), "rows")
    shape = numpy_helper.from_array(np.asarray([1, 1, 1], dtype=np.int64), "shape")
    zero = numpy_helper.from_array(np.zeros((1, 1, 1), dtype=np.float32), "zero")
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["images"], ["mean"], keepdims=1),
            helper.make_node("Reshape", ["mean", "shape"], ["mean3"]),
            helper.make_node("Mul", ["mean3", "zero"], ["nothing"]),
            helper.make_node("Add", ["rows", "nothing"], ["output"]),
        ],
        "shapes",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, len(ROWS), 5 + len(LABELS)])],
        [rows, shape, zero],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())
    manifest = Manifest(
        name=name,
        version=version,
        task="detection",
        input=InputSpec(name="images", height=SIZE, width=SIZE),
        labels=LABELS,
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        size_bytes=path.stat().st_size,
    )
    path.with_name(f"{path.stem}.manifest.json").write_text(manifest.model_dump_json(indent=2))
    return manifest


def shapes_picture(path: Path) -> Path:
    """A red square and a blue circle where the detector says they are."""
    side = SIZE * SCALE
    image = Image.new("RGB", (side, side), (236, 236, 228))
    draw = ImageDraw.Draw(image)
    for (cx, cy, w, h, *_), colour, shape in zip(
        ROWS[:2], ["#c0392b", "#2e86c1"], ["square", "circle"], strict=True
    ):
        corners = [
            (cx - w / 2) * SCALE + 6,
            (cy - h / 2) * SCALE + 6,
            (cx + w / 2) * SCALE - 6,
            (cy + h / 2) * SCALE - 6,
        ]
        (draw.rectangle if shape == "square" else draw.ellipse)(corners, fill=colour)
    image.save(path)
    return path
