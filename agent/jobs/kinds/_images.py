"""Decode images on a thread while the model runs on the previous batch (pipelining)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.errors import ApiError
from agent.models.preprocess import decode_image

QUEUE_BATCHES = 2  # decoded batches waiting: bounds memory while keeping the model fed


@dataclass
class Item:
    path: Path
    image: Any  # a PIL image, or None when it could not be decoded
    error: str | None = None


def _decode(path: Path) -> Item:
    try:
        return Item(path, decode_image(path.read_bytes(), None))
    except ApiError as exc:
        return Item(path, None, exc.message)
    except OSError as exc:
        return Item(path, None, f"cannot read the file: {exc.strerror}")


def decoded_batches(paths: Sequence[Path], batch: int, decoders: int = 2) -> Iterator[list[Item]]:
    """Batches of decoded images, in order, produced one batch ahead by `decoders` threads
    (Pillow releases the GIL while it decodes, so they run beside the model)."""
    ready: queue.Queue[list[Item] | None] = queue.Queue(QUEUE_BATCHES)
    stop = threading.Event()

    def produce() -> None:
        try:
            with ThreadPoolExecutor(decoders, thread_name_prefix="decode") as pool:
                for start in range(0, len(paths), batch):
                    if stop.is_set():
                        return
                    ready.put(list(pool.map(_decode, paths[start:start + batch])))
        finally:
            ready.put(None)

    producer = threading.Thread(target=produce, name="decode", daemon=True)
    producer.start()
    try:
        while (items := ready.get()) is not None:
            yield items
    finally:
        stop.set()
