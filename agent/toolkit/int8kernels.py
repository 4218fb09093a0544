"""Whether an ONNX Runtime runs ConvInteger with signed 8-bit weights (uint8 activations × int8).

Dynamic quantization writes ConvInteger for every Conv. ONNX Runtime's CPU kernel took only
uint8 × uint8 until 1.24 (microsoft/onnxruntime#26585); 1.23, the last release for Python 3.10,
refuses a model with int8 ConvInteger weights at load. kitfleet stores uint8 Conv weights unless
signed ones are asked for (`agent.toolkit.quantize`); this module says where asking is allowed: for
a kit seen from the laptop, from the version its runtime facts report (`kitfleet quantize` refuses
signed weights for a kit without the kernel); here, a real session on a one-pixel ConvInteger
(asked once per process), which benchmarks and tests use and which holds the version rule true.
"""

from __future__ import annotations

import functools
import re

__all__ = ["SIGNED_CONV_SINCE", "runs_signed_conv_integer", "signed_conv_integer_in"]

SIGNED_CONV_SINCE = (1, 24)  # the first ONNX Runtime with a uint8 × int8 ConvInteger CPU kernel
_VERSION = re.compile(r"(\d+)\.(\d+)")


@functools.cache
def runs_signed_conv_integer() -> bool:
    """True when this process's ONNX Runtime loads and runs a ConvInteger with int8 weights."""
    import numpy as np
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(_probe_model(), providers=["CPUExecutionProvider"])
        answer = session.run(None, {"x": np.full((1, 1, 1, 1), 3, dtype=np.uint8)})[0]
    except Exception:  # NOT_IMPLEMENTED at load is the answer: ONNX Runtime raises its own types
        return False
    return int(np.asarray(answer).ravel()[0]) == -6  # 3 × -2: the kernel read the weight as signed


def signed_conv_integer_in(version: str | None) -> bool:
    """From a runtime's version (a kit's facts); False when it is unknown, the answer that always runs."""
    match = _VERSION.match(version or "")
    return match is not None and (int(match[1]), int(match[2])) >= SIGNED_CONV_SINCE


def _probe_model() -> bytes:
    """A one-pixel ConvInteger, uint8 input and a stored int8 weight of -2."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.full((1, 1, 1, 1), -2, dtype=np.int8), "w")
    graph = helper.make_graph(
        [helper.make_node("ConvInteger", ["x", "w"], ["y"])],
        "signed-conv-integer-probe",
        [helper.make_tensor_value_info("x", TensorProto.UINT8, [1, 1, 1, 1])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [1, 1, 1, 1])],
        [weight],
    )
    # IR 7 and opset 13: every ONNX Runtime a kit may have reads them
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=7)
    return bytes(model.SerializeToString())
