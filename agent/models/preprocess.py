"""Turn request payloads (image bytes, .npy tensors) into model inputs."""

from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from agent.api.schemas import InputSpec, Normalisation
from agent.errors import ApiError

__all__ = [
    "IMAGE_TYPES",
    "MAX_PIXELS",
    "NPY_MAGIC",
    "check_tensor",
    "decode_image",
    "from_pixels",
    "load_npy",
    "media_type",
    "stack",
    "to_input",
    "to_pixels",
    "to_tensor",
]

IMAGE_TYPES = {"image/jpeg": "JPEG", "image/jpg": "JPEG", "image/png": "PNG", "image/bmp": "BMP",
               "image/x-ms-bmp": "BMP", "image/webp": "WEBP"}
MAX_PIXELS = 50_000_000  # a few KB of PNG can declare gigapixels: refuse before decoding
NPY_MAGIC = b"\x93NUMPY"
_UNDECLARED = {None, "application/octet-stream"}
_ORT_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
               "tensor(uint8)": "uint8", "tensor(int8)": "int8", "tensor(int16)": "int16",
               "tensor(int32)": "int32", "tensor(int64)": "int64", "tensor(bool)": "bool"}
_NP_DTYPES = {name: np.dtype(name) for name in _ORT_DTYPES.values()}
_Scale = tuple[float, float]


def media_type(content_type: str | None) -> str | None:
    """`image/png; charset=x` → `image/png`; None when nothing was declared."""
    if not content_type:
        return None
    return content_type.split(";", 1)[0].strip().lower() or None


