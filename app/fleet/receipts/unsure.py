"""Inputs a model was unsure about, brought back by receipt: kept on the laptop per kit and model.

`<home>/unsure/<device_id>/<model>/<id>.<kind>` with the prediction beside it in `<id>.json`
(written last, so a listed item is whole); every name was checked by the receipt's wire model
(`agent/wire/receipts.py`) and is checked again here before it becomes a path. An item is stored
once per id: a receipt received again, or the same item in two receipts, changes nothing.
Each kit's model keeps at most `MAX_ITEMS` items and `MAX_BYTES` bytes, each kit `MAX_KIT_ITEMS`
and `MAX_KIT_BYTES`; the oldest go first (never one labelled and waiting to be sent).

A received item labelled while its kit is away is queued (`<id>.label.json`: dataset and
label) and sent as a labelled image the next time the kit answers (`pending` / `sent`).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from agent.toolkit.durable import fsync_path, write_atomic
from agent.wire.field_datasets import UNSURE_ID_PATTERN, UnsureItem
from agent.wire.receipts import UNSURE_KINDS, ReceiptUnsure
from app.fleet.errors import Error

__all__ = [
    "MAX_BYTES",
    "MAX_ITEMS",
    "MAX_KIT_BYTES",
    "MAX_KIT_ITEMS",
    "PendingLabel",
    "ReceivedUnsure",
    "UnsureCopies",
]

FOLDER = "unsure"
MAX_ITEMS = 2_000  # per kit and model
MAX_BYTES = 512 << 20  # per kit and model
MAX_KIT_ITEMS = 10_000  # per kit, all its models
MAX_KIT_BYTES = 2 << 30
_DEVICE = re.compile(r"^[0-9a-f]{64}$")
_MODEL = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_LABEL = ".label.json"


@dataclass(frozen=True)
class ReceivedUnsure:
    item: UnsureItem
    image: Path
    queued: PendingLabel | None = None


@dataclass(frozen=True)
class PendingLabel:
    item_id: str
    dataset: str
    label: str


class UnsureCopies:
    """The received items of every kit, under the app's home."""

    def __init__(self, home: Path) -> None:
        self.root = home / FOLDER

    def add_all(self, device_id: str, carried: list[tuple[ReceiptUnsure, Path]]) -> int:
        """Store a receipt's items not held yet (each image moved from its path), then keep each
        model's folder within its bounds; returns how many were new. Per folder: the images
        are synced and moved in, the folder synced, then each prediction written and synced, and
        the folder synced again: a listed item always has its image, at two folder syncs per
        receipt rather than per item."""
        fresh: dict[Path, dict[str, tuple[ReceiptUnsure, Path]]] = {}
        for kept, image in carried:
            folder = self._folder(device_id, kept.item.model)
            item_id = _item_id(kept.item.id)
            if not (folder / f"{item_id}.json").is_file():
                fresh.setdefault(folder, {})[item_id] = (kept, image)
        for folder, items in fresh.items():
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            for item_id, (kept, image) in items.items():
                fsync_path(image)
                os.replace(image, folder / f"{item_id}.{kept.kind}")
            fsync_path(folder)
            for item_id, (kept, _) in items.items():
                _write_synced(folder / f"{item_id}.json", kept.item.model_dump_json().encode())
            fsync_path(folder)
            fsync_path(folder.parent)
            self._evict(folder)
        return sum(len(items) for items in fresh.values())

    def held(self, device_id: str, model: str | None = None) -> list[ReceivedUnsure]:
        """Received items of one kit, newest first."""
        base = self.root / _device(device_id)
        if not base.is_dir():
            return []
        folders = [base / _model(model)] if model else sorted(p for p in base.iterdir() if p.is_dir())
        found = [item for folder in folders for item in _items(folder)]
        return sorted(found, key=lambda r: r.item.id, reverse=True)

    def get(self, device_id: str, item_id: str) -> ReceivedUnsure | None:
        _item_id(item_id)
        return next((r for r in self.held(device_id) if r.item.id == item_id), None)

    def queue_label(self, device_id: str, item_id: str, dataset: str, label: str) -> PendingLabel:
        """Remember a label for a received item, to send when the kit answers again."""
        held = self.get(device_id, item_id)
        if held is None:
            raise Error(f"no received input {item_id!r} from this kit: `kitfleet unsure list KIT` shows them")
        pending = PendingLabel(item_id, dataset, label)
        body = json.dumps({"dataset": dataset, "label": label}).encode()
        write_atomic(held.image.parent / f"{item_id}{_LABEL}", body)
        return pending

    def pending(self, device_id: str) -> list[ReceivedUnsure]:
        """Received items labelled while the kit was away, oldest first."""
        return sorted((r for r in self.held(device_id) if r.queued), key=lambda r: r.item.id)

    def forget(self, device_id: str, item_id: str) -> None:
        """A received item now on the kit as a labelled image (or labelled there): drop the copy."""
        held = self.get(device_id, item_id)
        if held is None:
            return
        folder = held.image.parent
        (folder / f"{item_id}.json").unlink(missing_ok=True)  # first: a listed item is whole
        held.image.unlink(missing_ok=True)
        (folder / f"{item_id}{_LABEL}").unlink(missing_ok=True)

    def _folder(self, device_id: str, model: str) -> Path:
        return self.root / _device(device_id) / _model(model)

    def _evict(self, folder: Path) -> None:
        """The oldest items go past the bounds of the model, then of the kit; an item labelled
        while the kit was away stays until its label is sent (it is the technician's work)."""
        _drop_oldest(_items(folder), MAX_ITEMS, MAX_BYTES)
        kit = folder.parent
        held = [r for model in sorted(p for p in kit.iterdir() if p.is_dir()) for r in _items(model)]
        _drop_oldest(held, MAX_KIT_ITEMS, MAX_KIT_BYTES)


