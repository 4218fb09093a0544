"""Field dataset work for the window (label the picture tried, count classes, the unsure buffer,
start a fine-tune), run on the bridge's loop. While a kit is away, the unsure inputs its
receipts brought back (`app/fleet/receipts/unsure.py`) are listed, and labels given to them are
queued on the laptop and sent when the kit's inputs next load.

As the other sub-bridges: every method is called on the GUI thread and only submits a
coroutine; the coroutine runs on the loop thread (reading a file in a worker thread) and answers
with a signal carrying plain data. Pictures travel as bytes: QImage is made on the GUI thread.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from app.fleet.client import KitClient
from app.fleet.field_datasets import (
    FineTuneOptions,
    check_dataset,
    check_label,
    crop_picture,
    fine_tune_request,
    read_picture,
)
from app.fleet.receipts.unsure import UnsureCopies
from app.fleet.unsure_received import async_send_queued
from app.gui.bridges.base import BridgeHost, SubBridge

__all__ = ["THUMBNAILS", "FieldBridge"]

Box = tuple[float, float, float, float]  # x1, y1, x2, y2 in the picture's pixels
THUMBNAILS = 48  # kept inputs whose pictures are fetched for the panel, newest first


class FieldBridge(SubBridge):
    labelled = Signal(str, object)  # (device ID, LabelledImage)
    datasets_loaded = Signal(str, object)  # (device ID, list[DatasetInfo])
    classes_loaded = Signal(str, object)  # (device ID, FieldClasses)
    unsure_loaded = Signal(str, object)  # (device ID, list[UnsureItem], newest first)
    unsure_picture = Signal(str, str, bytes)  # (device ID, item ID, the picture's bytes)
    unsure_labelled = Signal(str, str, object)  # (device ID, item ID, LabelledImage)
    received_loaded = Signal(str, object)  # (device ID, list[ReceivedUnsure]): by receipt, newest first
    unsure_queued = Signal(str, str, object)  # (device ID, item ID, PendingLabel): sent when back
    fine_tune_submitted = Signal(str, object)  # (device ID, JobInfo)

    @classmethod
    def beside(cls, sibling: SubBridge) -> FieldBridge:
        """A field bridge on the same host (and loop) as `sibling`, going with it."""
        host: BridgeHost = sibling._host
        parent: QObject = sibling
        return cls(host, parent=parent)

    # called on the GUI thread ---------------------------------------------------------

    def label_file(
        self, device_id: str, dataset: str, label: str, path: Path, box: Box | None = None
    ) -> None:
        """Add the picture at `path` (or the part of it inside a detection's `box`) to `dataset`
        under `label` on the kit."""

        async def work() -> None:
            check_dataset(dataset)
            check_label(label)
            if box is None:
                image, kind = await asyncio.to_thread(read_picture, path)
            else:
                image, kind = await asyncio.to_thread(crop_picture, path, box)
            answer = await self._on_kit(device_id, lambda c: c.label_image(dataset, label, image, kind))
            self.labelled.emit(device_id, answer)

        self._submit("label", work())

    def load_datasets(self, device_id: str) -> None:
        async def work() -> None:
            self.datasets_loaded.emit(device_id, await self._on_kit(device_id, lambda c: c.datasets()))

        self._submit("field datasets", work())

    def load_classes(self, device_id: str, dataset: str) -> None:
        async def work() -> None:
            check_dataset(dataset)
            classes = await self._on_kit(device_id, lambda c: c.dataset_classes(dataset))
            self.classes_loaded.emit(device_id, classes)

        self._submit("field dataset", work())

    def load_unsure(self, device_id: str, model: str | None = None) -> None:
        """The kept inputs, then the pictures of the newest THUMBNAILS, one signal each."""

        async def work() -> None:
            copies = UnsureCopies(self.settings.home)
            for sent in await async_send_queued(self._host.fleet, self._kit(device_id), copies):
                self.labelled.emit(device_id, sent)  # labels given while the kit was away
            items = await self._on_kit(device_id, lambda c: c.unsure(model))
            self.unsure_loaded.emit(device_id, items)
            for item in items[:THUMBNAILS]:

                async def picture(c: KitClient, item_id: str = item.id) -> bytes:
                    return await c.unsure_image(item_id)

                self.unsure_picture.emit(device_id, item.id, await self._on_kit(device_id, picture))

        self._submit("unsure inputs", work())

    def load_received(self, device_id: str) -> None:
        """What the kit's receipts brought back (the kit is away), then their pictures."""

        async def work() -> None:
            held = await asyncio.to_thread(UnsureCopies(self.settings.home).held, device_id)
            self.received_loaded.emit(device_id, held)
            for received in held[:THUMBNAILS]:
                data = await asyncio.to_thread(received.image.read_bytes)
                self.unsure_picture.emit(device_id, received.item.id, data)

        self._submit("unsure inputs", work())

    def queue_label(self, device_id: str, item_id: str, dataset: str, label: str) -> None:
        """Label a received item while the kit is away: sent the next time its inputs load."""

        async def work() -> None:
            check_dataset(dataset)
            check_label(label)
            copies = UnsureCopies(self.settings.home)
            pending = await asyncio.to_thread(copies.queue_label, device_id, item_id, dataset, label)
            self.unsure_queued.emit(device_id, item_id, pending)

        self._submit("label", work())

    def label_unsure(self, device_id: str, item_id: str, dataset: str, label: str) -> None:
        async def work() -> None:
            check_dataset(dataset)
            check_label(label)
            moved = await self._on_kit(device_id, lambda c: c.label_unsure(item_id, dataset, label))
            self.unsure_labelled.emit(device_id, item_id, moved)

        self._submit("label", work())

    def delete_unsure(self, device_id: str, item_id: str) -> None:
        async def work() -> None:
            await self._on_kit(device_id, lambda c: c.delete_unsure(item_id))
            self.unsure_labelled.emit(device_id, item_id, None)

        self._submit("unsure inputs", work())

    def fine_tune(self, device_id: str, options: FineTuneOptions, threads: int = 1) -> None:
        """Submit a fine-tune job (its request checked here, before anything is sent)."""

        async def work() -> None:
            request = fine_tune_request(options, threads)
            job, _ = await self._on_kit(device_id, lambda c: c.submit_job(request))
            self.fine_tune_submitted.emit(device_id, job)

        self._submit("fine-tune", work())
