"""Small real ONNX models built in code, with manifests, for tests."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from agent.wire import Golden, InputSpec, Manifest


def classifier(
    path: Path,
    name: str = "tiny",
    version: str = "1",
    classes: int = 4,
    size: int = 16,
    seed: int = 0,
    golden: bool = True,
    opset: int = 13,
) -> Manifest:
    """A linear classifier over a 3×size×size image: Flatten → MatMul → Softmax."""
    rng = np.random.default_rng(seed)
    features = 3 * size * size
    weights = numpy_helper.from_array(rng.standard_normal((features, classes)).astype(np.float32), "w")
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["image"], ["flat"]),
            helper.make_node("MatMul", ["flat", "w"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["scores"], axis=1),
        ],
        "tiny",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, size, size])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", classes])],
        [weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    manifest = Manifest(
        name=name,
        version=version,
        task="classification",
        input=InputSpec(name="image", height=size, width=size),
        labels=[f"class-{i}" for i in range(classes)],
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        size_bytes=path.stat().st_size,
    )
    if golden:
        manifest.golden = Golden(seed=7, outputs={"scores": _golden(path, size)})
    path.with_name(f"{path.stem}.manifest.json").write_text(manifest.model_dump_json(indent=2))
    return manifest


def _golden(path: Path, size: int) -> list[float]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    data = np.random.default_rng(7).random([1, 3, size, size]).astype("float32")
    return [float(v) for v in session.run(None, {"image": data})[0].ravel()[:16]]


def conv_classifier(
    path: Path, opset: int = 11, dims: tuple[int | str, ...] = ("N", 3, 16, 16), classes: int = 4
) -> Path:
    """Conv-ReLU-Conv-ReLU-pool-Gemm with seeded weights, as old exports are: opset 11, free batch.

    `dims` may leave the picture size free too (`("N", 3, "height", "width")`); no manifest is written.
    """
    rng = np.random.default_rng(0)

    def weight(name: str, *shape: int) -> onnx.TensorProto:
        return numpy_helper.from_array(rng.normal(0, 0.3, shape).astype(np.float32), name)

    nodes = [
        helper.make_node("Conv", ["image", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("GlobalAveragePool", ["r2"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("Gemm", ["flat", "w3", "b3"], ["scores"], transB=1),
    ]
    weights = [
        weight("w1", 8, 3, 3, 3),
        weight("b1", 8),
        weight("w2", 16, 8, 3, 3),
        weight("b2", 16),
        weight("w3", classes, 16),
        weight("b3", classes),
    ]
    inputs = [helper.make_tensor_value_info("image", TensorProto.FLOAT, dims)]
    outputs = [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", classes])]
    graph = helper.make_graph(nodes, "tiny", inputs, outputs, weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
