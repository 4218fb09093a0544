"""Fixtures shared by the agent's unit tests: a real SQLite database per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.db import Database


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    """The agent's database in a fresh data dir, migrated to the current schema."""
    database = Database.open(tmp_path)
    yield database
    database.close()


@pytest.fixture
def db_bytes(db: Database) -> Callable[[], bytes]:
    """Reads everything SQLite has written for `db`, WAL included."""

    def read() -> bytes:
        files = sorted(db.path.parent.glob(db.path.name + "*"))
        return b"".join(path.read_bytes() for path in files)

    return read
