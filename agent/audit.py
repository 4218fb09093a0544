"""The kit's audit log: append-only, each entry hash-chained to the one before.

Who changed what on this kit, and how it ended: adoption, token revocation, deploys,
activation, rollback and deletion of models, jobs and schedules. The table refuses UPDATE
and DELETE (triggers); whoever edits the file behind SQLite's back, or drops the triggers
first, breaks the chain, which `verify` and every app pulling the log detect.

The log is bounded: it is kept in segments of `segment_entries`, and when a new segment would
make more than `segments_kept`, the oldest go (the trigger lets only rows before the first kept
segment be deleted). Each new segment starts with an `audit.segment` entry, chained like any
other, that says from which entry the log is now kept and the hash that entry links to, so the
kept chain verifies on its own and a cut anywhere else still shows (`ChainCheck`).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Any

from agent.config import Settings
from agent.db import Database
from agent.wire import AUDIT_GENESIS, AUDIT_SEGMENT, AuditEntry, ChainCheck, audit_hash

__all__ = ["Actor", "AuditLog", "KeptChain"]

_MAX_TEXT = 256  # a caller chooses labels and messages: keep each entry small
_PAGE = 5000


@dataclass(frozen=True)
class Actor:
    """Who acted: the token's id and the app identity it was issued to."""

    token_id: str
    label: str


@dataclass(frozen=True)
class KeptChain:
    """What `AuditLog.check` found: the kept entries, where they start, and every break."""

    entries: int
    kept_from: int
    head: AuditEntry | None
    problems: list[str]
    note: str


_KIT = Actor("", "kitfleet-agent")
_DEFAULT: dict[str, Any] = {f.name: f.default for f in fields(Settings)}  # for callers without them


class AuditLog:
    def __init__(
        self,
        db: Database,
        segment_entries: int = _DEFAULT["audit_segment_entries"],
        segments_kept: int = _DEFAULT["audit_segments_kept"],
    ) -> None:
        self._db = db
        self.segment_entries = max(segment_entries, 2)
        self.segments_kept = max(segments_kept, 1)

    @classmethod
    def of(cls, db: Database, settings: Settings) -> AuditLog:
        """The kit's log, bounded as its settings say."""
        return cls(db, settings.audit_segment_entries, settings.audit_segments_kept)

    def append(
        self,
        actor: Actor,
        action: str,
        target: str,
        outcome: str,
        detail: dict[str, Any] | None = None,
        ts: float | None = None,
    ) -> AuditEntry:
        """Write one entry. BEGIN IMMEDIATE makes this the only writer, across processes too
        (`kitfleet-agent enroll` writes here while the daemon runs), so links never race."""
        fields = _fields(actor, action, target, outcome, detail, ts)
        with self._db.transaction() as conn:
            row = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev_hash = (row[0] + 1, row[1]) if row else (1, AUDIT_GENESIS)
            if row is None:
                conn.execute("INSERT OR IGNORE INTO audit_segments (start_seq) VALUES (1)")
            else:
                seq, prev_hash = self._rotate(conn, seq, prev_hash)
            return _insert(conn, seq, prev_hash, fields)

    def _rotate(self, conn: sqlite3.Connection, seq: int, prev_hash: str) -> tuple[int, str]:
        """Start a new segment at `seq` when the current one is full, dropping the oldest
        beyond the bound; the seq and link of the entry to write next."""
        starts = [r[0] for r in conn.execute("SELECT start_seq FROM audit_segments ORDER BY start_seq")]
        if not starts:  # a log from before segments, with its start lost: it starts now
            starts = [conn.execute("SELECT MIN(seq) FROM audit").fetchone()[0]]
            conn.execute("INSERT INTO audit_segments (start_seq) VALUES (?)", (starts[0],))
        if seq - starts[-1] < self.segment_entries:
            return seq, prev_hash
        segments = [*starts, seq]
        kept_from = segments[max(len(segments) - self.segments_kept, 0)]
        conn.execute("DELETE FROM audit_segments WHERE start_seq < ?", (kept_from,))
        conn.execute("DELETE FROM audit WHERE seq < ?", (kept_from,))  # the trigger allows only these
        conn.execute("INSERT INTO audit_segments (start_seq) VALUES (?)", (seq,))
        dropped_hash = conn.execute("SELECT prev_hash FROM audit WHERE seq = ?", (kept_from,)).fetchone()
        detail = {
            "kept_from": kept_from,
            "dropped_hash": dropped_hash[0] if dropped_hash else prev_hash,
            "segment_entries": self.segment_entries,
            "segments_kept": self.segments_kept,
        }
        marker = _insert(
            conn, seq, prev_hash, _fields(_KIT, AUDIT_SEGMENT, f"entries from {seq}", "ok", detail, None)
        )
        return seq + 1, marker.hash

    def since(self, seq: int, limit: int) -> list[AuditEntry]:
        """Entries after `seq`, oldest first."""
        rows = self._db.query("SELECT * FROM audit WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit))
        return [_entry(dict(row)) for row in rows]

    def head(self) -> AuditEntry | None:
        rows = self._db.query("SELECT * FROM audit ORDER BY seq DESC LIMIT 1")
        return _entry(dict(rows[0])) if rows else None

    def entries(self) -> Iterator[AuditEntry]:
        """Every entry, oldest first, read a page at a time."""
        seq = 0
        while page := self.since(seq, _PAGE):
            yield from page
            seq = page[-1].seq

    def verify(self) -> list[str]:
        """Every break in the kept chain; empty when it is whole."""
        return self.check().problems

    def check(self) -> KeptChain:
        """Check the kept chain from its first entry, a page at a time."""
        check = ChainCheck()
        seq, count = 0, 0
        while page := self.since(seq, _PAGE):
            check.add(page)
            seq, count = page[-1].seq, count + len(page)
        problems = check.finish()
        return KeptChain(count, check.kept_from or 1, check.last, problems, check.describe())


def _fields(
    actor: Actor, action: str, target: str, outcome: str, detail: dict[str, Any] | None, ts: float | None
) -> dict[str, Any]:
    return {
        "ts": time.time() if ts is None else ts,
        "actor_id": _clip(actor.token_id),
        "actor_label": _clip(actor.label),
        "action": action,
        "target": _clip(target),
        "outcome": _clip(outcome),
        "detail": _clipped(detail or {}),
    }


def _insert(conn: sqlite3.Connection, seq: int, prev_hash: str, fields: dict[str, Any]) -> AuditEntry:
    entry = AuditEntry(seq=seq, prev_hash=prev_hash, hash=audit_hash(prev_hash, seq, **fields), **fields)
    conn.execute(
        "INSERT INTO audit (seq, ts, actor_id, actor_label, action, target, outcome, detail, "
        "prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            seq,
            entry.ts,
            entry.actor_id,
            entry.actor_label,
            entry.action,
            entry.target,
            entry.outcome,
            json.dumps(entry.detail, sort_keys=True),
            prev_hash,
            entry.hash,
        ),
    )
    return entry


def _entry(row: dict[str, Any]) -> AuditEntry:
    row["detail"] = json.loads(row["detail"])
    return AuditEntry(**row)


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 1] + "…"


def _clipped(detail: dict[str, Any]) -> dict[str, Any]:
    """Keep plain JSON values only, long text shortened, so the entry stays small and stable."""
    kept: dict[str, Any] = {}
    for key, value in detail.items():
        if isinstance(value, str):
            kept[key] = _clip(value)
        elif value is None or isinstance(value, (bool, int, float)):
            kept[key] = value
        else:
            kept[key] = _clip(json.dumps(value, sort_keys=True, default=str))
    return kept
