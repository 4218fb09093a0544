"""The agent's SQLite database: WAL, durable commits, versioned schema.

Each upgrade step moves `PRAGMA user_version` forward by one, so a kit that
has been away for several releases upgrades in place.

A damaged file (not a database, or failing `PRAGMA quick_check`) is never served or
patched: at start-up it is moved aside whole, with its -wal/-shm, as
`agent.db.corrupt-<UTC time>`, and the agent starts with a fresh database and says what
was lost (`Database.recovery`). A database that is merely locked, read-only or on a
failing disk is an error to fix, never a reason to quarantine it.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.db_schema import MIGRATIONS as _MIGRATIONS
from agent.db_schema import SCHEMA_VERSION as SCHEMA_VERSION
from agent.toolkit.durable import fsync_path

DB_FILE = "agent.db"
CORRUPT_INFIX = ".corrupt-"  # agent.db.corrupt-20261129T041500Z (+ -wal, -shm)
# What a fresh database no longer has: the app's copy of the kit's state is untouched.
LOST = (
    "tokens (every app must adopt the kit again)",
    "pairing codes",
    "unfinished uploads",
    "the job queue and job history",
    "schedules",
    "the audit log",
    "the metrics ring",
    "trusted bundle signers and bundle import records",
)
# Result codes that mean the file itself is damaged (primary codes; extended ones share the low byte).
_SQLITE_CORRUPT, _SQLITE_NOTADB = 11, 26
_SIDECARS = ("", "-wal", "-shm", "-journal")

log = logging.getLogger(__name__)


class DatabaseCorrupt(sqlite3.DatabaseError):
    """`PRAGMA quick_check` found damage; str() is what it found."""


@dataclass(frozen=True)
class Recovery:
    """A damaged database was quarantined at start-up and a fresh one made."""

    quarantined: str  # file name, in the data dir
    reason: str
    at: float
    lost: tuple[str, ...] = LOST

    @property
    def message(self) -> str:
        return (
            f"the agent database was damaged ({self.reason}); it was kept as {self.quarantined} "
            f"and a fresh one started; lost: {', '.join(self.lost)}"
        )


def is_corruption(exc: BaseException) -> bool:
    """True only for a damaged file, never for locked, read-only or I/O trouble."""
    if isinstance(exc, DatabaseCorrupt):
        return True
    code = getattr(exc, "sqlite_errorcode", None)
    return (
        isinstance(exc, sqlite3.DatabaseError)
        and isinstance(code, int)
        and (code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB))
    )


def quarantine(path: Path, now: float | None = None) -> Path:
    """Move the database and its -wal/-shm aside under one new name; nothing is deleted."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
    target = path.with_name(f"{path.name}{CORRUPT_INFIX}{stamp}")
    n = 1
    while any(target.with_name(target.name + s).exists() for s in _SIDECARS):
        n += 1
        target = path.with_name(f"{path.name}{CORRUPT_INFIX}{stamp}-{n}")
    # the -wal first: a database moved without its -wal would be read as older than it was
    for suffix in reversed(_SIDECARS):
        source = path.with_name(path.name + suffix)
        if source.exists():
            os.replace(source, target.with_name(target.name + suffix))
    fsync_path(path.parent)
    return target


def _quick_check(conn: sqlite3.Connection) -> None:
    """`PRAGMA quick_check`: every page of every b-tree is read once (milliseconds for a kit's
    database); anything but "ok" is damage."""
    found = [str(r[0]) for r in conn.execute("PRAGMA quick_check(5)").fetchall()]
    if found != ["ok"]:
        raise DatabaseCorrupt("; ".join(found)[:500])


def _probe(path: Path, timeout: float) -> None:
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=timeout)
    try:
        _quick_check(conn)
    finally:
        conn.close()


class Database:
    """One connection shared by the agent's threads, serialised by a lock."""

    recovery: Recovery | None = None  # set when this start quarantined a damaged file

    def __init__(self, path: Path, check: bool = True, timeout: float = 10.0) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
        try:
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit that returned is on disk, even after power loss.
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            if check:
                self._check()
            self._migrate()
        except BaseException:
            self._conn.close()
            raise

    @classmethod
    def open(cls, data_dir: Path, recover: bool = False, timeout: float = 10.0) -> Database:
        """Open the kit's database; with `recover` (the daemon's start), a damaged file is
        quarantined and a fresh database made instead of refusing to start."""
        path = data_dir / DB_FILE
        try:
            if path.exists():
                # checked read-only first: a read-write connection that fails would fold the
                # -wal into the damaged file as it closes, and the file kept would not be the
                # file found
                _probe(path, timeout)
            return cls(path, check=False, timeout=timeout)
        except sqlite3.DatabaseError as exc:
            if not recover or not is_corruption(exc):
                raise
            reason = str(exc)
        moved = quarantine(path)
        recovery = Recovery(quarantined=moved.name, reason=reason, at=time.time())
        log.error("%s", recovery.message)
        db = cls(path, timeout=timeout)
        db.recovery = recovery
        return db

    def _check(self) -> None:
        with self._lock:
            _quick_check(self._conn)

    def _migrate(self) -> None:
        with self._lock:
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise RuntimeError(
                    f"{self.path} has schema {version}, newer than this agent ({SCHEMA_VERSION}); "
                    "upgrade kitfleet-agent"
                )
            for step in range(version, SCHEMA_VERSION):
                # One script per step, so a step is applied whole or not at all.
                self._conn.executescript(
                    f"BEGIN IMMEDIATE;{_MIGRATIONS[step]};PRAGMA user_version = {step + 1};COMMIT;"
                )

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT, rolled back on any exception."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def close(self) -> None:
        with self._lock:
            self._conn.close()
