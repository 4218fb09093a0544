"""A job's side of the unsure buffer (`agent/jobs/unsure.py`): judge each answer, and keep an
unsure input on a thread of its own, so the model never waits on the disk.

An input is kept as `<model>/<id>.<ext>` with its prediction in `<id>.json` (written last, so a
listed item is whole); the oldest go first past the job's `max_items` or `max_bytes`. A full or
failing disk stops the keeping, never the job.
"""

from __future__ import annotations

import io
import json
import queue
import secrets
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.jobs.unsure import MAX_KEPT_IMAGE, SUFFIXES, remove_item
from agent.models.store import check_name
from agent.toolkit.durable import write_atomic
from agent.wire.field_datasets import KeepUnsure, UnsureItem, UnsureScore

__all__ = ["Keeper", "unsure_scores"]

MIN_FREE = 64 << 20  # the buffer never takes the kit's last free space
QUEUED = 32  # inputs waiting for the keeper's thread to write them
_Judged = tuple[float, "float | None"]
_Work = tuple[Callable[[], tuple[bytes, str]], list[dict[str, Any]], _Judged, str, float]


def unsure_scores(classes: list[dict[str, Any]], keep: KeepUnsure) -> tuple[float, float | None] | None:
    """(top score, margin to the second) when the answer counts as unsure, else None."""
    if not classes:
        return None
    scores = sorted((float(c["score"]) for c in classes), reverse=True)
    top = scores[0]
    margin = top - scores[1] if len(scores) > 1 else None
    low = keep.top_below is not None and top < keep.top_below
    close = keep.margin_below is not None and margin is not None and margin < keep.margin_below
    return (top, margin) if low or close else None


def new_id(stamp_us: int) -> str:
    """13 hex digits of microseconds, then 44 random bits: ids sort oldest first."""
    return f"{stamp_us:013x}{secrets.token_hex(6)[:11]}"


@dataclass
class _Kept:
    id: str
    size: int


@dataclass
class Keeper:
    """One job's door into the buffer of its model."""

    folder: Path
    keep: KeepUnsure
    model: str
    version: str
    job_id: str | None
    kept: int = 0
    stopped: str | None = None  # why nothing more is kept (a full disk), for the job's summary
    _items: list[_Kept] = field(default_factory=list)
    dropped: int = 0  # unsure inputs offered while the disk was behind
    _last: float = 0.0
    _stamp: int = 0
    _queue: queue.Queue[_Work | None] = field(default_factory=lambda: queue.Queue(QUEUED))
    _thread: threading.Thread | None = None

    @classmethod
    def of(cls, spec: dict[str, Any]) -> Keeper | None:
        """The keeper a job spec asks for, or None."""
        wanted = spec["params"].get("keep_unsure")
        if wanted is None or "unsure" not in spec:
            return None
        manifest = spec["model"]["manifest"]
        folder = Path(spec["unsure"]) / check_name(manifest["name"])
        folder.mkdir(parents=True, exist_ok=True)
        keeper = cls(
            folder,
            KeepUnsure.model_validate(wanted),
            manifest["name"],
            manifest["version"],
            spec.get("job_id"),
        )
        keeper._items = _on_disk(folder)
        return keeper

    def offer_file(self, path: Path, classes: list[dict[str, Any]], source: str) -> bool:
        """Keep an input file (batch-infer) if the answer was unsure."""
        suffix = SUFFIXES.get(path.suffix.lower())
        judged = unsure_scores(classes, self.keep)
        if judged is None or suffix is None or path.stat().st_size > MAX_KEPT_IMAGE:
            return False
        return self._enqueue(lambda: (path.read_bytes(), suffix), classes, judged, source)

    def offer_image(self, image: Any, classes: list[dict[str, Any]], source: str) -> bool:
        """Keep a decoded frame (stream), as a JPEG, if the answer was unsure."""
        judged = unsure_scores(classes, self.keep)
        if judged is None:
            return False
        return self._enqueue(lambda: (_jpeg(image), "jpg"), classes, judged, source)

    def close(self) -> None:
        """Wait for the inputs offered so far to be written (at the job's end)."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def _enqueue(
        self,
        produce: Callable[[], tuple[bytes, str]],
        classes: list[dict[str, Any]],
        judged: _Judged,
        source: str,
    ) -> bool:
        """Hand the writing to the keeper's thread: the model never waits on the disk; when the
        disk falls behind, inputs are dropped (counted), not queued without bound."""
        now = time.time()
        if self.stopped or now - self._last < self.keep.min_gap_s:
            return False
        if self._thread is None:
            self._thread = threading.Thread(target=self._write_all, name="unsure-keeper", daemon=True)
            self._thread.start()
        try:
            self._queue.put_nowait((produce, classes, judged, source, now))
        except queue.Full:
            self.dropped += 1
            return False
        self._last = now
        return True

    def _write_all(self) -> None:
        while (work := self._queue.get()) is not None:
            produce, classes, judged, source, now = work
            if self.stopped:
                continue
            try:
                data, suffix = produce()
            except OSError:  # the file went meanwhile: nothing to keep
                continue
            self._keep(data, suffix, classes, judged, source, now)

    def _keep(
        self,
        data: bytes,
        suffix: str,
        classes: list[dict[str, Any]],
        judged: _Judged,
        source: str,
        now: float,
    ) -> None:
        if len(data) > self.keep.max_bytes:
            return
        if shutil.disk_usage(self.folder).free < MIN_FREE + len(data):
            self.stopped = f"the kit's disk has less than {MIN_FREE >> 20} MiB free"
            return
        self._stamp = max(int(now * 1e6), self._stamp + 1)  # strictly increasing within a job
        item = UnsureItem(
            id=new_id(self._stamp),
            model=self.model,
            version=self.version,
            job_id=self.job_id,
            source=source[:300],
            kept_at=now,
            top=round(judged[0], 4),
            margin=None if judged[1] is None else round(judged[1], 4),
            classes=[
                UnsureScore(label=str(c["label"]), score=round(float(c["score"]), 4)) for c in classes[:5]
            ],
            size=len(data),
        )
        try:
            write_atomic(self.folder / f"{item.id}.{suffix}", data, 0o644)
            write_atomic(self.folder / f"{item.id}.json", item.model_dump_json().encode(), 0o644)
        except OSError as exc:  # a full or failing disk stops the keeping, never the job
            remove_item(self.folder, item.id)
            self.stopped = f"could not keep an input: {exc.strerror or exc}"
            return
        self._items.append(_Kept(item.id, len(data)))
        self.kept += 1
        self._evict()

    def summary(self) -> dict[str, Any]:
        """What the job's result says of its keeping."""
        self.close()
        return {
            "unsure_kept": self.kept,
            **({"unsure_dropped": self.dropped} if self.dropped else {}),
            **({"unsure_stopped": self.stopped} if self.stopped else {}),
        }

    def _evict(self) -> None:
        total = sum(k.size for k in self._items)
        while self._items and (len(self._items) > self.keep.max_items or total > self.keep.max_bytes):
            oldest = self._items.pop(0)
            total -= oldest.size
            remove_item(self.folder, oldest.id)


def _jpeg(image: Any) -> bytes:
    out = io.BytesIO()
    image.convert("RGB").save(out, "JPEG", quality=90)
    return out.getvalue()


def _on_disk(folder: Path) -> list[_Kept]:
    kept = []
    for meta in sorted(folder.glob("*.json")):
        try:
            kept.append(_Kept(meta.stem, int(json.loads(meta.read_text())["size"])))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return kept
