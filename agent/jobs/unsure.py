"""The unsure buffer: inputs a classifier was unsure about, kept on the kit for labelling.

Stream and batch-infer jobs given `keep_unsure` offer each answer to a `Keeper`
(`agent/jobs/kinds/_unsure.py`, in the job's process); an answer whose top score is below a
band, or whose top two scores are closer than a margin, is kept as
`<data_dir>/unsure/<model>/<id>.<ext>` with its prediction beside it in `<id>.json` (written
last, so a listed item is whole). Each model's items are bounded in count and bytes: the oldest
go first. The API lists, serves, labels (moves into a field dataset) and deletes them
(`UnsureBuffer`); `kept_after` reads them for a receipt (`agent/receipts/unsure.py`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from agent.errors import Invalid, NotFound
from agent.models.store import check_name
from agent.wire import Manifest
from agent.wire.field_datasets import UNSURE_ID_PATTERN, LabelledImage, UnsureItem

__all__ = [
    "MAX_KEPT_IMAGE",
    "SUFFIXES",
    "UNSURE",
    "UnsureBuffer",
    "kept_after",
    "remove_item",
    "unsure_folder",
]

UNSURE = "unsure"
MAX_KEPT_IMAGE = 16 << 20  # a larger input file is not copied into the buffer
SUFFIXES = {".jpg": "jpg", ".jpeg": "jpg", ".png": "png", ".bmp": "bmp", ".webp": "webp"}


def unsure_folder(manifest: Manifest, data_dir: Path) -> Path:
    """Where a job keeps what its model was unsure about; only a classifier has a top-2 to judge."""
    if manifest.task != "classification":
        raise Invalid(
            "unsure_needs_classifier",
            f"{manifest.name} is a {manifest.task} model; keep_unsure judges a classifier's scores",
            "leave keep_unsure out for this model",
        )
    return data_dir / UNSURE


class UnsureBuffer:
    """The kept items as the API sees them."""

    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir / UNSURE
        self.root.mkdir(parents=True, exist_ok=True)

    def list(self, model: str | None = None) -> list[UnsureItem]:
        """Items, newest first, of one model or of all."""
        folders = [self.root / check_name(model)] if model else _model_folders(self.root)
        items = [item for folder in folders for item in _items(folder)]
        return sorted(items, key=lambda i: i.id, reverse=True)

    def get(self, item_id: str) -> UnsureItem:
        return _read(self._meta(item_id))

    def image(self, item_id: str) -> Path:
        meta = self._meta(item_id)
        images = [p for p in meta.parent.glob(f"{item_id}.*") if p.suffix in SUFFIXES]
        if not images:
            raise _gone(item_id)
        return images[0]

    def take(self, item_id: str, label: Any) -> LabelledImage:
        """Hand the image to `label` (a FieldDatasets.add bound to a dataset and label), then
        forget it: it is in the dataset before it leaves the buffer."""
        labelled: LabelledImage = label(self.image(item_id).read_bytes())
        self.delete(item_id)
        return labelled

    def delete(self, item_id: str) -> None:
        meta = self._meta(item_id)
        remove_item(meta.parent, item_id)

    def _meta(self, item_id: str) -> Path:
        if re.fullmatch(UNSURE_ID_PATTERN, item_id):
            for folder in _model_folders(self.root):
                if (folder / f"{item_id}.json").is_file():
                    return folder / f"{item_id}.json"
        raise _gone(item_id)


def kept_after(data_dir: Path, after: str) -> list[tuple[UnsureItem, Path]]:
    """Every whole item with an id after `after` ('' : all), oldest first, with its image;
    read only (a receipt's export changes nothing on the kit)."""
    root = data_dir / UNSURE
    if not root.is_dir():
        return []
    found = []
    for folder in _model_folders(root):
        names = {p.stem: p for p in folder.iterdir() if p.suffix in SUFFIXES and p.stem > after}
        for stem in sorted(names):  # one listing of the folder, then only the items after `after`
            try:
                item = _read(folder / f"{stem}.json")
            except (OSError, ValueError):  # not whole yet, or not ours
                continue
            if item.id == stem and re.fullmatch(UNSURE_ID_PATTERN, stem) and item.model == folder.name:
                found.append((item, names[stem]))
    return sorted(found, key=lambda pair: pair[0].id)


def _model_folders(root: Path) -> list[Path]:
    return [
        p for p in sorted(root.iterdir()) if p.is_dir() and not p.is_symlink() and not p.name.startswith(".")
    ]


def _items(folder: Path) -> list[UnsureItem]:
    if not folder.is_dir():
        return []
    found = []
    for meta in folder.glob("*.json"):
        try:
            found.append(_read(meta))
        except (OSError, ValueError):  # a file not ours, or gone meanwhile: not listed
            continue
    return found


def _read(meta: Path) -> UnsureItem:
    return UnsureItem.model_validate(json.loads(meta.read_text()))


def remove_item(folder: Path, item_id: str) -> None:
    (folder / f"{item_id}.json").unlink(missing_ok=True)  # first: a listed item is always whole
    for path in folder.glob(f"{item_id}.*"):
        path.unlink(missing_ok=True)


def _gone(item_id: str) -> NotFound:
    return NotFound(
        "unsure_not_found",
        f"no kept input {item_id!r} on this kit",
        "it may have rotated out of the buffer; `kitfleet unsure list KIT` shows what is kept",
    )
