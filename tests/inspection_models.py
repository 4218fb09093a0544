"""Plain ONNX files as exporters leave them (no manifest), one per output family, built in code.

Each runs in ONNX Runtime: a 1x1 convolution makes the per-position values, reshaped into the
family's layout, so a kit can load, check and serve it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

Dim = int | str

ULTRALYTICS_NAMES = "{0: 'person', 1: 'bicycle', 2: 'car'}"


def save(
    path: Path,
    nodes: list[onnx.NodeProto],
    inputs: Sequence[tuple[Any, ...]],
    outputs: Sequence[tuple[Any, ...]],
    weights: Sequence[np.ndarray | tuple[str, np.ndarray]] = (),
    metadata: dict[str, str] | None = None,
    producer: str = "pytorch",
    opset: int = 13,
    doc: str = "",
) -> Path:
    def info(spec: tuple[Any, ...]) -> onnx.ValueInfoProto:
        elem = spec[2] if len(spec) > 2 else TensorProto.FLOAT
        return helper.make_tensor_value_info(spec[0], elem, list(spec[1]))

    initializers = [numpy_helper.from_array(w[1], w[0]) for w in weights if isinstance(w, tuple)]
    graph = helper.make_graph(nodes, "g", [info(i) for i in inputs], [info(o) for o in outputs], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name=producer)
    model.ir_version = 8
    model.doc_string = doc
    if metadata:
        helper.set_model_props(model, metadata)
    path.write_bytes(model.SerializeToString())
    return path


def _conv(
    channels: int, stride: int, seed: int = 0
) -> tuple[list[onnx.NodeProto], list[tuple[str, np.ndarray]]]:
    rng = np.random.default_rng(seed)
    weight = rng.normal(0, 0.5, (channels, 3, 1, 1)).astype(np.float32)
    node = helper.make_node("Conv", ["images", "w"], ["feat"], strides=[stride, stride])
    return [node], [("w", weight)]


def classifier(path: Path, classes: int = 4, dims: Sequence[Dim] = ("N", 3, 16, 16), **kw: Any) -> Path:
    """GlobalAveragePool -> Flatten -> Gemm: logits [N, classes]."""
    rng = np.random.default_rng(1)
    weights = [
        ("w", rng.normal(0, 1, (3, classes)).astype(np.float32)),
        ("b", np.zeros(classes, np.float32)),
    ]
    nodes = [
        helper.make_node("GlobalAveragePool", ["images"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("Gemm", ["flat", "w", "b"], ["logits"]),
    ]
    return save(path, nodes, [("images", dims)], [("logits", ["N", classes])], weights, **kw)


def yolov8(path: Path, classes: int = 3, size: Dim = 32, stride: int = 4, batch: Dim = 1, **kw: Any) -> Path:
    """[N, 4 + classes, boxes], as Ultralytics YOLOv8/YOLO11 export."""
    nodes, weights = _conv(4 + classes, stride)
    shape = np.array([1 if batch == 1 else 0, 4 + classes, -1], np.int64)
    nodes.append(helper.make_node("Reshape", ["feat", "shape"], ["output0"]))
    boxes: Dim = (size // stride) ** 2 if isinstance(size, int) else "anchors"
    out = [batch, 4 + classes, boxes]
    return save(
        path,
        nodes,
        [("images", [batch, 3, size, size])],
        [("output0", out)],
        [*weights, ("shape", shape)],
        **kw,
    )


def yolov5(path: Path, classes: int = 3, size: int = 32, stride: int = 4, **kw: Any) -> Path:
    """[N, boxes, 5 + classes], as YOLOv5 exports."""
    nodes, weights = _conv(5 + classes, stride)
    nodes += [
        helper.make_node("Reshape", ["feat", "shape"], ["flat"]),
        helper.make_node("Transpose", ["flat"], ["output0"], perm=[0, 2, 1]),
    ]
    shape = np.array([1, 5 + classes, -1], np.int64)
    boxes = (size // stride) ** 2
    return save(
        path,
        nodes,
        [("images", [1, 3, size, size])],
        [("output0", [1, boxes, 5 + classes])],
        [*weights, ("shape", shape)],
        **kw,
    )


def end2end(path: Path, kept: int = 100, **kw: Any) -> Path:
    """[N, K, 6] (x1, y1, x2, y2, score, class): NMS inside the model."""
    nodes = [
        helper.make_node("Constant", [], ["output0"], value=_constant(np.zeros((1, kept, 6), np.float32)))
    ]
    return save(path, nodes, [("images", [1, 3, 32, 32])], [("output0", [1, kept, 6])], **kw)


def separate(path: Path, count: bool, names: Sequence[str] = ("boxes", "scores", "classes", "count")) -> Path:
    """boxes [N, K, 4], scores [N, K], classes [N, K] (int64), and with `count` a count [N]."""
    kept = 10
    tensors: list[tuple[str, np.ndarray, int]] = [
        (names[0], np.zeros((1, kept, 4), np.float32), TensorProto.FLOAT),
        (names[1], np.zeros((1, kept), np.float32), TensorProto.FLOAT),
        (names[2], np.zeros((1, kept), np.int64), TensorProto.INT64),
    ]
    if count:
        tensors.append((names[3], np.zeros((1,), np.float32), TensorProto.FLOAT))
    nodes = [helper.make_node("Constant", [], [n], value=_constant(v)) for n, v, _ in tensors]
    outputs = [(n, list(v.shape), t) for n, v, t in tensors]
    return save(path, nodes, [("images", [1, 3, 32, 32])], outputs)


def ultralytics_metadata(
    task: str = "detect", imgsz: str = "[32, 32]", names: str = ULTRALYTICS_NAMES
) -> dict[str, str]:
    return {
        "author": "Ultralytics",
        "description": "Ultralytics YOLOv8n model",
        "version": "8.1.0",
        "stride": "32",
        "task": task,
        "batch": "1",
        "imgsz": imgsz,
        "names": names,
    }


def _constant(array: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(array)
