"""Run a picture or tensor through a kit's serving model: the one path the CLI and the window share.

The input is read and checked here (what it is, that it can be read, that it is not larger than a
kit takes), sent through the pinned client, and the answer comes back as one `InferAnswer`: the
kit's JSON result, or a raw model's outputs with their names, shapes and dtypes.
"""

from __future__ import annotations

import asyncio
import io
import mimetypes
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agent.wire import InferResult
from app.fleet.client import RawOutputs
from app.fleet.errors import Error
from app.fleet.inventory import Kit
from app.fleet.service import Fleet

__all__ = [
    "MAX_INPUT_BYTES",
    "InferAnswer",
    "InputError",
    "OutputShape",
    "async_infer",
    "npz_outputs",
    "read_input",
]

MAX_INPUT_BYTES = 32 << 20  # a kit's default max_infer_bytes: larger is refused there anyway


class InputError(Error):
    """The input file cannot be sent: wrong kind, unreadable, too large."""


@dataclass(frozen=True)
class OutputShape:
    name: str
    shape: tuple[int, ...]
    dtype: str


@dataclass(frozen=True)
class InferAnswer:
    """The bytes sent, and the kit's answer: its JSON result, or a raw model's outputs."""

    payload: bytes
    result: InferResult | None
    outputs: tuple[OutputShape, ...] = ()
    raw: RawOutputs | None = None  # the .npz a raw model answered, to save


def read_input(path: Path) -> tuple[bytes, str]:
    """The bytes of an image or .npy tensor, and the content type the agent expects for it."""
    if not path.is_file():
        raise InputError(f"{path} does not exist or is not a file")
    if path.suffix.lower() == ".npy":
        content_type = "application/x-npy"
    else:
        content_type = mimetypes.guess_type(path.name)[0] or ""
        if not content_type.startswith("image/"):
            raise InputError(f"{path.name}: give a JPEG, PNG, BMP or WebP image, or a .npy tensor")
    try:
        size = path.stat().st_size
        if size > MAX_INPUT_BYTES:
            raise InputError(
                f"{path.name} has {size} bytes; a kit takes at most {MAX_INPUT_BYTES} "
                "(resize the picture first)"
            )
        return path.read_bytes(), content_type
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None


def npz_outputs(data: bytes) -> tuple[OutputShape, ...]:
    """Name, shape and dtype of each array in a raw model's .npz answer."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            return tuple(
                OutputShape(name, tuple(int(d) for d in arrays[name].shape), str(arrays[name].dtype))
                for name in arrays.files
            )
    except (ValueError, OSError, EOFError) as exc:
        raise Error(f"the kit's answer is not a readable .npz ({exc})") from None


async def async_infer(
    fleet: Fleet, kit: Kit, model: str, given: tuple[bytes, str], version: str | None = None, top_k: int = 5
) -> InferAnswer:
    """An input (as `read_input` gives it) run through `model` on `kit` (its serving version,
    or `version`)."""
    payload, content_type = given
    answer = await fleet.async_call(kit, lambda c: c.infer(model, payload, content_type, version, top_k))
    if isinstance(answer, RawOutputs):
        outputs = await asyncio.to_thread(npz_outputs, answer.npz)
        return InferAnswer(payload, None, outputs, answer)
    return InferAnswer(payload, answer)
