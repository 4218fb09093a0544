"""Pictures as model input, prepared the same way on the kit (requests, jobs) and the laptop
(quantization calibration, reports): decoded with a pixel bound, turned upright, resized,
normalised per channel and laid out as the model's input says.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageOps

from agent.toolkit.errors import BadInput, Invalid, Refusal, TooLarge, Unsupported
from agent.wire import InputSpec, Normalisation

__all__ = [
    "IMAGE_SUFFIXES",
    "IMAGE_TYPES",
    "MAX_PIXELS",
    "PAD_VALUE",
    "Placement",
    "decode_image",
    "from_pixels",
    "letterbox_geometry",
    "media_type",
    "stack",
    "to_input",
    "to_pixels",
    "to_tensor",
]

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp"})
_UNDECLARED = {None, "application/octet-stream"}
IMAGE_TYPES = {
    "image/jpeg": "JPEG",
    "image/jpg": "JPEG",
    "image/png": "PNG",
    "image/bmp": "BMP",
    "image/x-ms-bmp": "BMP",
    "image/webp": "WEBP",
}
MAX_PIXELS = 50_000_000  # a few KB of PNG can declare gigapixels: refuse before decoding
PAD_VALUE = 114  # Ultralytics' letterbox grey


class Placement(NamedTuple):
    """Where an image sits in the model's input, to map boxes back to the image's pixels:
    x_image = (x_input - pad_x) * scale_x, clipped to [0, width]; likewise y."""

    scale_x: float
    scale_y: float
    pad_x: float
    pad_y: float
    width: float
    height: float

    @classmethod
    def identity(cls, width: float, height: float) -> Placement:
        """A tensor sent as is: boxes stay in the input's pixels."""
        return cls(1.0, 1.0, 0.0, 0.0, float(width), float(height))


def media_type(content_type: str | None) -> str | None:
    """`image/png; charset=x` → `image/png`; None when nothing was declared."""
    if not content_type:
        return None
    return content_type.split(";", 1)[0].strip().lower() or None


def decode_image(data: bytes, content_type: str | None, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode JPEG/PNG/BMP/WebP bytes: Unsupported for other declared types, BadInput if corrupt,
    TooLarge if it has more than `max_pixels`. EXIF rotation is applied."""
    declared = media_type(content_type)
    if declared not in _UNDECLARED and declared not in IMAGE_TYPES:
        raise Unsupported(
            "unsupported_media_type",
            f"cannot read {declared} as an image",
            "send JPEG, PNG, BMP or WebP (image/jpeg, image/png, …), or a tensor as application/x-npy",
        )
    try:
        image = Image.open(io.BytesIO(data), formats=sorted(set(IMAGE_TYPES.values())))
        _check_pixels(image.size, max_pixels)
        image.load()
        # phone cameras store rotation as an EXIF tag; boxes must match the picture people see.
        # In place: otherwise every upright camera frame is copied whole for nothing.
        ImageOps.exif_transpose(image, in_place=True)
        return image
    except Refusal:
        raise
    except Image.DecompressionBombError:
        raise _too_many_pixels(max_pixels) from None
    except Exception:  # Pillow's decoders raise many types on corrupt data; none is our bug
        raise BadInput(
            "bad_image",
            "the body is not a readable image: its bytes are damaged or not a picture",
            "send a JPEG, PNG, BMP or WebP file that opens in an image viewer",
        ) from None


def _check_pixels(size: tuple[int, int], max_pixels: int) -> None:
    if size[0] * size[1] > max_pixels:
        raise _too_many_pixels(max_pixels)


def _too_many_pixels(max_pixels: int) -> TooLarge:
    return TooLarge(
        "image_too_large",
        f"the image has more than {max_pixels} pixels",
        "resize it before sending; the model sees a small input anyway",
    )


def to_tensor(
    images: Sequence[Image.Image], spec: InputSpec, norm: Normalisation
) -> tuple[np.ndarray, list[Placement]]:
    """Resize, normalise and stack images into the model's input; scales map boxes back.

    Each placement maps boxes in input pixels back to that image's pixels.
    """
    prepared = [to_pixels(image, spec) for image in images]
    pixels = np.stack([pixels for pixels, _ in prepared])
    return from_pixels(pixels, spec, norm), [scale for _, scale in prepared]


def to_input(image: Image.Image, spec: InputSpec, norm: Normalisation) -> tuple[np.ndarray, Placement]:
    """One image as one item of the model's input (in its layout), and its scale.

    Split from `to_tensor` so batch jobs can prepare images on decode threads and
    stack them later, with exactly the values a request would get.
    """
    pixels, scale = to_pixels(image, spec)
    return from_pixels(pixels[np.newaxis], spec, norm)[0], scale


def to_pixels(image: Image.Image, spec: InputSpec) -> tuple[np.ndarray, Placement]:
    """One image resized (or letterboxed) to the input, as (height, width, channels) pixels, and
    its placement: the part of `to_input` done per image; `from_pixels` does the rest for a batch."""
    mode = "RGB" if spec.channels == 3 else "L"
    converted = image if image.mode == mode else image.convert(mode)  # convert() would copy it whole
    if spec.letterbox:
        return _letterboxed(converted, spec)
    resized = converted.resize((spec.width, spec.height), Image.Resampling.BILINEAR)
    pixels = np.asarray(resized).reshape(spec.height, spec.width, spec.channels)
    scale_x, scale_y = image.width / spec.width, image.height / spec.height
    return pixels, Placement(scale_x, scale_y, 0.0, 0.0, float(image.width), float(image.height))


def letterbox_geometry(width: int, height: int, spec: InputSpec) -> tuple[int, int, int, int]:
    """(resized width, resized height, left pad, top pad) of a width x height image letterboxed
    into the input: one gain keeps the aspect, the grey bars are centred (Ultralytics' LetterBox:
    the odd pixel of an odd padding goes right and below)."""
    gain = min(spec.width / width, spec.height / height)
    new_width = min(spec.width, max(1, round(width * gain)))
    new_height = min(spec.height, max(1, round(height * gain)))
    left = round((spec.width - new_width) / 2 - 0.1)
    top = round((spec.height - new_height) / 2 - 0.1)
    return new_width, new_height, left, top


def _letterboxed(image: Image.Image, spec: InputSpec) -> tuple[np.ndarray, Placement]:
    """The image resized keeping its aspect, centred on grey. The placement removes the pad and
    divides by the gain, as Ultralytics' `scale_boxes` does, so boxes agree with the exporter's
    own pipeline (dividing by the rounded resized size instead would move them by < 0.5 px)."""
    new_width, new_height, left, top = letterbox_geometry(image.width, image.height, spec)
    resized = image.resize((new_width, new_height), Image.Resampling.BILINEAR)
    pixels = np.full((spec.height, spec.width, spec.channels), PAD_VALUE, dtype=np.uint8)
    pixels[top : top + new_height, left : left + new_width] = np.asarray(resized).reshape(
        new_height, new_width, spec.channels
    )
    scale = 1 / min(spec.width / image.width, spec.height / image.height)
    return pixels, Placement(scale, scale, float(left), float(top), image.width, image.height)


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
        raise Invalid(
            "bad_normalisation",
            f"the manifest's normalisation {what} has {len(values)} values for a {channels}-channel input",
            "give one value, or one per channel",
        )
    return np.asarray(values, dtype=np.float32)
