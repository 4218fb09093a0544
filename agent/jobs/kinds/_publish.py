"""The live view and snapshots of a stream job, written off the inference thread.

Drawing boxes and encoding JPEG cost more than the shapes detector itself, so a thread
does it about ten times a second for the latest frame only; the inference loop just hands
over a reference (never a copy, never a queue). The thread does it right after a result is
handed over, when the inference thread has just finished a frame and waits for the next:
at a camera's pace the work then falls in the gap between frames instead of slowing one's
answer (benchmarks/stream.py: a third of the slowest answers overlapped it on a timer).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image

from agent.jobs.kinds._keep import Snapshots, annotate
from agent.jobs.live import LIVE_JPEG, LIVE_JSON, publish

__all__ = ["Publisher"]

PERIOD_S = 0.1
RECENT_FRAMES = 64  # results of the latest frames in live.json: what a viewer polling at 10 Hz sees

_Latest = tuple[Image.Image, dict[str, Any]]


class Publisher(threading.Thread):
    def __init__(
        self,
        folder: Path,
        header: dict[str, Any],
        stats: Callable[[], dict[str, Any]],
        snapshots: Snapshots | None,
    ) -> None:
        super().__init__(name="publish", daemon=True)
        self.folder, self.header, self.stats, self.snapshots = folder, header, stats, snapshots
        self._lock = threading.Lock()
        self._recent: deque[dict[str, Any]] = deque(maxlen=RECENT_FRAMES)
        self._latest: _Latest | None = None
        self._hit: _Latest | None = None  # the latest frame with detections, for a snapshot
        self._done = threading.Event()
        self._offered = threading.Event()  # a result came since the thread last looked
        self.state = "running"

    def offer(self, image: Image.Image, record: dict[str, Any]) -> None:
        with self._lock:
            self._recent.append(record)
            self._latest = (image, record)
            if record.get("detections"):
                self._hit = (image, record)
        self._offered.set()

    def run(self) -> None:
        published = time.monotonic()
        while not self._done.wait(max(0.0, published + PERIOD_S - time.monotonic())):
            self._offered.clear()
            self._offered.wait(PERIOD_S)  # the next result; a quiet source's stats go out anyway
            if self._done.is_set():
                return
            published = time.monotonic()
            self.publish()

    def finish(self, state: str) -> None:
        """Stop the thread and write the last state (ended, failed) for viewers."""
        self._done.set()
        self._offered.set()
        if self.is_alive():
            self.join(5)
        self.state = state
        self.publish()

    def publish(self) -> None:
        with self._lock:
            latest, hit, recent = self._latest, self._hit, list(self._recent)
            self._latest = self._hit = None
        if latest is not None:
            jpeg = annotate(latest[0], latest[1].get("detections", []))
            publish(self.folder, LIVE_JPEG, jpeg)
            self._snapshot(hit, jpeg if hit is latest else None)
        document = {**self.header, "state": self.state, "stats": self.stats(), "frames": recent}
        publish(self.folder, LIVE_JSON, json.dumps(document).encode())

    def _snapshot(self, hit: _Latest | None, jpeg: bytes | None) -> None:
        now = time.time()
        if hit is None or self.snapshots is None or not self.snapshots.due(now):
            return
        self.snapshots.save(jpeg or annotate(hit[0], hit[1]["detections"]), int(hit[1]["seq"]), now)
