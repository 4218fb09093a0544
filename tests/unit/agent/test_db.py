"""The agent's SQLite database: versioned schema, WAL, transactions that roll back."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

from agent import db_schema as agent_db_schema
from agent.db import DB_FILE, SCHEMA_VERSION, Database


@contextmanager
def raw(path: Path) -> Iterator[sqlite3.Connection]:
    """A plain sqlite3 connection that commits and closes, as another program would."""
    with closing(sqlite3.connect(path)) as conn, conn:
        yield conn


def user_version(path: Path) -> int:
    with raw(path) as conn:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])


def count(database: Database, table: str) -> int:
    return int(database.query(f"SELECT COUNT(*) FROM {table}")[0][0])


def insert_token(conn: sqlite3.Connection, token_id: str) -> None:
    conn.execute(
        "INSERT INTO tokens (id, hash, label, scope, created_at) VALUES (?, ?, 'l', 'admin', 0)",
        (token_id, "hash-" + token_id),
    )


def test_migrations_bring_a_new_file_to_the_current_schema(db: Database) -> None:
    assert SCHEMA_VERSION >= 1
    assert db.query("PRAGMA user_version")[0][0] == SCHEMA_VERSION
    assert count(db, "pairing_lock") == 1


def test_journal_mode_is_wal(db: Database) -> None:
    assert db.query("PRAGMA journal_mode")[0][0] == "wal"


def test_reopening_is_idempotent(tmp_path: Path) -> None:
    first = Database.open(tmp_path)
    with first.transaction() as conn:
        insert_token(conn, "t1")
    first.close()
    second = Database.open(tmp_path)
    try:
        assert second.query("PRAGMA user_version")[0][0] == SCHEMA_VERSION
        assert count(second, "tokens") == 1
        assert count(second, "pairing_lock") == 1
    finally:
        second.close()


def test_an_old_database_upgrades_in_place(tmp_path: Path) -> None:
    path = tmp_path / DB_FILE
    with raw(path) as conn:
        conn.executescript(agent_db_schema.MIGRATIONS[0])
        conn.execute("PRAGMA user_version = 1")
        insert_token(conn, "kept")
    upgraded = Database(path)
    try:
        assert upgraded.query("PRAGMA user_version")[0][0] == SCHEMA_VERSION
        assert upgraded.query("SELECT id FROM tokens")[0]["id"] == "kept"
        assert count(upgraded, "uploads") == 0
    finally:
        upgraded.close()


def test_a_newer_database_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / DB_FILE
    with raw(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(RuntimeError, match="upgrade kitfleet-agent") as caught:
        Database(path)
    assert str(path) in str(caught.value)
    assert user_version(path) == SCHEMA_VERSION + 1


def test_transaction_commits_for_other_connections(db: Database) -> None:
    with db.transaction() as conn:
        insert_token(conn, "t1")
    with raw(db.path) as other:
        assert other.execute("SELECT COUNT(*) FROM tokens").fetchone()[0] == 1


def fail_after_inserting(database: Database, *token_ids: str) -> None:
    """Insert the tokens in one transaction, then raise; a repeated ID fails on its own."""
    with database.transaction() as conn:
        for token_id in token_ids:
            insert_token(conn, token_id)
        raise ValueError("boom")


def test_transaction_rolls_back_on_exception(db: Database) -> None:
    with pytest.raises(ValueError, match="boom"):
        fail_after_inserting(db, "t1")
    assert count(db, "tokens") == 0
    with db.transaction() as conn:  # the connection is not left inside a transaction
        insert_token(conn, "t2")
    assert count(db, "tokens") == 1


def test_a_failed_statement_rolls_back_the_whole_transaction(db: Database) -> None:
    with pytest.raises(sqlite3.IntegrityError):
        fail_after_inserting(db, "t1", "t1")
    assert count(db, "tokens") == 0
