"""FP32 → INT8 with ONNX Runtime's quantizer, the same pipeline on the laptop and on a kit.

`prepare` upgrades opsets below 13, reads weights an exporter reached through nodes directly and
runs ONNX Runtime's recommended pre-processing (`agent.toolkit.quantprep`). `quantize` writes
static QDQ (per-channel int8 weights, uint8 activations) when it gets calibration tensors, dynamic
otherwise; nodes the quantizer cannot take stay in floating point and are named. 7-bit weights
(`reduce_range`) keep x86 CPUs without VNNI accurate with signed weights (u8×s8 kernels).
Dynamic mode stores a model with a Conv with unsigned (uint8) weights unless the caller asks for
signed ones: ONNX Runtime's u8×u8 ConvInteger was 2.4-5x faster than its u8×s8 one where both exist
(1.32, AVX-512 VNNI; `benchmarks/conv_weights.py`), and 1.23 (Python 3.10's last) has no u8×s8 one.
With uint8 weights `reduce_range` gives codes 0-127 around a zero point, full range 0-255; ONNX
Runtime's u8×u8 kernels widen to 16 bits and do not saturate. MatMul-only models keep signed
weights: there u8×s8 MatMulInteger ran 2.2x faster than u8×u8 (the same benchmark).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
from onnx import version_converter
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)
from onnxruntime.quantization.registry import IntegerOpsRegistry, QDQRegistry

from agent.toolkit.errors import Unsupported
from agent.toolkit.quantprep import pre_process, settle_weights

__all__ = [
    "METHODS",
    "MIN_OPSET",
    "SIGNED_NOTE",
    "UNSIGNED_NOTE",
    "KeptFloat",
    "Method",
    "opset_of",
    "prepare",
    "quantize",
]

Method = Literal["minmax", "entropy", "percentile"]
METHODS: dict[str, CalibrationMethod] = {
    "minmax": CalibrationMethod.MinMax,
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,
}
MIN_OPSET = 13  # per-channel QuantizeLinear/DequantizeLinear need opset 13
_WEIGHTED = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})  # the nodes INT8 speeds up
_NEEDS_STORED_WEIGHT = frozenset({"Conv", "ConvTranspose", "Gemm"})  # MatMul quantizes either input
_RETRIES = 8  # each retry leaves the nodes the last error named in floating point
_OTHER_MODE = "try the other mode, or an export with a newer opset"
UNSIGNED_NOTE = (
    "unsigned 8-bit weights: ONNX Runtime's u8×u8 ConvInteger ran 2.4-5x faster than its signed "
    "kernel (1.32, AVX-512 VNNI) and every version has it, 1.23 (Python 3.10's last) lacks the signed one"
)
SIGNED_NOTE = (
    "signed 8-bit Conv weights, as asked: only ONNX Runtime 1.24 and later load them, and its signed "
    "ConvInteger ran 2.4-5x slower than the unsigned one (1.32, AVX-512 VNNI)"
)


def opset_of(model: onnx.ModelProto) -> int:
    """The model's default-domain (ai.onnx) opset."""
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


class _Tensors(CalibrationDataReader):  # type: ignore[misc]  # onnxruntime ships no type hints
    def __init__(self, name: str, tensors: Sequence[np.ndarray]) -> None:
        self._name = name
        self._items: Iterator[np.ndarray] = iter(tensors)

    def get_next(self) -> dict[str, np.ndarray] | None:
        tensor = next(self._items, None)
        return None if tensor is None else {self._name: tensor}


def prepare(model: onnx.ModelProto, scratch: Path, notes: list[str]) -> Path:
    """Upgrade old opsets, settle weights the exporter reached through nodes, then ONNX Runtime's
    pre-processing (shape inference, optimisation) as it recommends before quantizing."""
    upgraded = scratch / "upgraded.onnx"
    onnx.save(_upgraded(settle_weights(model, notes), notes), str(upgraded))
    prepared = scratch / "prepared.onnx"
    return prepared if pre_process(upgraded, prepared, notes) else upgraded


@dataclass(frozen=True)
class KeptFloat:
    """A node with weights that stays in floating point, and why."""

    name: str
    op_type: str
    reason: str

    def __str__(self) -> str:
        return f"{self.op_type} {self.name!r} ({self.reason})"


def quantize(
    prepared: Path,
    staged: Path,
    input_name: str | None,
    tensors: Sequence[np.ndarray],
    *,
    per_channel: bool,
    reduce_range: bool,
    method: Method,
    signed_conv: bool = False,
    notes: list[str] | None = None,
) -> list[KeptFloat]:
    """Static (QDQ, uint8 activations, int8 weights) when there are calibration tensors, else dynamic.

    Nodes the quantizer cannot take (a Conv or Gemm whose weight is computed in the graph, or one
    its error names) stay in floating point; the answer names every weighted node left so, and why.
    `signed_conv`: dynamic mode stores int8 Conv weights (uint8 × int8 ConvInteger, ONNX Runtime 1.24+
    only, measured slower) instead of uint8 ones; the caller checks the runtime has the kernel.
    """
    graph = onnx.load(str(prepared)).graph
    excluded = _computed_weights(graph)
    weights = _dynamic_weights(graph, excluded, signed_conv, notes) if not tensors else QuantType.QInt8
    for _ in range(_RETRIES):
        try:
            _run_quantizer(
                prepared,
                staged,
                input_name,
                tensors,
                sorted(excluded),
                weights,
                per_channel=per_channel,
                reduce_range=reduce_range,
                method=method,
            )
            break
        except Exception as exc:  # the quantizer fails on graphs it does not support with many types
            culprits = _named_in(str(exc), graph, excluded)
            if not culprits:
                raise _cannot_quantize(exc) from exc
            excluded.update(culprits)
    else:
        raise Unsupported("cannot_quantize", "ONNX Runtime could not quantize the model", _OTHER_MODE)
    _drop_unused_opsets(staged)
    return _left_in_float(onnx.load(str(staged)).graph, excluded, static=bool(tensors))


