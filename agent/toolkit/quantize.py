"""FP32 → INT8 with ONNX Runtime's quantizer, the same pipeline on the laptop and on a kit.

`prepare` upgrades opsets below 13 and runs ONNX Runtime's recommended pre-processing (shape
inference, constant folding; without sympy, ONNX's own shape inference), which also lets
exported graphs whose weights pass through nodes quantize. `quantize` writes static QDQ
(per-channel int8 weights, uint8 activations) when it gets calibration tensors, dynamic
otherwise. 7-bit weights (`reduce_range`) keep x86 CPUs without VNNI accurate.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
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
from onnxruntime.quantization.shape_inference import quant_pre_process

from agent.toolkit.errors import Unsupported

__all__ = ["METHODS", "MIN_OPSET", "Method", "opset_of", "prepare", "quantize"]

Method = Literal["minmax", "entropy", "percentile"]
METHODS: dict[str, CalibrationMethod] = {
    "minmax": CalibrationMethod.MinMax,
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,
}
MIN_OPSET = 13  # per-channel QuantizeLinear/DequantizeLinear need opset 13


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


def quantize(
    prepared: Path,
    staged: Path,
    input_name: str | None,
    tensors: Sequence[np.ndarray],
    *,
    per_channel: bool,
    reduce_range: bool,
    method: Method,
) -> None:
    """Static (QDQ, uint8 activations, int8 weights) when there are calibration tensors, else dynamic."""
    try:
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
                extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
            )
        else:
            quantize_dynamic(
                str(prepared),
                str(staged),
                per_channel=per_channel,
                reduce_range=reduce_range,
                weight_type=QuantType.QInt8,
            )
    except Exception as exc:  # the quantizer fails on graphs it does not support with many types
        detail = (str(exc).strip().splitlines() or [""])[-1][:300]
        raise Unsupported(
            "cannot_quantize",
            f"ONNX Runtime could not quantize the model ({type(exc).__name__}: {detail})",
            "try the other mode, or an export with a newer opset",
        ) from exc
    _drop_unused_opsets(staged)


def prepare(model: onnx.ModelProto, scratch: Path, notes: list[str]) -> Path:
    """Upgrade old opsets, then infer shapes and fold constants as ONNX Runtime recommends."""
    upgraded = scratch / "upgraded.onnx"
    onnx.save(_upgraded(model, notes), str(upgraded))
    prepared = scratch / "prepared.onnx"
    try:
        _pre_process(upgraded, prepared)
    except Exception as exc:  # symbolic shape inference gives up on some graphs; quantize as it is
        notes.append(f"shape inference and pre-optimisation skipped ({type(exc).__name__})")
        return upgraded
    return prepared


def _pre_process(source: Path, target: Path) -> None:
    """ONNX Runtime's pre-processing; without sympy, with ONNX's shape inference instead of its own.

    For the bundled digits CNN both give the same nodes and weights, so a laptop without sympy
    quantizes it as one with sympy does.
    """
    try:
        quant_pre_process(str(source), str(target))
    except ImportError:  # ONNX Runtime's symbolic shape inference needs sympy, which is optional
        quant_pre_process(str(source), str(target), skip_symbolic_shape=True)


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
