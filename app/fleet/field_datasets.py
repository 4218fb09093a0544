"""Field datasets from the app: label pictures into a dataset on a kit, see its classes, work
through what a model was unsure about, and start a fine-tune on what was labelled.

Local files are checked before a byte is sent (a picture the kit's jobs read, not larger than
the kit takes); the kit checks them again, as it checks everything that arrives.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.wire import NAME_PATTERN, JobInfo, JobRequest
from agent.wire.field_datasets import LABEL_PATTERN, FieldClasses, LabelledImage, UnsureItem
from app.fleet.client._field import MAX_IMAGE
from app.fleet.errors import Error
from app.fleet.inventory import Kit
from app.fleet.jobs import async_explained
from app.fleet.service import Fleet

__all__ = [
    "FineTuneOptions",
    "async_classes",
    "async_fine_tune",
    "async_label_bytes",
    "async_label_files",
    "async_label_unsure",
    "async_unsure",
    "async_unsure_image",
    "check_dataset",
    "check_label",
    "crop_picture",
    "fine_tune_request",
]

_KINDS = {".jpg": "jpg", ".jpeg": "jpg", ".png": "png", ".bmp": "bmp", ".webp": "webp"}


def check_dataset(name: str) -> str:
    if not re.fullmatch(NAME_PATTERN, name):
        raise Error(
            f"{name!r} is not a dataset name: use lower-case letters, digits, '-' and '_' "
            "(at most 64, starting with a letter or digit)"
        )
    return name


def check_label(label: str) -> str:
    if not re.fullmatch(LABEL_PATTERN, label):
        raise Error(
            f"{label!r} is not a label: use letters, digits, '.', '-' and '_', starting with a "
            "letter or digit, at most 64 (it becomes a folder name on the kit)"
        )
    return label


def read_picture(path: Path) -> tuple[bytes, str]:
    """A local picture's bytes and kind, refused before sending when the kit would refuse it."""
    kind = _KINDS.get(path.suffix.lower())
    if kind is None:
        raise Error(f"{path}: not a JPEG, PNG, BMP or WebP file (the kinds the kit's jobs read)")
    try:
        size = path.stat().st_size
        if size > MAX_IMAGE:
            raise Error(f"{path}: {size >> 20} MiB is more than the {MAX_IMAGE >> 20} MiB a kit takes")
        return path.read_bytes(), kind
    except OSError as exc:
        raise Error(f"{path}: cannot be read ({exc.strerror or exc})") from None


def crop_picture(path: Path, box: tuple[float, float, float, float]) -> tuple[bytes, str]:
    """The part of a local picture inside a detection's box (x1, y1, x2, y2 in its pixels), as PNG."""
    import io

    from PIL import Image

    read_picture(path)  # the same checks as the whole picture
    try:
        with Image.open(path) as image:
            left, top = max(0, int(box[0])), max(0, int(box[1]))
            right, bottom = min(image.width, round(box[2])), min(image.height, round(box[3]))
            if right - left < 2 or bottom - top < 2:
                raise Error(f"{path}: the box {box} holds no picture to keep")
            out = io.BytesIO()
            image.crop((left, top, right, bottom)).convert("RGB").save(out, "PNG")
    except OSError as exc:
        raise Error(f"{path}: cannot be read as a picture ({exc})") from None
    return out.getvalue(), "png"


async def async_label_bytes(
    fleet: Fleet, kit: Kit, dataset: str, label: str, image: bytes, kind: str = "jpg"
) -> LabelledImage:
    check_dataset(dataset)
    check_label(label)
    if len(image) > MAX_IMAGE:
        raise Error(f"the picture is more than the {MAX_IMAGE >> 20} MiB a kit takes")
    return await async_explained(fleet, kit, lambda c: c.label_image(dataset, label, image, kind))


async def async_label_files(
    fleet: Fleet,
    kit: Kit,
    dataset: str,
    label: str,
    paths: list[Path],
    done: Callable[[Path, LabelledImage], None] | None = None,
) -> list[LabelledImage]:
    """Label each file in turn (all are read and checked first: a bad one sends none)."""
    check_dataset(dataset)
    check_label(label)
    pictures = [(path, *read_picture(path)) for path in paths]
    answers = []
    for path, image, kind in pictures:
        answer = await async_label_bytes(fleet, kit, dataset, label, image, kind)
        answers.append(answer)
        if done is not None:
            done(path, answer)
    return answers


async def async_classes(fleet: Fleet, kit: Kit, dataset: str) -> FieldClasses:
    check_dataset(dataset)
    return await async_explained(fleet, kit, lambda c: c.dataset_classes(dataset))


async def async_unsure(fleet: Fleet, kit: Kit, model: str | None = None) -> list[UnsureItem]:
    if model is not None:
        check_dataset(model)  # a model's name follows the same rule
    return await async_explained(fleet, kit, lambda c: c.unsure(model))


async def async_unsure_image(fleet: Fleet, kit: Kit, item_id: str) -> bytes:
    return await async_explained(fleet, kit, lambda c: c.unsure_image(_item_id(item_id)))


async def async_label_unsure(fleet: Fleet, kit: Kit, item_id: str, dataset: str, label: str) -> LabelledImage:
    check_dataset(dataset)
    check_label(label)
    return await async_explained(fleet, kit, lambda c: c.label_unsure(_item_id(item_id), dataset, label))


@dataclass
class FineTuneOptions:
    """The fine-tune job's parameters (the job kind's contract); None leaves the kit's default."""

    model: str
    dataset: str
    version: str | None = None
    activate: bool = False
    extra: dict[str, Any] = field(default_factory=dict)  # val_fraction, l2, epochs, seed, …


def fine_tune_request(options: FineTuneOptions, threads: int = 1) -> JobRequest:
    check_dataset(options.dataset)
    params: dict[str, Any] = {"model": options.model, "dataset": options.dataset, **options.extra}
    if options.version:
        params["version"] = options.version
    if options.activate:
        params["activate"] = True
    body = {"kind": "fine-tune", "params": params, "resources": {"threads": threads}}
    try:
        return JobRequest.model_validate(body)
    except ValueError as exc:
        raise Error(f"the fine-tune job is not valid: {exc}") from None


async def async_fine_tune(fleet: Fleet, kit: Kit, options: FineTuneOptions) -> JobInfo:
    request = fine_tune_request(options)
    job, _ = await async_explained(fleet, kit, lambda c: c.submit_job(request))
    return job


def _item_id(item_id: str) -> str:
    if not re.fullmatch(r"[0-9a-f]{24}", item_id):
        raise Error(f"{item_id!r} is not a kept input's ID: `kitfleet unsure list KIT` shows them")
    return item_id
