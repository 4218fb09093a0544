"""Stream source URLs with their passwords, kept apart from everything a viewer can read.

A job's or schedule's parameters hold the masked URL (`rtsp://user:***@cam/…`); the real one
is stored here, in its own SQLite file readable by the agent's user only (0600, deleted rows
overwritten), under the owner `job:<id>` or `schedule:<id>`. Only the worker process that
opens the source reads it back. Rows whose job finished or whose schedule is gone are pruned.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Container, Iterable, Iterator
from pathlib import Path

__all__ = ["SECRETS_FILE", "SourceSecrets"]

SECRETS_FILE = "source-secrets.db"
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS sources (owner TEXT PRIMARY KEY, url TEXT NOT NULL, stored_at REAL NOT NULL)"
)
# A secret is stored just before the row that needs it is committed: a prune in between must
# not take it, so only secrets older than this are pruned.
PRUNE_AFTER_S = 300.0


class SourceSecrets:
    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> SourceSecrets:
        return cls(data_dir / SECRETS_FILE)

    @contextlib.contextmanager
    def _connect(self, write: bool) -> Iterator[sqlite3.Connection]:
        if write and not self.path.exists():
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        os.chmod(self.path, 0o600)  # and SQLite gives its journal the same mode
        conn = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        try:
            conn.execute("PRAGMA secure_delete = ON")  # a removed password is overwritten
            conn.execute("PRAGMA synchronous = FULL")
            if write:
                conn.execute(_SCHEMA)
            yield conn
        finally:
            conn.close()

    def put(self, owner: str, url: str) -> None:
        with self._connect(write=True) as conn:
            conn.execute(
                "INSERT OR REPLACE INTO sources (owner, url, stored_at) VALUES (?, ?, ?)",
                (owner, url, time.time()),
            )

    def get(self, owners: Iterable[str]) -> str | None:
        """The URL stored for the first of `owners` that has one."""
        if not self.path.exists():
            return None
        with self._connect(write=False) as conn:
            for owner in owners:
                try:
                    row = conn.execute("SELECT url FROM sources WHERE owner = ?", (owner,)).fetchone()
                except sqlite3.OperationalError:  # no table yet
                    return None
                if row is not None:
                    return str(row[0])
        return None

    def forget(self, owners: Iterable[str]) -> None:
        if not self.path.exists():
            return
        with self._connect(write=True) as conn:
            conn.executemany("DELETE FROM sources WHERE owner = ?", [(o,) for o in owners])

    def keep_only(self, live: Container[str]) -> None:
        """Forget every owner not in `live` (finished jobs, deleted schedules), unless just stored."""
        if not self.path.exists():
            return
        with self._connect(write=True) as conn:
            rows = conn.execute(
                "SELECT owner FROM sources WHERE stored_at < ?", (time.time() - PRUNE_AFTER_S,)
            )
            stale = [str(r[0]) for r in rows if r[0] not in live]
            conn.executemany("DELETE FROM sources WHERE owner = ?", [(o,) for o in stale])
