"""Quantizing graphs as field exporters write them (`tests/onnx_field_models.py`), in the toolkit
both the laptop and a kit's quantize job run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnxruntime.quantization import QuantType, quantize_dynamic

from agent.toolkit.float16 import to_float16
from agent.toolkit.int8kernels import runs_signed_conv_integer, signed_conv_integer_in
from agent.toolkit.quantize import SIGNED_NOTE, UNSIGNED_NOTE, KeptFloat, prepare, quantize
from agent.toolkit.quantprep import settle_weights
from tests.onnx_field_models import correlation_head, paddle_recognizer
from tests.onnx_models import classifier


def run(path: Path, tensor: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {"x": tensor})[0])


def pictures(count: int = 4, width: int = 64) -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    return [rng.random((1, 3, 32, width), dtype=np.float32) for _ in range(count)]


def quantized(
    source: Path, tmp_path: Path, tensors: list[np.ndarray] | None = None
) -> tuple[Path, list[KeptFloat], list[str]]:
    notes: list[str] = []
    prepared = prepare(onnx.load(str(source)), tmp_path, notes)
    out = tmp_path / "int8.onnx"
    kept = quantize(
        prepared, out, "x", tensors or [], per_channel=bool(tensors), reduce_range=True, method="minmax"
    )
    return out, kept, notes


@pytest.fixture
def recognizer(tmp_path: Path) -> Path:
    return paddle_recognizer(tmp_path / "rec.onnx")


def test_the_recognizer_runs_but_onnx_runtime_alone_cannot_quantize_it(
    recognizer: Path, tmp_path: Path
) -> None:
    assert run(recognizer, pictures(1)[0]).shape == (1, 16, 37)
    with pytest.raises(ValueError, match="to be an initializer"):
        quantize_dynamic(str(recognizer), str(tmp_path / "raw.onnx"), weight_type=QuantType.QInt8)


def test_the_recognizer_with_shared_weights_quantizes_dynamically(recognizer: Path, tmp_path: Path) -> None:
    out, kept, notes = quantized(recognizer, tmp_path)

    ops = [node.op_type for node in onnx.load(str(out)).graph.node]
    assert ops.count("ConvInteger") == 4
    assert ops.count("MatMulInteger") == 2
    assert kept == []  # every Conv and MatMul, the two sharing one weight too, became INT8
    assert any("Constant node" in note and "Identity" in note for note in notes)
    for tensor in pictures():
        reference, answer = run(recognizer, tensor), run(out, tensor)
        assert answer.shape == reference.shape
        assert np.mean(reference.argmax(-1) == answer.argmax(-1)) >= 0.9  # per-step best character


def conv_weight_types(path: Path) -> set[int]:
    model = onnx.load(str(path))
    stored = {tensor.name: tensor.data_type for tensor in model.graph.initializer}
    return {stored[node.input[1]] for node in model.graph.node if node.op_type == "ConvInteger"}


def test_the_probe_and_the_version_rule_agree_on_this_runtime() -> None:
    # 1.23 (Python 3.10's last) lacks the signed kernel, 1.24 and later have it: CI runs both
    assert runs_signed_conv_integer() == signed_conv_integer_in(ort.__version__)
    assert not signed_conv_integer_in("1.23.2")
    assert signed_conv_integer_in("1.24.0")
    assert signed_conv_integer_in("2.0")
    assert not signed_conv_integer_in(None)
    assert not signed_conv_integer_in("unknown")  # unreadable: the weights every runtime runs


def weight_codes(path: Path, data_type: int) -> np.ndarray:
    model = onnx.load(str(path))
    stored = [
        onnx.numpy_helper.to_array(t).ravel() for t in model.graph.initializer if t.data_type == data_type
    ]
    assert stored, "no weights of that type"
    return np.concatenate(stored).astype(np.int16)


@pytest.mark.parametrize("reduce_range", [True, False])
def test_conv_weights_are_unsigned_by_default_and_run_here(
    recognizer: Path, tmp_path: Path, reduce_range: bool
) -> None:
    notes: list[str] = []
    prepared = prepare(onnx.load(str(recognizer)), tmp_path, notes)
    out = tmp_path / "int8-u8.onnx"

    kept = quantize(
        prepared, out, "x", [], per_channel=False, reduce_range=reduce_range, method="minmax", notes=notes
    )

    assert kept == []
    assert conv_weight_types(out) == {onnx.TensorProto.UINT8}
    assert UNSIGNED_NOTE in notes
    # uint8 weights are asymmetric around a zero point: reduce_range keeps codes 0-127, else 0-255
    codes = weight_codes(out, onnx.TensorProto.UINT8)
    assert (codes.min(), codes.max()) == ((0, 127) if reduce_range else (0, 255))
    for tensor in pictures():  # runs on every ONNX Runtime, 1.23 included
        assert np.mean(run(recognizer, tensor).argmax(-1) == run(out, tensor).argmax(-1)) >= 0.9


def test_signed_conv_weights_only_when_asked_and_load_exactly_where_the_probe_says(
    recognizer: Path, tmp_path: Path
) -> None:
    out, _, _ = quantized(recognizer, tmp_path)  # the default, whatever this runtime has
    assert conv_weight_types(out) == {onnx.TensorProto.UINT8}

    forced = tmp_path / "int8-s8.onnx"
    notes: list[str] = []
    prepared = prepare(onnx.load(str(recognizer)), tmp_path, [])
    quantize(
        prepared,
        forced,
        "x",
        [],
        per_channel=False,
        reduce_range=True,
        method="minmax",
        signed_conv=True,
        notes=notes,
    )
    assert conv_weight_types(forced) == {onnx.TensorProto.INT8}
    assert SIGNED_NOTE in notes
    assert UNSIGNED_NOTE not in notes
    assert np.abs(weight_codes(forced, onnx.TensorProto.INT8)).max() == 64  # 7 bits, symmetric
    if runs_signed_conv_integer():
        assert run(forced, pictures(1)[0]).shape == (1, 16, 37)
    else:
        with pytest.raises(Exception, match="ConvInteger"):
            run(forced, pictures(1)[0])


def test_a_matmul_only_model_keeps_signed_weights(tmp_path: Path) -> None:
    classifier(tmp_path / "linear.onnx", size=8)  # Flatten → MatMul → Softmax, no Conv
    notes: list[str] = []
    prepared = prepare(onnx.load(str(tmp_path / "linear.onnx")), tmp_path, notes)
    out = tmp_path / "linear-int8.onnx"

    quantize(prepared, out, "image", [], per_channel=False, reduce_range=True, method="minmax", notes=notes)

    model = onnx.load(str(out))
    stored = {tensor.name: tensor.data_type for tensor in model.graph.initializer}
    matmuls = [node for node in model.graph.node if node.op_type == "MatMulInteger"]
    assert {stored[node.input[1]] for node in matmuls} == {onnx.TensorProto.INT8}  # u8×s8 measured faster
    assert not {UNSIGNED_NOTE, SIGNED_NOTE} & set(notes)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert session.run(None, {"image": np.zeros((1, 3, 8, 8), np.float32)})[0].shape == (1, 4)


def test_the_recognizer_quantizes_statically_too(recognizer: Path, tmp_path: Path) -> None:
    out, kept, _ = quantized(recognizer, tmp_path, pictures(8))

    ops = [node.op_type for node in onnx.load(str(out)).graph.node]
    assert {"QuantizeLinear", "DequantizeLinear"} <= set(ops)
    assert kept == []
    tensor = pictures(1)[0]
    assert np.mean(run(recognizer, tensor).argmax(-1) == run(out, tensor).argmax(-1)) >= 0.9


def test_a_conv_whose_weight_is_computed_stays_fp32_and_is_named(tmp_path: Path) -> None:
    source = correlation_head(tmp_path / "tracker.onnx")
    with pytest.raises(ValueError, match="to be an initializer"):  # what ONNX Runtime does alone
        quantize_dynamic(str(source), str(tmp_path / "raw.onnx"), weight_type=QuantType.QInt8)

    out, kept, _ = quantized(source, tmp_path)

    assert [(node.name, node.op_type) for node in kept] == [("xcorr", "Conv")]
    assert "computed in the graph" in kept[0].reason
    assert "ConvInteger" in {node.op_type for node in onnx.load(str(out)).graph.node}  # the other Conv
    tensor = np.random.default_rng(0).random((1, 3, 32, 32), dtype=np.float32)
    assert run(out, tensor).shape == run(source, tensor).shape


def test_settling_weights_leaves_the_given_model_alone(recognizer: Path) -> None:
    model = onnx.load(str(recognizer))
    before = model.SerializeToString()

    settled = settle_weights(model, [])

    assert model.SerializeToString() == before
    assert not {"Constant", "Identity"} & {node.op_type for node in settled.graph.node}
    assert not settled.graph.value_info
    stored = {tensor.name for tensor in settled.graph.initializer}
    assert {"conv2d_0.w_0", "conv2d_1.w_0", "linear_1.w_0"} <= stored


def test_fp16_runs_on_the_cpu_and_agrees_with_fp32(recognizer: Path, tmp_path: Path) -> None:
    notes: list[str] = []
    converted = to_float16(onnx.load(str(recognizer)), notes)
    out = tmp_path / "rec-fp16.onnx"
    onnx.save(converted, str(out))

    weights = [t for t in converted.graph.initializer if t.name == "conv2d_1.w_0"]
    assert [t.data_type for t in weights] == [onnx.TensorProto.FLOAT16]
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].type == session.get_outputs()[0].type == "tensor(float)"  # keep_io_types
    for tensor in pictures():
        np.testing.assert_allclose(run(out, tensor), run(recognizer, tensor), atol=2e-3)
    assert any("inputs and outputs stay FP32" in note for note in notes)
