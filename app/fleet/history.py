"""Metrics history: each kit's samples merged into the inventory, so charts outlive the link.

The app pulls the kit's on-disk ring (`/v1/metrics?since_seq=`) on every poll; after days
away it catches up on what the kit sampled meanwhile. The kit's sequence number is the key,
so a repeated pull merges to the same rows; retention is bounded per kit by age (measured
on the kit's own clock, so a laptop with a wrong clock deletes nothing) and by count.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from agent.wire import MetricSample
from app.fleet.client import KitClient
from app.fleet.inventory import Inventory
from app.fleet.sqlite_lib import sqlite_utils

__all__ = ["MAX_SAMPLES", "RETENTION_S", "MetricsHistory", "async_pull_samples"]

RETENTION_S = 7 * 86400.0
MAX_SAMPLES = 60_480  # a week at the agent's default 10 s interval
PAGE = 2000
MAX_PAGES = 10  # per poll: a kit back after a long absence catches up over a few polls
_FIELDS = (
    "ts",
    "cpu_percent",
    "memory_percent",
    "disk_percent",
    "temperature_c",
    "disk_free_bytes",
    "battery_percent",
    "power_w",
)


class MetricsHistory:
    def __init__(
        self, inventory: Inventory, retention_s: float = RETENTION_S, max_samples: int = MAX_SAMPLES
    ) -> None:
        self._db: sqlite_utils.Database = inventory.db
        self.retention_s, self.max_samples = retention_s, max_samples

    def cursor(self, device_id: str) -> int | None:
        """The newest sequence number held for a kit: pull after it."""
        row = self._db.execute(
            "SELECT MAX(seq) FROM metrics WHERE device_id = ? AND seq >= 0", (device_id,)
        ).fetchone()
        return None if row[0] is None else int(row[0])

    def merge(self, device_id: str, samples: list[MetricSample]) -> int:
        return self.merge_many({device_id: samples})

    def merge_many(self, batches: Mapping[str, Iterable[MetricSample]]) -> int:
        """Store every kit's new samples in one transaction; returns how many were new."""
        new = 0
        with self._db.conn:
            for device_id, samples in batches.items():
                rows = [(device_id, _key(s), *(getattr(s, f) for f in _FIELDS)) for s in samples]
                if not rows:
                    continue
                start = self._db.conn.total_changes
                self._db.conn.executemany(
                    f"INSERT OR IGNORE INTO metrics (device_id, seq, {', '.join(_FIELDS)}) "  # noqa: S608
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
                new += self._db.conn.total_changes - start
                self._prune(device_id, max(r[2] for r in rows))
        return new

    def _prune(self, device_id: str, newest_ts: float) -> None:
        self._db.execute(
            "DELETE FROM metrics WHERE device_id = ? AND ts < ?", (device_id, newest_ts - self.retention_s)
        )
        self._db.execute(
            "DELETE FROM metrics WHERE device_id = ? AND seq IN (SELECT seq FROM metrics "
            "WHERE device_id = ? ORDER BY ts DESC, seq DESC LIMIT -1 OFFSET ?)",
            (device_id, device_id, self.max_samples),
        )

    def series(self, device_id: str, since: float = 0.0) -> list[MetricSample]:
        """A kit's samples at or after `since` (kit time), in time order."""
        rows = self._db.execute(
            f"SELECT seq, {', '.join(_FIELDS)} FROM metrics WHERE device_id = ? AND ts >= ? "  # noqa: S608
            "ORDER BY ts, seq",
            (device_id, since),
        ).fetchall()
        return [_sample(row) for row in rows]

    def latest(self, device_id: str) -> MetricSample | None:
        row = self._db.execute(
            f"SELECT seq, {', '.join(_FIELDS)} FROM metrics WHERE device_id = ? "  # noqa: S608
            "ORDER BY ts DESC, seq DESC LIMIT 1",
            (device_id,),
        ).fetchone()
        return None if row is None else _sample(row)

    def window(
        self, device_id: str, latest_ts: float, seconds: float
    ) -> tuple[float | None, tuple[float, int] | None]:
        """For alerts, cheaply: the lowest temperature over the last `seconds`, and the first
        (ts, free bytes) of the last hour."""
        coolest = self._db.execute(
            "SELECT MIN(temperature_c) FROM metrics WHERE device_id = ? AND ts >= ?",
            (device_id, latest_ts - seconds),
        ).fetchone()[0]
        earlier = self._db.execute(
            "SELECT ts, disk_free_bytes FROM metrics WHERE device_id = ? AND ts >= ? "
            "AND disk_free_bytes IS NOT NULL ORDER BY ts LIMIT 1",
            (device_id, latest_ts - 3600),
        ).fetchone()
        return coolest, (float(earlier[0]), int(earlier[1])) if earlier else None

    def count(self, device_id: str) -> int:
        return int(
            self._db.execute("SELECT COUNT(*) FROM metrics WHERE device_id = ?", (device_id,)).fetchone()[0]
        )


async def async_pull_samples(
    client: KitClient, cursor: int | None, pages: int = MAX_PAGES
) -> list[MetricSample]:
    """The kit's samples after `cursor` (all it holds when None), `pages` pages at most."""
    samples: list[MetricSample] = []
    after = -1 if cursor is None else cursor
    for _ in range(pages):
        page = (await client.metrics(since_seq=after, limit=PAGE)).samples
        samples += page
        if len(page) < PAGE or page[-1].seq is None:
            break
        after = page[-1].seq
    return samples


def _key(sample: MetricSample) -> int:
    # An agent older than the seq field: key by the sample's time in ms, kept apart from real
    # sequence numbers by its sign so the two never collide.
    return sample.seq if sample.seq is not None else -round(sample.ts * 1000)


def _sample(row: Any) -> MetricSample:
    return MetricSample(seq=row[0], **dict(zip(_FIELDS, row[1:], strict=True)))
