"""Turn request tensors (.npy) into model inputs; pictures are prepared by agent/toolkit/images.py."""

from __future__ import annotations

import io
import math
import re
from typing import Any

import numpy as np

from agent.errors import BadInput, Invalid

__all__ = ["NPY_MAGIC", "check_tensor", "load_npy"]

NPY_MAGIC = b"\x93NUMPY"
_ORT_DTYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(uint8)": "uint8",
    "tensor(int8)": "int8",
    "tensor(int16)": "int16",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(bool)": "bool",
}
_NP_DTYPES = {name: np.dtype(name) for name in _ORT_DTYPES.values()}

# The header numpy.save writes for a plain C-order numeric array. Parsed by this pattern, a
# request's tensor costs a few microseconds instead of np.load's ~40 (it runs the header
# through ast.literal_eval); anything else (Fortran order, structured dtypes) takes np.load.
_NPY_HEADER = re.compile(
    rb"\{'descr': '([<>|=]?[biuf][1248])', 'fortran_order': False, "
    rb"'shape': \(([\d, ]*)\), \} *\n"
)


def load_npy(data: bytes) -> np.ndarray:
    """One array from .npy bytes; pickled objects are refused. Errors: BadInput bad_tensor."""
    fast = _plain_npy(data)
    if fast is not None:
        return fast
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise BadInput(
            "bad_tensor",
            f"the body is not a readable .npy array: {exc}",
            "write it with numpy.save(); object arrays are not accepted",
        ) from None
    if not isinstance(array, np.ndarray):
        array.close()
        raise BadInput(
            "bad_tensor",
            "the body is an .npz archive, not one .npy array",
            "send a single array written with numpy.save()",
        )
    return array


def _plain_npy(data: bytes) -> np.ndarray | None:
    """The array of a version 1.0 .npy of a plain C-order numeric array, or None for np.load."""
    if len(data) < 10 or data[:8] != NPY_MAGIC + b"\x01\x00":
        return None
    start = 10 + int.from_bytes(data[8:10], "little")
    found = _NPY_HEADER.fullmatch(data, 10, start)
    if found is None:
        return None
    dtype = np.dtype(found.group(1).decode())
    shape = tuple(int(d) for d in found.group(2).split(b",") if d.strip())
    count = math.prod(shape)  # Python ints: a forged shape cannot overflow into a match
    if len(data) - start != count * dtype.itemsize:
        return None  # truncated or padded: np.load says what is wrong
    return np.frombuffer(data, dtype, count, start).reshape(shape)


def check_tensor(tensor: np.ndarray, model_input: Any) -> None:
    """Refuse a tensor whose dtype or shape the model input cannot take (Invalid)."""
    expected = _ORT_DTYPES.get(model_input.type, model_input.type)
    if tensor.dtype != _NP_DTYPES.get(expected):  # a dtype compared, not named: µs per request
        raise Invalid(
            "wrong_dtype",
            f"input {model_input.name!r} takes {expected}, the tensor is {tensor.dtype}",
            f"cast it first, e.g. array.astype('{expected}')",
        )
    shape = list(model_input.shape)
    if len(shape) != tensor.ndim or not all(
        _dim_fits(want, got) for want, got in zip(shape, tensor.shape, strict=True)
    ):
        wanted = ", ".join(str(d) if isinstance(d, int) and d > 0 else str(d or "?") for d in shape)
        raise Invalid(
            "wrong_shape",
            f"input {model_input.name!r} takes shape [{wanted}], the tensor is {list(tensor.shape)}",
            "named or ? dimensions take any size",
        )


def _dim_fits(want: object, got: int) -> bool:
    """A fixed dimension must match; a symbolic (named or unknown) one takes any size."""
    return not (isinstance(want, int) and want > 0) or want == got
