"""Folders of pictures as model input: found, prepared exactly as the agent prepares a request, labelled.

Labels come from the layout a technician already has: one sub-folder per class (`<label>/<image>`),
named like the model's labels, listed in a `labels.txt` beside them, or numbered as class indices.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from agent.api.schemas import InputSpec, Normalisation
from app.fleet.onnxmodel import QuantizeError

__all__ = ["IMAGE_SUFFIXES", "common_size", "folder_labels", "image_files", "listed_labels", "load_image",
           "spread"]

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp"})


def image_files(folder: Path, what: str = "image folder") -> list[Path]:
    """Every image under `folder`, recursively, in a stable order; `what` names the folder's role."""
    if not folder.is_dir():
        raise QuantizeError(f"{what} {folder} does not exist or is not a folder")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise QuantizeError(f"{what} {folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}); put "
                            "typical input pictures there (a few hundred)")
    return files


def load_image(path: Path, spec: InputSpec, norm: Normalisation) -> np.ndarray:
    """One image as a batch-of-1 input tensor, prepared the way the agent prepares requests."""
    image = _opened(path)
    resized = image.convert("RGB" if spec.channels == 3 else "L").resize(
        (spec.width, spec.height), Image.Resampling.BILINEAR)
    pixels = np.asarray(resized).reshape(spec.height, spec.width, spec.channels)
    tensor = _normalise(pixels, spec, norm)
    if spec.layout == "NCHW":
        tensor = tensor.transpose(2, 0, 1)
    return np.ascontiguousarray(tensor[np.newaxis])


def common_size(files: Sequence[Path]) -> tuple[int, int] | None:
    """(height, width) shared by every image, upright as the camera meant it; None if they differ."""
    sizes = {_opened(path).size for path in files}
    if len(sizes) != 1:
        return None
    width, height = sizes.pop()
    return height, width


def _opened(path: Path) -> Image.Image:
    try:
        with Image.open(path) as opened:
            opened.load()
            return ImageOps.exif_transpose(opened)
    except Exception as exc:  # Pillow's decoders raise many types on corrupt data
        raise QuantizeError(f"{path} is not a readable image ({type(exc).__name__}); replace or remove "
                            "it") from None


def _normalise(pixels: np.ndarray, spec: InputSpec, norm: Normalisation) -> np.ndarray:
    """x' = (x * scale - mean) / std per channel, as agent/models/preprocess.py does."""
    if spec.dtype == "uint8":
        return pixels.astype(np.uint8)
    mean = np.asarray(norm.mean, dtype=np.float32)
    std = np.asarray(norm.std, dtype=np.float32)
    values: np.ndarray = (pixels.astype(np.float32) * np.float32(norm.scale) - mean) / std
    if spec.dtype == "int8":
        rounded: np.ndarray = np.rint(values)
        return rounded.clip(-128, 127).astype(np.int8)
    return values.astype(spec.dtype)


def folder_labels(folder: Path, files: Sequence[Path], labels: Sequence[str]) -> list[int] | None:
    """Class indices from a folder-per-label layout (`<label>/<image>`), or None if not labelled."""
    parts = [f.relative_to(folder).parts for f in files]
    if any(len(p) != 2 for p in parts):
        return None
    names = [p[0] for p in parts]
    index = {label: i for i, label in enumerate(labels)}
    if index and all(name in index for name in names):
        return [index[name] for name in names]
    if all(name.isdigit() for name in names):
        return [int(name) for name in names]
    return None


def listed_labels(folder: Path) -> list[str]:
    """Class names from `labels.txt` (one a line) in an image folder, if it has one."""
    listed = folder / "labels.txt"
    if not listed.is_file():
        return []
    return [line.strip() for line in listed.read_text(encoding="utf-8").splitlines() if line.strip()]


def spread(files: Sequence[Path], limit: int) -> list[Path]:
    """At most `limit` files taken evenly across the sorted list, so every class folder is seen."""
    if len(files) <= limit:
        return list(files)
    return [files[i * len(files) // limit] for i in range(limit)]
