"""The kit's audit log: append-only, hash-chained, and every kind of tampering is detected."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from agent.audit import Actor, AuditLog
from agent.db import Database
from agent.wire import AUDIT_GENESIS, AuditEntry, audit_subject, audited_call, verify_chain

ACTOR = Actor("0123456789abcdef", "kitfleet (app-1234)")


def written(db: Database, n: int) -> AuditLog:
    log = AuditLog(db)
    for i in range(n):
        log.append(ACTOR, "job.submit", f"job-{i}", "ok", {"kind": "benchmark", "n": i, "x": 0.1 * i})
    return log


def tamper(db: Database, sql: str, params: tuple[object, ...] = ()) -> None:
    """Edit the file as an attacker would: another connection, triggers dropped first."""
    with closing(sqlite3.connect(db.path)) as conn, conn:
        conn.execute("DROP TRIGGER IF EXISTS audit_append_only_update")
        conn.execute("DROP TRIGGER IF EXISTS audit_append_only_delete")
        conn.execute(sql, params)


def test_entries_are_numbered_and_linked_from_the_genesis(db: Database) -> None:
    log = written(db, 3)
    entries = list(log.entries())
    assert [e.seq for e in entries] == [1, 2, 3]
    assert entries[0].prev_hash == AUDIT_GENESIS
    assert [e.prev_hash for e in entries[1:]] == [e.hash for e in entries[:-1]]
    assert all(e.hash == e.expected_hash() for e in entries)
    assert log.verify() == []
    assert log.head() == entries[-1]


def test_an_entry_reads_back_exactly_as_written(db: Database) -> None:
    log = AuditLog(db)
    made = log.append(
        ACTOR,
        "model.activate",
        "digits 1.0",
        "409 conflict",
        {"message": "é" * 300, "nested": {"a": [1, 2]}, "none": None},
    )
    assert list(log.entries()) == [made]
    assert made.actor_id == ACTOR.token_id
    assert made.actor_label == ACTOR.label
    assert len(made.detail["message"]) == 256  # clipped: callers choose this text
    assert json.loads(made.detail["nested"]) == {"a": [1, 2]}


def test_sqlite_refuses_updates_and_deletes(db: Database) -> None:
    written(db, 2)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"), db.transaction() as conn:
        conn.execute("UPDATE audit SET outcome = 'ok' WHERE seq = 1")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"), db.transaction() as conn:
        conn.execute("DELETE FROM audit WHERE seq = 2")


@pytest.mark.parametrize(
    ("sql", "found"),
    [
        ("UPDATE audit SET outcome = '403 insufficient_scope' WHERE seq = 2", "entry 2 was altered"),
        ('UPDATE audit SET detail = \'{"kind": "command"}\' WHERE seq = 3', "entry 3 was altered"),
        ("UPDATE audit SET ts = ts + 1 WHERE seq = 1", "entry 1 was altered"),
        ("DELETE FROM audit WHERE seq = 2", "entries are missing"),
        ("DELETE FROM audit WHERE seq = 1", "entries are missing"),
    ],
)
def test_verify_finds_each_edit_or_deletion(db: Database, sql: str, found: str) -> None:
    log = written(db, 4)
    tamper(db, sql)
    problems = log.verify()
    assert problems
    assert any(found in p for p in problems), problems


def test_a_rewritten_entry_with_a_fresh_hash_still_breaks_the_next_link(db: Database) -> None:
    log = written(db, 3)
    forged = next(e for e in log.entries() if e.seq == 2).model_copy(update={"target": "job-x"})
    tamper(db, "UPDATE audit SET target = ?, hash = ? WHERE seq = 2", ("job-x", forged.expected_hash()))
    assert log.verify() == ["entry 3 does not link to the entry before it"]


def test_appending_continues_the_chain_across_connections(tmp_path: Path) -> None:
    first = Database.open(tmp_path)
    written(first, 2)
    first.close()
    second = Database.open(tmp_path)
    try:
        log = AuditLog(second)
        third = log.append(ACTOR, "token.revoke", "t", "ok")
        assert third.seq == 3
        assert log.verify() == []
    finally:
        second.close()


def test_verify_chain_from_the_middle_checks_the_rest(db: Database) -> None:
    entries = list(written(db, 5).entries())
    assert verify_chain(entries[2:], None, prev_seq=2) == []
    assert verify_chain(entries[2:], entries[1].hash, prev_seq=2) == []
    assert verify_chain(entries[2:], entries[0].hash, prev_seq=2) == [
        "entry 3 does not link to the entry before it"
    ]
    reordered = [entries[1], entries[0]]
    assert verify_chain(reordered, AUDIT_GENESIS)


def test_an_entry_survives_the_wire(db: Database) -> None:
    entry = written(db, 1).head()
    assert entry is not None
    again = AuditEntry.model_validate_json(entry.model_dump_json())
    assert again.expected_hash() == entry.hash


@pytest.mark.parametrize(
    ("method", "path", "action", "params"),
    [
        ("POST", "/v1/pair", "kit.adopt", {}),
        ("DELETE", "/v1/tokens/abc", "token.revoke", {"token_id": "abc"}),
        ("POST", "/v1/uploads/0123/commit", "model.deploy", {"upload_id": "0123"}),
        (
            "DELETE",
            "/v1/models/digits/versions/1.0-int8",
            "model.delete",
            {"name": "digits", "version": "1.0-int8"},
        ),
        ("POST", "/v1/jobs", "job.submit", {}),
        ("POST", "/v1/jobs/ab12/cancel", "job.cancel", {"job_id": "ab12"}),
        ("DELETE", "/v1/schedules/ab12", "schedule.delete", {"schedule_id": "ab12"}),
    ],
)
def test_audited_calls_are_named_with_their_parameters(
    method: str, path: str, action: str, params: dict[str, str]
) -> None:
    assert audited_call(method, path) == (action, params)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/jobs"),
        ("POST", "/v1/models/digits/infer"),
        ("PATCH", "/v1/uploads/0123"),
        ("GET", "/v1/audit"),
        ("POST", "/v1/jobs/ab12/cancel/more"),
    ],
)
def test_reads_inference_and_upload_bytes_are_not_audited(method: str, path: str) -> None:
    assert audited_call(method, path) is None


def test_subjects_name_what_was_acted_on() -> None:
    job = {"kind": "benchmark", "label": "nightly", "params": {"model": "digits"}}
    assert audit_subject("job.submit", {}, job, {"job_id": "j1"}) == (
        "j1",
        {"kind": "benchmark", "label": "nightly", "model": "digits"},
    )
    assert audit_subject("model.activate", {"name": "digits"}, {"version": "2"}, None) == ("digits 2", {})
    assert audit_subject("job.cancel", {"job_id": "j1"}, None, {"error": "x"}) == ("j1", {})


# --- rotation: a bounded log whose kept chain still verifies ----------------------------------


def test_rotation_bounds_the_log_and_the_kept_chain_verifies(db: Database) -> None:
    log = AuditLog(db, segment_entries=10, segments_kept=3)
    for i in range(100):
        log.append(ACTOR, "kit.adopt", "", "403 no_pairing_code", {"n": i})
    kept = list(log.entries())
    assert len(kept) <= 30
    assert kept[0].action == "audit.segment"
    assert kept[0].seq > 1
    assert kept[-1].detail == {"n": 99}
    check = log.check()
    assert check.problems == []
    assert check.kept_from == kept[0].seq
    assert f"kept from entry {kept[0].seq}" in check.note


def test_a_log_cut_past_what_its_segment_entry_says_is_found(db: Database) -> None:
    log = AuditLog(db, segment_entries=10, segments_kept=3)
    for i in range(60):
        log.append(ACTOR, "job.submit", f"job-{i}", "ok")
    starts = [e.seq for e in log.entries() if e.action == "audit.segment"]
    tamper(db, "DELETE FROM audit WHERE seq < ?", (starts[1],))  # one segment more than rotated
    assert any("says it keeps entries from" in p for p in log.verify())
    tamper(db, "DELETE FROM audit WHERE seq < ?", (starts[1] + 2,))  # not even at a segment
    assert any("does not start a segment" in p for p in log.verify())


def test_the_trigger_lets_only_rotated_segments_go(db: Database) -> None:
    log = AuditLog(db, segment_entries=10, segments_kept=2)
    for i in range(30):
        log.append(ACTOR, "job.submit", f"job-{i}", "ok")
    first = next(log.entries()).seq
    with pytest.raises(sqlite3.IntegrityError), db.transaction() as conn:
        conn.execute("DELETE FROM audit WHERE seq = ?", (first,))