def _run_quantizer(
    prepared: Path,
    staged: Path,
    input_name: str | None,
    tensors: Sequence[np.ndarray],
    excluded: list[str],
    weights: QuantType,
    *,
    per_channel: bool,
    reduce_range: bool,
    method: Method,
) -> None:
    if tensors:
        assert input_name is not None  # calibration tensors exist only for an image input
        quantize_static(
            str(prepared),
            str(staged),
            _Tensors(input_name, tensors),
            quant_format=QuantFormat.QDQ,
            per_channel=per_channel,
            reduce_range=reduce_range,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=METHODS[method],
            nodes_to_exclude=excluded,
            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
        )
    else:
        quantize_dynamic(
            str(prepared),
            str(staged),
            per_channel=per_channel,
            reduce_range=reduce_range,
            weight_type=weights,
            nodes_to_exclude=excluded,
        )


def _dynamic_weights(
    graph: onnx.GraphProto, excluded: dict[str, str], signed_conv: bool, notes: list[str] | None
) -> QuantType:
    """Unsigned weights for a model with a Conv to quantize (faster, and every runtime has the kernel)
    unless signed ones are asked for; signed (ONNX Runtime's advice) for MatMul-only models."""
    if not any(node.op_type == "Conv" and node.name not in excluded for node in graph.node):
        return QuantType.QInt8
    if signed_conv:
        if notes is not None:
            notes.append(SIGNED_NOTE)
        return QuantType.QInt8
    if notes is not None:
        notes.append(UNSIGNED_NOTE)
    return QuantType.QUInt8


def _cannot_quantize(exc: Exception) -> Unsupported:
    detail = (str(exc).strip().splitlines() or [""])[-1][:300]
    return Unsupported(
        "cannot_quantize",
        f"ONNX Runtime could not quantize the model ({detail or 'no reason given'})",
        _OTHER_MODE,
    )


def _computed_weights(graph: onnx.GraphProto) -> dict[str, str]:
    """Conv/Gemm nodes whose weight is not stored: ONNX Runtime's quantizer refuses them."""
    stored = {tensor.name for tensor in graph.initializer}
    return {
        node.name: "its weight is computed in the graph, not stored"
        for node in graph.node
        if node.op_type in _NEEDS_STORED_WEIGHT and len(node.input) > 1 and node.input[1] not in stored
    }


def _named_in(message: str, graph: onnx.GraphProto, excluded: dict[str, str]) -> dict[str, str]:
    """Weighted nodes, not yet excluded, that read a tensor the quantizer's error names."""
    detail = (message.strip().splitlines() or [""])[-1][:120]
    return {
        node.name: f"ONNX Runtime's quantizer failed on it: {detail}"
        for node in graph.node
        if node.op_type in _WEIGHTED
        and node.name
        and node.name not in excluded
        and any(name and re.search(rf"(?<![\w.]){re.escape(name)}(?![\w.])", message) for name in node.input)
    }


def _left_in_float(graph: onnx.GraphProto, excluded: dict[str, str], *, static: bool) -> list[KeptFloat]:
    """Weighted nodes of the quantized graph that still compute in floating point."""
    made_by = {output: node.op_type for node in graph.node for output in node.output}
    supported = QDQRegistry if static else IntegerOpsRegistry
    kept = []
    for node in graph.node:
        if node.op_type not in _WEIGHTED:
            continue
        if static and any(made_by.get(name) == "DequantizeLinear" for name in node.input):
            continue  # QDQ: the node reads dequantized INT8 tensors, which ONNX Runtime fuses
        reason = excluded.get(node.name) or (
            f"{'static' if static else 'dynamic'} mode does not quantize {node.op_type}"
            if node.op_type not in supported
            else "ONNX Runtime's quantizer left it in floating point"
        )
        kept.append(KeptFloat(node.name or "(unnamed)", node.op_type, reason))
    return kept


def _upgraded(model: onnx.ModelProto, notes: list[str]) -> onnx.ModelProto:
    opset = opset_of(model)
    if opset >= MIN_OPSET:
        return model
    try:
        upgraded = version_converter.convert_version(model, MIN_OPSET)
    except Exception as exc:  # the converter raises plain RuntimeErrors naming the op it cannot move
        detail = (str(exc).strip().splitlines() or [""])[-1][:300]
        raise Unsupported(
            "cannot_upgrade_opset",
            f"cannot upgrade the model from opset {opset} to {MIN_OPSET} ({detail})",
            f"re-export it with opset_version={MIN_OPSET} or later",
        ) from None
    notes.append(f"upgraded from opset {opset} to {MIN_OPSET}")
    return upgraded


def _drop_unused_opsets(path: Path) -> None:
    """Pre-processing declares every domain ONNX Runtime knows; older runtimes refuse unknown versions."""
    model = onnx.load(str(path))
    used = {node.domain for node in _all_nodes(model.graph)} | {"", "ai.onnx"}
    kept = [o for o in model.opset_import if o.domain in used]
    if len(kept) < len(model.opset_import):
        del model.opset_import[:]
        model.opset_import.extend(kept)
        onnx.save(model, str(path))


def _all_nodes(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    for node in graph.node:
        yield node
        for attribute in node.attribute:
            subgraphs = [*attribute.graphs, *([attribute.g] if attribute.HasField("g") else [])]
            for subgraph in subgraphs:
                yield from _all_nodes(subgraph)
