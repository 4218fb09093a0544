"""Each kit's last-known state: latest sample, models and jobs, with when the kit said so.

Saved on every poll the kit answers, read back whenever it does not, so every view can show
a kit that is away as it was last seen, marked with the age of what it shows.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from pydantic import BaseModel, Field

from agent.wire import JobInfo, MetricSample, ModelInfo
from app.fleet.inventory import Inventory
from app.fleet.sqlite_lib import sqlite_utils

__all__ = ["JOBS_KEPT", "KitSnapshot", "Snapshots", "Tags", "parse_tags"]

JOBS_KEPT = 50  # the newest jobs of each kit kept for views and the report
WRITE_EVERY_S = 60.0


class KitSnapshot(BaseModel):
    device_id: str
    taken_at: float = Field(description="laptop time when the kit answered these")
    sample: MetricSample | None = None
    models: list[ModelInfo] = Field(default_factory=list)
    jobs: list[JobInfo] = Field(default_factory=list, description="newest first")

    def count_jobs(self, state: str) -> int:
        return sum(job.state == state for job in self.jobs)

    def failures_since(self, ts: float) -> list[JobInfo]:
        return [
            j
            for j in self.jobs
            if j.state in ("failed", "interrupted") and (j.finished_at or j.updated_at) >= ts
        ]

    def active_models(self) -> list[str]:
        return [f"{m.name} {m.active_version}" for m in self.models if m.active_version]

    def age(self, now: float | None = None) -> float:
        return max(0.0, (now or time.time()) - self.taken_at)


class Snapshots:
    """Stored in the inventory, kept in memory after the first read: views ask every poll."""

    def __init__(self, inventory: Inventory) -> None:
        self._db: sqlite_utils.Database = inventory.db
        self._cache: dict[str, KitSnapshot] | None = None
        self._written: dict[str, float] = {}  # device ID -> taken_at of the copy on disk

    def save_many(self, snapshots: Iterable[KitSnapshot]) -> None:
        """Keep every snapshot in memory; write one when its models or jobs changed, or once
        every WRITE_EVERY_S (so a restart knows each kit within that): serialising 200 kits'
        jobs every poll would cost the polling loop more than the rest of the round."""
        saved, cached = list(snapshots), self.all()
        due = [
            s
            for s in saved
            if (old := cached.get(s.device_id)) is None
            or s.taken_at - self._written.get(s.device_id, 0.0) >= WRITE_EVERY_S
            or (old.models, old.jobs) != (s.models, s.jobs)
        ]
        with self._db.conn:
            self._db.conn.executemany(
                "INSERT OR REPLACE INTO snapshots (device_id, taken_at, data) VALUES (?, ?, ?)",
                [(s.device_id, s.taken_at, s.model_dump_json()) for s in due],
            )
        self._written.update((s.device_id, s.taken_at) for s in due)
        assert self._cache is not None
        self._cache.update((s.device_id, s) for s in saved)

    def get(self, device_id: str) -> KitSnapshot | None:
        return self.all().get(device_id)

    def all(self) -> dict[str, KitSnapshot]:
        if self._cache is None:
            rows = self._db.execute("SELECT device_id, data FROM snapshots").fetchall()
            self._cache = {row[0]: KitSnapshot.model_validate_json(row[1]) for row in rows}
        return dict(self._cache)


@dataclass
class Tags:
    """Free-form tags per kit ("north-site", "box-2 of kit A"): groups a technician sets."""

    inventory: Inventory
    _cache: dict[str, list[str]] | None = field(default=None, repr=False)

    def set(self, device_id: str, tags: Iterable[str]) -> list[str]:
        clean = sorted({t.strip() for t in tags if t.strip()})
        db = self.inventory.db
        with db.conn:
            db.execute("DELETE FROM tags WHERE device_id = ?", (device_id,))
            db.conn.executemany(
                "INSERT INTO tags (device_id, tag) VALUES (?, ?)", [(device_id, t) for t in clean]
            )
        self._cache = None
        return clean

    def of(self, device_id: str) -> list[str]:
        return self.all().get(device_id, [])

    def all(self) -> dict[str, list[str]]:
        if self._cache is None:
            found: dict[str, list[str]] = {}
            for device_id, tag in self.inventory.db.execute(
                "SELECT device_id, tag FROM tags ORDER BY tag"
            ).fetchall():
                found.setdefault(device_id, []).append(tag)
            self._cache = found
        return dict(self._cache)


def parse_tags(text: str) -> list[str]:
    """`a, b c` → ['a', 'b c']: tags are comma-separated, spaces allowed inside."""
    return [t.strip() for t in text.split(",") if t.strip()]