def decode_image(data: bytes, content_type: str | None, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode JPEG/PNG/BMP/WebP bytes. 415 for other declared types, 400 if corrupt, 413 if huge."""
    declared = media_type(content_type)
    if declared not in _UNDECLARED and declared not in IMAGE_TYPES:
        raise ApiError(415, "unsupported_media_type", f"cannot read {declared} as an image",
                       "send JPEG, PNG, BMP or WebP (image/jpeg, image/png, …), or a tensor as "
                       "application/x-npy")
    try:
        image = Image.open(io.BytesIO(data), formats=sorted(set(IMAGE_TYPES.values())))
        _check_pixels(image.size, max_pixels)
        image.load()
        # phone cameras store rotation as an EXIF tag; boxes must match the picture people see.
        # In place: otherwise every upright camera frame is copied whole for nothing.
        ImageOps.exif_transpose(image, in_place=True)
        return image
    except ApiError:
        raise
    except Image.DecompressionBombError:
        raise _too_many_pixels(max_pixels) from None
    except Exception as exc:  # Pillow's decoders raise many types on corrupt data; none is our bug
        raise ApiError(400, "bad_image", f"the body is not a readable image ({type(exc).__name__})",
                       "check the file opens in an image viewer and the Content-Type matches") from None


def _check_pixels(size: tuple[int, int], max_pixels: int) -> None:
    if size[0] * size[1] > max_pixels:
        raise _too_many_pixels(max_pixels)


def _too_many_pixels(max_pixels: int) -> ApiError:
    return ApiError(413, "image_too_large", f"the image has more than {max_pixels} pixels",
                    "resize it before sending; the model sees a small input anyway")


def to_tensor(images: Sequence[Image.Image], spec: InputSpec,
              norm: Normalisation) -> tuple[np.ndarray, list[_Scale]]:
    """Resize, normalise and stack images into the model's input; scales map boxes back.

    Each scale is (original width / input width, original height / input height).
    """
    prepared = [to_pixels(image, spec) for image in images]
    pixels = np.stack([pixels for pixels, _ in prepared])
    return from_pixels(pixels, spec, norm), [scale for _, scale in prepared]


def to_input(image: Image.Image, spec: InputSpec, norm: Normalisation) -> tuple[np.ndarray, _Scale]:
    """One image as one item of the model's input (in its layout), and its scale.

    Split from `to_tensor` so batch jobs can prepare images on decode threads and
    stack them later, with exactly the values a request would get.
    """
    pixels, scale = to_pixels(image, spec)
    return from_pixels(pixels[np.newaxis], spec, norm)[0], scale


def to_pixels(image: Image.Image, spec: InputSpec) -> tuple[np.ndarray, _Scale]:
    """One image resized to the input, as (height, width, channels) pixels, and its scale:
    the part of `to_input` done per image; `from_pixels` does the rest for a whole batch."""
    mode = "RGB" if spec.channels == 3 else "L"
    converted = image if image.mode == mode else image.convert(mode)  # convert() would copy it whole
    resized = converted.resize((spec.width, spec.height), Image.Resampling.BILINEAR)
    pixels = np.asarray(resized).reshape(spec.height, spec.width, spec.channels)
    return pixels, (image.width / spec.width, image.height / spec.height)


def from_pixels(pixels: np.ndarray, spec: InputSpec, norm: Normalisation) -> np.ndarray:
    """Stacked `to_pixels` arrays (images, height, width, channels) as the model's input:
    normalised and in its layout, contiguous, in one pass for the batch."""
    array = _normalise(pixels, spec, norm)
    if spec.layout == "NCHW":
        array = array.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(array)


def stack(inputs: Sequence[np.ndarray]) -> np.ndarray:
    """Items from `to_input` as one contiguous batch."""
    return np.ascontiguousarray(np.stack(inputs))


def _normalise(pixels: np.ndarray, spec: InputSpec, norm: Normalisation) -> np.ndarray:
    """x' = (x * scale - mean) / std per channel; uint8 models take raw pixels."""
    if spec.dtype == "uint8":
        return pixels.astype(np.uint8)
    mean = _per_channel(norm.mean, spec.channels, "mean")
    std = _per_channel(norm.std, spec.channels, "std")
    values: np.ndarray = (pixels.astype(np.float32) * np.float32(norm.scale) - mean) / std
    if spec.dtype == "int8":
        rounded: np.ndarray = np.rint(values)
        return rounded.clip(-128, 127).astype(np.int8)
    return values.astype(spec.dtype, copy=False)


def _per_channel(values: list[float], channels: int, what: str) -> np.ndarray:
    if len(values) not in (1, channels):
        raise ApiError(422, "bad_normalisation",
                       f"the manifest's normalisation {what} has {len(values)} values for a "
                       f"{channels}-channel input", "give one value, or one per channel")
    return np.asarray(values, dtype=np.float32)


# The header numpy.save writes for a plain C-order numeric array. Parsed by this pattern, a
# request's tensor costs a few microseconds instead of np.load's ~40 (it runs the header
# through ast.literal_eval); anything else (Fortran order, structured dtypes) takes np.load.
_NPY_HEADER = re.compile(rb"\{'descr': '([<>|=]?[biuf][1248])', 'fortran_order': False, "
                         rb"'shape': \(([\d, ]*)\), \} *\n")


def load_npy(data: bytes) -> np.ndarray:
    """One array from .npy bytes; pickled objects are refused. Errors → 400 bad_tensor."""
    fast = _plain_npy(data)
    if fast is not None:
        return fast
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ApiError(400, "bad_tensor", f"the body is not a readable .npy array: {exc}",
                       "write it with numpy.save(); object arrays are not accepted") from None
    if not isinstance(array, np.ndarray):
        array.close()
        raise ApiError(400, "bad_tensor", "the body is an .npz archive, not one .npy array",
                       "send a single array written with numpy.save()")
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
    """Refuse a tensor whose dtype or shape the model input cannot take (422)."""
    expected = _ORT_DTYPES.get(model_input.type, model_input.type)
    if tensor.dtype != _NP_DTYPES.get(expected):  # a dtype compared, not named: µs per request
        raise ApiError(422, "wrong_dtype",
                       f"input {model_input.name!r} takes {expected}, the tensor is {tensor.dtype}",
                       f"cast it first, e.g. array.astype('{expected}')")
    shape = list(model_input.shape)
    if len(shape) != tensor.ndim or not all(_dim_fits(want, got) for want, got in
                                            zip(shape, tensor.shape, strict=True)):
        wanted = ", ".join(str(d) if isinstance(d, int) and d > 0 else str(d or "?") for d in shape)
        raise ApiError(422, "wrong_shape",
                       f"input {model_input.name!r} takes shape [{wanted}], the tensor is "
                       f"{list(tensor.shape)}", "named or ? dimensions take any size")


def _dim_fits(want: object, got: int) -> bool:
    """A fixed dimension must match; a symbolic (named or unknown) one takes any size."""
    return not (isinstance(want, int) and want > 0) or want == got
