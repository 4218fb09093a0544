"""FP32 → FP16 for kits whose execution provider runs half precision best (CUDA, TensorRT, GPUs).

The converter is ONNX Runtime's (`onnxruntime.transformers.float16`, the float16 module of
onnxconverter-common kept inside ONNX Runtime): it ships with the runtime every laptop and kit
already has, so FP16 needs no extra package in the offline wheelhouse. Inputs and outputs stay
FP32 (`keep_io_types`), so the kit prepares pictures and reads scores exactly as for FP32; ops
without FP16 kernels stay FP32 behind Casts (the converter's own block list).
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import onnx

from agent.toolkit.errors import Unsupported
from agent.toolkit.quantprep import settle_weights

__all__ = ["to_float16"]


def to_float16(model: onnx.ModelProto, notes: list[str]) -> onnx.ModelProto:
    """`model` with FP16 weights and arithmetic, FP32 inputs and outputs."""
    convert = _converter()
    try:
        converted: onnx.ModelProto = convert(settle_weights(model, notes), keep_io_types=True)
    except Exception as exc:  # the converter fails on graphs it cannot type with many types
        detail = (str(exc).strip().splitlines() or [""])[-1][:300]
        raise Unsupported(
            "cannot_convert_fp16",
            f"could not convert the model to FP16 ({detail or 'no reason given'})",
            "deploy the FP32 model, or quantize it to INT8 instead",
        ) from exc
    notes.append("FP16 weights and arithmetic; inputs and outputs stay FP32, so the kit feeds it as before")
    return converted


def _converter() -> Callable[..., onnx.ModelProto]:
    """ONNX Runtime's converter; its package appends its own folder to sys.path, undone here."""
    path = list(sys.path)
    try:
        from onnxruntime.transformers.float16 import convert_float_to_float16
    finally:
        sys.path[:] = path
    converter: Callable[..., onnx.ModelProto] = convert_float_to_float16
    return converter
