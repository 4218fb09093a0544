"""Field datasets: images labelled one at a time on the kit, kept as `<name>/<label>/<sha>.<ext>`.

They live beside uploaded datasets (`<data_dir>/datasets`), so every job that takes a
`dataset` (evaluate, fine-tune, batch-infer) reads them as it reads an upload. An image is
kept only after it decodes as an image of a sane size; each is named by its content, so the
same picture labelled twice is kept once, and written durably (no half file is ever seen).
"""

from __future__ import annotations

import hashlib
import io
import re
import shutil
import threading
from pathlib import Path

from agent.errors import Conflict, Invalid, NoRoom, NotFound, TooLarge
from agent.jobs.paths import DATASETS, IMAGE_SUFFIXES
from agent.models.store import check_name
from agent.toolkit.durable import fsync_path, write_atomic
from agent.wire.field_datasets import LABEL_PATTERN, ClassCount, FieldClasses, LabelledImage

__all__ = ["FieldDatasets", "check_label", "checked_image"]

MAX_IMAGE_BYTES = 16 << 20
MAX_SIDE = 8192
MAX_PIXELS = 40_000_000
MAX_CLASSES = 200
MAX_IMAGES = 20_000  # per dataset
_FORMATS = {"JPEG": "jpg", "PNG": "png", "BMP": "bmp", "WEBP": "webp"}  # what jobs read
_FILE = re.compile(r"^[0-9a-f]{16}\.(jpg|png|bmp|webp)$")


class FieldDatasets:
    def __init__(
        self,
        data_dir: Path,
        reserve_bytes: int = 0,
        max_image_bytes: int = MAX_IMAGE_BYTES,
        max_classes: int = MAX_CLASSES,
        max_images: int = MAX_IMAGES,
    ) -> None:
        self.root = data_dir / DATASETS
        self.root.mkdir(parents=True, exist_ok=True)
        self.reserve_bytes = reserve_bytes
        self.max_image_bytes, self.max_classes, self.max_images = max_image_bytes, max_classes, max_images
        self._lock = threading.Lock()  # the count check and the write, one addition at a time

    def admit(self, size: int) -> None:
        """Refuse a body larger than one image may be (413), before or while it is read."""
        if size > self.max_image_bytes:
            raise TooLarge(
                "image_too_large",
                f"the image is larger than {self.max_image_bytes >> 20} MiB",
                "send a smaller picture (a JPEG of the camera's frame is plenty)",
            )

    def add(self, name: str, label: str, data: bytes) -> LabelledImage:
        """Keep one labelled image (making the dataset and the class as needed)."""
        folder = self._folder(name, must_exist=False) / check_label(label)
        self.admit(len(data))
        suffix = checked_image(data)
        file = f"{hashlib.sha256(data).hexdigest()[:16]}.{suffix}"
        with self._lock:
            path = folder / file
            added = not path.exists()
            if added:
                self._room_for(name, folder, len(data))
                folder.mkdir(parents=True, exist_ok=True)
                fsync_path(folder.parent.parent)  # a new dataset's folder entry
                fsync_path(folder.parent)  # a new class's folder entry
                write_atomic(path, data, 0o644)
            return LabelledImage(
                dataset=name,
                label=label,
                file=f"{label}/{file}",
                size=len(data),
                added=added,
                images=len(_images(folder)),
            )

    def classes(self, name: str) -> FieldClasses:
        """Images per class: each sub-folder named as a label is a class."""
        folder = self._folder(name, must_exist=True)
        counts = [
            ClassCount(label=sub.name, images=len(_images(sub)))
            for sub in sorted(folder.iterdir())
            if _is_class(sub)
        ]
        return FieldClasses(dataset=name, classes=counts, images=sum(c.images for c in counts))

    def remove(self, name: str, label: str, file: str) -> None:
        """Take one labelled image out (a class left empty goes too)."""
        folder = self._folder(name, must_exist=True) / check_label(label)
        if not _FILE.fullmatch(file) or not (folder / file).is_file():
            raise NotFound(
                "image_not_found",
                f"no image {file!r} labelled {label!r} in dataset {name!r}",
                "`kitfleet datasets classes KIT DATASET` shows the classes",
            )
        with self._lock:
            (folder / file).unlink()
            fsync_path(folder)
            if not any(folder.iterdir()):
                folder.rmdir()
                fsync_path(folder.parent)

    def _folder(self, name: str, must_exist: bool) -> Path:
        folder = self.root / check_name(name)
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            raise Invalid("invalid_dataset", f"{name!r} is not a dataset folder", "use another name")
        if must_exist and not folder.is_dir():
            raise NotFound(
                "dataset_not_found",
                f"no dataset called {name!r} on this kit",
                "label an image into it first (`kitfleet datasets label`)",
            )
        return folder

    def _room_for(self, name: str, folder: Path, size: int) -> None:
        dataset = folder.parent
        classes = [sub for sub in dataset.iterdir() if _is_class(sub)] if dataset.is_dir() else []
        if not folder.is_dir() and len(classes) >= self.max_classes:
            raise Conflict(
                "too_many_classes",
                f"dataset {name!r} has {len(classes)} classes, the most a field dataset may have",
                "label into an existing class, or start another dataset",
            )
        if sum(len(_images(sub)) for sub in classes) >= self.max_images:
            raise Conflict(
                "dataset_full",
                f"dataset {name!r} holds {self.max_images} images, the most a field dataset may",
                "remove images you no longer need, or start another dataset",
            )
        free = shutil.disk_usage(self.root).free
        if free - size < self.reserve_bytes:
            raise NoRoom(
                "insufficient_storage",
                f"the kit has {free >> 20} MiB free, {self.reserve_bytes >> 20} MiB of it kept in reserve",
                "delete old datasets, jobs or model versions on the kit",
            )


def check_label(label: str) -> str:
    """A label that is safe as one folder name (no `..`, separator, space or control)."""
    if not re.fullmatch(LABEL_PATTERN, label):
        raise Invalid(
            "invalid_label",
            f"{label!r} is not a valid label",
            "use letters, digits, '.', '-' and '_', starting with a letter or digit, at most 64",
        )
    return label


def checked_image(data: bytes) -> str:
    """The file suffix of `data` when it decodes whole as a JPEG, PNG, BMP or WebP picture of
    sane dimensions; the header is judged before any pixel is decoded."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            kind, (width, height) = image.format or "", image.size
            if kind not in _FORMATS:
                raise _not_image(f"a {kind or 'unknown'} file")
            if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE and width * height <= MAX_PIXELS):
                raise Invalid(
                    "image_dimensions",
                    f"the image is {width}×{height}; at most {MAX_SIDE} a side, {MAX_PIXELS} pixels",
                    "send a smaller picture",
                )
            image.load()
    except Invalid:
        raise
    except Exception as exc:  # PIL raises many types for broken or hostile files
        raise _not_image(str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__) from None
    return _FORMATS[kind]


def _not_image(why: str) -> Invalid:
    return Invalid(
        "not_an_image",
        f"the body is not a readable JPEG, PNG, BMP or WebP image ({why})",
        "send the picture file itself as the body",
    )


def _is_class(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink() and re.fullmatch(LABEL_PATTERN, path.name) is not None


def _images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
