"""A ResNet-18-class image classifier built with onnx.helper from seeded weights (nothing downloaded).

The digits CNN is too small for INT8 to matter: its runs are dominated by per-node overhead. This
network has ResNet-18's shape (7x7 stem, four stages of two basic blocks, 64-512 channels, global
pooling, a linear head): 11.7 M parameters and ~1.8 GFLOPs at 224x224, so the INT8/FP32 latency
ratio reflects the convolution kernels, as it would for a real vision model. Batch norm is folded
into the convolutions' biases, as exporters and ONNX Runtime's optimiser leave it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["resnet18_like"]

_STAGES = ((64, 1), (128, 2), (256, 2), (512, 2))  # (channels, stride of the stage's first block)


class _Builder:
    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.weights: list[onnx.TensorProto] = []

    def conv(
        self, x: str, cin: int, cout: int, kernel: int, stride: int, relu: bool, gain: float = 1.0
    ) -> str:
        name = f"conv{len(self.nodes)}"
        std = gain * np.sqrt(2.0 / (cin * kernel * kernel))  # He: keeps activations in range
        w = (self.rng.standard_normal((cout, cin, kernel, kernel)) * std).astype(np.float32)
        b = (self.rng.standard_normal(cout) * 0.01).astype(np.float32)
        self.weights += [numpy_helper.from_array(w, f"{name}.w"), numpy_helper.from_array(b, f"{name}.b")]
        pad = kernel // 2
        self.nodes.append(
            helper.make_node(
                "Conv",
                [x, f"{name}.w", f"{name}.b"],
                [name],
                name=name,
                kernel_shape=[kernel, kernel],
                strides=[stride, stride],
                pads=[pad] * 4,
            )
        )
        return self.relu(name) if relu else name

    def relu(self, x: str) -> str:
        self.nodes.append(helper.make_node("Relu", [x], [f"{x}.relu"], name=f"{x}.relu"))
        return f"{x}.relu"

    def block(self, x: str, cin: int, cout: int, stride: int) -> str:
        y = self.conv(x, cin, cout, 3, stride, relu=True)
        y = self.conv(y, cout, cout, 3, 1, relu=False, gain=0.5)  # a damped residual, as trained nets have
        skip = x if stride == 1 and cin == cout else self.conv(x, cin, cout, 1, stride, relu=False)
        self.nodes.append(helper.make_node("Add", [y, skip], [f"{y}.add"], name=f"{y}.add"))
        return self.relu(f"{y}.add")


def resnet18_like(path: Path, *, size: int = 224, classes: int = 1000, seed: int = 0) -> Path:
    """Write the network to `path`: image [N, 3, size, size] → scores [N, classes]; return `path`."""
    net = _Builder(seed)
    x = net.conv("image", 3, 64, 7, 2, relu=True)
    net.nodes.append(
        helper.make_node("MaxPool", [x], ["pool"], kernel_shape=[3, 3], strides=[2, 2], pads=[1] * 4)
    )
    x, cin = "pool", 64
    for channels, stride in _STAGES:
        x = net.block(x, cin, channels, stride)
        x = net.block(x, channels, channels, 1)
        cin = channels
    fc_w = (net.rng.standard_normal((cin, classes)) * np.sqrt(1.0 / cin)).astype(np.float32)
    net.weights += [
        numpy_helper.from_array(fc_w.T.copy(), "fc.w"),
        numpy_helper.from_array(np.zeros(classes, np.float32), "fc.b"),
    ]
    net.nodes += [
        helper.make_node("GlobalAveragePool", [x], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["features"]),
        helper.make_node("Gemm", ["features", "fc.w", "fc.b"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["scores"], axis=1),
    ]
    graph = helper.make_graph(
        net.nodes,
        "resnet18-like",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, size, size])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", classes])],
        net.weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
