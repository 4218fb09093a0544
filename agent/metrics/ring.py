"""A bounded ring of metric samples in the agent's database; it survives restarts.

Each sample gets the next sequence number and, in the same transaction, samples
older than the newest `capacity` are deleted: the table never holds more than
`capacity` rows, and changing the capacity between restarts keeps the newest.
"""

from __future__ import annotations

import time

import psutil

from agent.db import Database
from agent.facts.thermal import max_temperature_c
from agent.metrics.power import PowerGauge
from agent.wire import MetricSample

_COLUMNS = (
    "ts, cpu_percent, memory_percent, disk_percent, temperature_c, disk_free_bytes, battery_percent, power_w"
)


class MetricRing:
    def __init__(self, db: Database, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("the metrics ring needs room for at least one sample")
        self._db = db
        self.capacity = capacity
        row = db.query("SELECT MAX(seq) FROM metrics")[0]
        self._next_seq = (row[0] + 1) if row[0] is not None else 0

    def append(self, sample: MetricSample) -> None:
        with self._db.transaction() as conn:
            conn.execute(
                f"INSERT INTO metrics (slot, seq, {_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608 - constant column names
                (
                    self._next_seq,
                    self._next_seq,
                    sample.ts,
                    sample.cpu_percent,
                    sample.memory_percent,
                    sample.disk_percent,
                    sample.temperature_c,
                    sample.disk_free_bytes,
                    sample.battery_percent,
                    sample.power_w,
                ),
            )
            conn.execute("DELETE FROM metrics WHERE seq <= ?", (self._next_seq - self.capacity,))
        self._next_seq += 1

    def since(self, ts: float, limit: int, since_seq: int | None = None) -> list[MetricSample]:
        """Samples newer than `ts`, or after `since_seq` when given (immune to clock jumps)."""
        where, bound = ("seq > ?", since_seq) if since_seq is not None else ("ts > ?", ts)
        rows = self._db.query(
            f"SELECT seq, {_COLUMNS} FROM metrics WHERE {where} ORDER BY seq LIMIT ?",  # noqa: S608
            (bound, limit),
        )
        return [MetricSample(**dict(row)) for row in rows]

    def overwritten(self) -> int:
        """Samples dropped to keep within capacity: every seq below the oldest held one (seqs
        start at 0)."""
        row = self._db.query("SELECT MIN(seq) FROM metrics")[0]
        return int(row[0]) if row[0] is not None else 0

    def latest(self) -> MetricSample | None:
        rows = self._db.query(f"SELECT seq, {_COLUMNS} FROM metrics ORDER BY seq DESC LIMIT 1")  # noqa: S608 - constant column names
        return MetricSample(**dict(rows[0])) if rows else None


def take_sample(disk_path: str, power: PowerGauge | None = None) -> MetricSample:
    """Read the kit's figures now. cpu_percent and power_w are since the previous call."""
    disk = psutil.disk_usage(disk_path)
    return MetricSample(
        ts=time.time(),
        cpu_percent=psutil.cpu_percent(interval=None),
        memory_percent=psutil.virtual_memory().percent,
        disk_percent=disk.percent,
        temperature_c=max_temperature_c(),
        disk_free_bytes=disk.free,
        battery_percent=_battery_percent(),
        power_w=power.watts() if power is not None else None,
    )


def _battery_percent() -> float | None:
    sensor = getattr(psutil, "sensors_battery", None)  # absent on some platforms
    reading = sensor() if sensor is not None else None
    return float(reading.percent) if reading is not None else None
