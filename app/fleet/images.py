"""Folders of pictures as model input: found, prepared exactly as the agent prepares a request, labelled.

Labels come from the layout a technician already has: one sub-folder per class (`<label>/<image>`),
named like the model's labels, listed in a `labels.txt` beside them, or numbered as class indices.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL.Image import Image

from agent.toolkit.errors import Refusal
from agent.toolkit.images import IMAGE_SUFFIXES, decode_image, to_input
from agent.wire import InputSpec, Normalisation
from app.fleet.onnxmodel import QuantizeError

__all__ = [
    "IMAGE_SUFFIXES",
    "common_size",
    "folder_labels",
    "image_files",
    "listed_labels",
    "load_image",
    "spread",
]


def image_files(folder: Path, what: str = "image folder") -> list[Path]:
    """Every image under `folder`, recursively, in a stable order; `what` names the folder's role."""
    if not folder.is_dir():
        raise QuantizeError(f"{what} {folder} does not exist or is not a folder")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise QuantizeError(
            f"{what} {folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}); put "
            "typical input pictures there (a few hundred)"
        )
    return files


def load_image(path: Path, spec: InputSpec, norm: Normalisation) -> np.ndarray:
    """One image as a batch-of-1 input tensor, prepared as the kit prepares requests (the same code)."""
    tensor, _ = to_input(_opened(path), spec, norm)
    return np.ascontiguousarray(tensor[np.newaxis])


def common_size(files: Sequence[Path]) -> tuple[int, int] | None:
    """(height, width) shared by every image, upright as the camera meant it; None if they differ."""
    sizes = {_opened(path).size for path in files}
    if len(sizes) != 1:
        return None
    width, height = sizes.pop()
    return height, width


def _opened(path: Path) -> Image:
    try:
        return decode_image(path.read_bytes(), None)
    except Refusal as exc:
        raise QuantizeError(f"{path} is not a readable image ({exc.message}); replace or remove it") from None
    except OSError as exc:
        raise QuantizeError(f"cannot read {path}: {exc.strerror or exc}") from None


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
