"""Models shaped the way field exporters write them, built with onnx.helper for the quantize tests.

`paddle_recognizer` mimics a paddle2onnx export of a CRNN-style text recognizer (PP-OCR rec): its
names (`conv2d_0.w_0`, `p2o.Conv.0`, `p2o.DynamicDimension.0`), weights emitted as `Constant`
nodes, parameters shared between layers through `Identity` nodes (paddle's `assign`/shared
parameters), and an `fc` written as MatMul over a `Transpose`d weight plus Add. ONNX Runtime's
quantizer wants Conv weights as initializers, so quantizing this graph without its pre-processing
fails with "Expected conv2d_... to be an initializer".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["correlation_head", "paddle_recognizer"]

_BATCH = "p2o.DynamicDimension.0"


def paddle_recognizer(
    path: Path, *, height: int = 32, width: int = 64, classes: int = 37, seed: int = 0
) -> Path:
    """Write the recognizer to `path`: x [N, 3, H, W] → softmax [N, W/4, classes]; return `path`."""
    rng = np.random.default_rng(seed)
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []

    def array(*shape: int, scale: float = 0.2) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    def init(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(value, name))
        return name

    def constant(name: str, value: np.ndarray) -> str:  # a weight as a node, as old exporters wrote it
        nodes.append(
            helper.make_node(
                "Constant",
                [],
                [name],
                name=f"p2o.Constant.{name}",
                value=numpy_helper.from_array(value, f"{name}.value"),
            )
        )
        return name

    def shared(source: str, user: str) -> str:  # paddle's shared parameter: Identity per user
        out = f"{source}.{user}.share"
        nodes.append(helper.make_node("Identity", [source], [out], name=f"p2o.Identity.{source}.{user}"))
        return out

    def conv_bn_relu(index: int, x: str, weight: str, bias: str, channels: int, stride: int) -> str:
        conv, bn, relu = f"conv2d_{index}.tmp_0", f"batch_norm_{index}.tmp_2", f"relu_{index}.tmp_0"
        nodes.append(
            helper.make_node(
                "Conv",
                [x, weight, bias],
                [conv],
                name=f"p2o.Conv.{index}",
                kernel_shape=[3, 3],
                pads=[1, 1, 1, 1],
                strides=[stride, stride],
            )
        )
        params = [
            init(f"batch_norm_{index}.{p}", v)
            for p, v in (
                ("w_0", np.ones(channels, np.float32) + array(channels, scale=0.05)),
                ("b_0", array(channels, scale=0.05)),
                ("w_1", array(channels, scale=0.05)),
                ("w_2", np.ones(channels, np.float32)),
            )
        ]
        nodes.append(
            helper.make_node(
                "BatchNormalization",
                [conv, *params],
                [bn],
                name=f"p2o.BatchNormalization.{index}",
                epsilon=1e-5,
            )
        )
        nodes.append(helper.make_node("Relu", [bn], [relu], name=f"p2o.Relu.{index}"))
        return relu

    # stem: the weight is a Constant node
    x = conv_bn_relu(
        0, "x", constant("conv2d_0.w_0", array(16, 3, 3, 3)), init("conv2d_0.b_0", array(16)), 16, 2
    )
    # two blocks share one conv weight and bias through Identity nodes
    w1, b1 = init("conv2d_1.w_0", array(16, 16, 3, 3, scale=0.1)), init("conv2d_1.b_0", array(16))
    x = conv_bn_relu(1, x, shared(w1, "conv1"), shared(b1, "conv1"), 16, 1)
    x = conv_bn_relu(2, x, shared(w1, "conv2"), shared(b1, "conv2"), 16, 1)
    x = conv_bn_relu(
        3, x, init("conv2d_3.w_0", array(32, 16, 3, 3, scale=0.1)), init("conv2d_3.b_0", array(32)), 32, 2
    )
    # [N, 32, H/4, W/4] → pool the height away → [N, W/4, 32]
    nodes += [
        helper.make_node("ReduceMean", [x], ["pool_0.tmp_0"], name="p2o.ReduceMean.0", axes=[2], keepdims=0),
        helper.make_node(
            "Transpose", ["pool_0.tmp_0"], ["transpose_0.tmp_0"], name="p2o.Transpose.0", perm=[0, 2, 1]
        ),
    ]
    # fc as paddle's matmul_v2(transpose_y=True): MatMul over a Transpose of the stored weight, then Add
    fc_w = init("linear_0.w_0", array(64, 32))
    nodes.append(
        helper.make_node("Transpose", [fc_w], ["linear_0.w_0.t"], name="p2o.Transpose.1", perm=[1, 0])
    )
    nodes += [
        helper.make_node(
            "MatMul", ["transpose_0.tmp_0", "linear_0.w_0.t"], ["linear_0.tmp_0"], name="p2o.MatMul.0"
        ),
        helper.make_node(
            "Add", ["linear_0.tmp_0", init("linear_0.b_0", array(64))], ["linear_0.tmp_1"], name="p2o.Add.0"
        ),
        helper.make_node("Relu", ["linear_0.tmp_1"], ["relu_4.tmp_0"], name="p2o.Relu.4"),
    ]
    # the head: a second fc whose weight is shared (tied) with an auxiliary head, through Identity
    head_w = init("linear_1.w_0", array(64, classes))
    nodes += [
        helper.make_node(
            "MatMul", ["relu_4.tmp_0", shared(head_w, "ctc")], ["linear_1.tmp_0"], name="p2o.MatMul.1"
        ),
        helper.make_node(
            "Add",
            ["linear_1.tmp_0", init("linear_1.b_0", array(classes))],
            ["linear_1.tmp_1"],
            name="p2o.Add.1",
        ),
        helper.make_node("Softmax", ["linear_1.tmp_1"], ["softmax_0.tmp_0"], name="p2o.Softmax.0", axis=2),
    ]
    graph = helper.make_graph(
        nodes,
        "paddle-infer",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [_BATCH, 3, height, width])],
        [helper.make_tensor_value_info("softmax_0.tmp_0", TensorProto.FLOAT, [_BATCH, width // 4, classes])],
        inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 11)], producer_name="PaddlePaddle"
    )
    model.ir_version = 7
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path


def correlation_head(path: Path, *, size: int = 32, seed: int = 0) -> Path:
    """A tracker-style head whose second Conv takes its weight from the picture itself (a
    cross-correlation): no pre-processing can make that weight stored, so it must stay FP32."""
    rng = np.random.default_rng(seed)
    weight = numpy_helper.from_array(
        (rng.standard_normal((8, 3, 3, 3)) * 0.2).astype(np.float32), "embed.w_0"
    )
    bias = numpy_helper.from_array(np.zeros(1, np.float32), "xcorr.b_0")
    nodes = [
        helper.make_node(
            "Conv", ["x", "embed.w_0"], ["feats"], name="embed", kernel_shape=[3, 3], pads=[1, 1, 1, 1]
        ),
        helper.make_node("Relu", ["feats"], ["feats.relu"], name="embed.relu"),
        helper.make_node(
            "AveragePool",
            ["feats.relu"],
            ["template"],
            name="template",
            kernel_shape=[size // 3] * 2,
            strides=[size // 3] * 2,
        ),
        helper.make_node(
            "Conv",
            ["feats.relu", "template", "xcorr.b_0"],
            ["score"],
            name="xcorr",
            kernel_shape=[3, 3],
            pads=[1, 1, 1, 1],
        ),
    ]
    graph = helper.make_graph(
        nodes,
        "tracker",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, [1, 1, size, size])],
        [weight, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path