def _drop_oldest(items: list[ReceivedUnsure], count: int, size: int) -> None:
    held = sorted((r for r in items if r.queued is None), key=lambda r: r.item.id)
    total = sum(r.item.size for r in held)
    while held and (len(held) > count or total > size):
        oldest = held.pop(0)
        total -= oldest.item.size
        oldest.image.with_name(f"{oldest.item.id}.json").unlink(missing_ok=True)  # first: listed = whole
        oldest.image.unlink(missing_ok=True)


def _write_synced(path: Path, data: bytes) -> None:
    """Write beside `path`, fsync, rename over it (the caller syncs the folder once for all)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _items(folder: Path) -> list[ReceivedUnsure]:
    if not folder.is_dir():
        return []
    found = []
    for meta in folder.glob("*.json"):
        if meta.name.endswith(_LABEL):
            continue
        try:
            item = UnsureItem.model_validate_json(meta.read_bytes())
        except (OSError, ValueError):
            continue
        images = [folder / f"{item.id}.{k}" for k in UNSURE_KINDS if (folder / f"{item.id}.{k}").is_file()]
        if images and item.id == meta.stem:
            found.append(ReceivedUnsure(item, images[0], _queued(folder, item.id)))
    return found


def _queued(folder: Path, item_id: str) -> PendingLabel | None:
    try:
        body = json.loads((folder / f"{item_id}{_LABEL}").read_text())
        return PendingLabel(item_id, str(body["dataset"]), str(body["label"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _device(device_id: str) -> str:
    if not _DEVICE.match(device_id):
        raise Error(f"{device_id[:80]!r} is not a kit's device ID")
    return device_id


def _model(model: str) -> str:
    if not _MODEL.match(model):
        raise Error(f"{model[:80]!r} is not a model name")
    return model


def _item_id(item_id: str) -> str:
    if not re.fullmatch(UNSURE_ID_PATTERN, item_id):
        raise Error(f"{item_id[:80]!r} is not a kept input's ID: `kitfleet unsure list KIT` shows them")
    return item_id
