"""What a stream job keeps on the kit, each bounded however long it runs.

Detections go to `results.jsonl` and counts per label per interval to `results.csv`; past
their share of the job's result budget each becomes `results.1.*` (replacing the older one)
and starts afresh. Snapshots (annotated frames with detections) keep the newest N.
"""

from __future__ import annotations

import functools
import io
import time
from collections import Counter
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

__all__ = ["Counts", "Rotating", "Snapshots", "annotate"]

COUNTS_HEADER = "start,end,frames,label,detections,max_per_frame\n"
MIN_SIDE = 320  # small frames are enlarged before drawing, so labels stay readable
# the desktop window's palette (app/gui/charts/picture.py), so a label has one colour everywhere
COLOURS = ((214, 39, 40), (31, 119, 180), (44, 160, 44), (148, 103, 189), (255, 127, 14), (140, 86, 75))


class Rotating:
    """A text file that, past `limit` bytes, is renamed to `rotated` and begun again."""

    def __init__(self, folder: Path, name: str, rotated: str, limit: int, header: str = "") -> None:
        self.path, self.rotated = folder / name, folder / rotated
        self.limit, self.header = max(limit, 4096), header
        self.rotations = 0
        self._open()

    def _open(self) -> None:
        self._handle = self.path.open("w", encoding="utf-8", newline="")
        self._size = self._handle.write(self.header)

    def write(self, text: str) -> None:
        if self._size + len(text) > self.limit:
            self._handle.close()
            self.path.replace(self.rotated)
            self.rotations += 1
            self._open()
        self._size += self._handle.write(text)

    def flush(self) -> None:
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()


class Counts:
    """Detections per label, per interval of wall-clock time; a row per label when one closes."""

    def __init__(self, out: Rotating | None, interval_s: float) -> None:
        self.out, self.interval_s = out, interval_s
        self.totals: Counter[str] = Counter()
        self.current: Counter[str] = Counter()
        self._most: Counter[str] = Counter()
        self._frames = 0
        self._start = time.time()

    def roll(self, now: float) -> None:
        """Close the interval if its time is up (called on each frame, and while none come)."""
        if now - self._start >= self.interval_s:
            self.close(now)

    def add(self, labels: list[str], now: float) -> None:
        self.roll(now)
        seen = Counter(labels)
        self.current.update(seen)
        self.totals.update(seen)
        self._frames += 1
        for label, count in seen.items():
            self._most[label] = max(self._most[label], count)

    def close(self, now: float) -> None:
        """Write the interval that ends now (a row per label seen) and begin the next."""
        if self.out is not None and self._frames:
            start, end = _stamp(self._start), _stamp(now)
            for label, count in sorted(self.current.items()):
                self.out.write(f"{start},{end},{self._frames},{label},{count},{self._most[label]}\n")
        self.current, self._most, self._frames = Counter(), Counter(), 0
        self._start = now


class Snapshots:
    """Annotated frames with detections: one per `gap_s` at most, the newest `limit` kept."""

    def __init__(self, folder: Path, limit: int, gap_s: float = 1.0) -> None:
        self.folder, self.limit, self.gap_s = folder, limit, gap_s
        self.saved = 0
        self._names: list[Path] = []
        self._last = 0.0
        if limit:
            folder.mkdir(parents=True, exist_ok=True)

    def due(self, now: float) -> bool:
        return self.limit > 0 and now - self._last >= self.gap_s

    def save(self, jpeg: bytes, seq: int, now: float) -> None:
        path = self.folder / f"{seq:09d}-{time.strftime('%Y%m%dT%H%M%S', time.localtime(now))}.jpg"
        path.write_bytes(jpeg)
        self._names.append(path)
        self._last, self.saved = now, self.saved + 1
        while len(self._names) > self.limit:
            self._names.pop(0).unlink(missing_ok=True)


def annotate(image: Image.Image, detections: list[dict[str, Any]], quality: int = 80) -> bytes:
    """The frame with each detection's box and label drawn on it, as JPEG bytes."""
    factor = max(1, -(-MIN_SIDE // max(image.width, image.height)))
    picture = image.convert("RGB")
    if factor > 1:
        picture = picture.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(picture)
    font = _font(max(11, picture.height // 30))
    for detection in detections:
        colour = COLOURS[int(detection.get("index", 0)) % len(COLOURS)]
        x1, y1, x2, y2 = (v * factor for v in detection["box"])
        draw.rectangle((x1, y1, x2, y2), outline=colour, width=2)
        text = f"{detection['label']} {detection['score']:.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        tag_y = y1 - (bottom - top) - 4 if y1 >= bottom - top + 4 else y1  # above the box if it fits
        draw.rectangle((x1, tag_y, x1 + right - left + 6, tag_y + bottom - top + 4), fill=colour)
        draw.text((x1 + 3 - left, tag_y + 2 - top), text, fill="white", font=font)
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=quality)
    return out.getvalue()


@functools.cache
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size)


def _stamp(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(ts))
