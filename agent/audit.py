"""The kit's audit log: append-only, each entry hash-chained to the one before.

Who changed what on this kit, and how it ended: adoption, token revocation, deploys,
activation, rollback and deletion of models, jobs and schedules. The table refuses UPDATE
and DELETE (triggers, migration 4); whoever edits the file behind SQLite's back, or drops
the triggers first, breaks the chain, which `verify` and every app pulling the log detect.
The log is never pruned: entries are a few hundred bytes, and a gap would look like tampering.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from agent.api.schemas import AUDIT_GENESIS, AuditEntry, audit_hash, verify_chain
from agent.db import Database

__all__ = ["Actor", "AuditLog"]

_MAX_TEXT = 256  # a caller chooses labels and messages: keep each entry small
_PAGE = 5000


@dataclass(frozen=True)
class Actor:
    """Who acted: the token's id and the app identity it was issued to."""

    token_id: str
    label: str


class AuditLog:
    def __init__(self, db: Database) -> None:
        self._db = db

    def append(self, actor: Actor, action: str, target: str, outcome: str,
               detail: dict[str, Any] | None = None, ts: float | None = None) -> AuditEntry:
        """Write one entry. BEGIN IMMEDIATE makes this the only writer, across processes too
        (`kitfleet-agent enroll` writes here while the daemon runs), so links never race."""
        fields: dict[str, Any] = {"ts": time.time() if ts is None else ts, "actor_id": _clip(actor.token_id),
                  "actor_label": _clip(actor.label), "action": action, "target": _clip(target),
                  "outcome": _clip(outcome), "detail": _clipped(detail or {})}
        with self._db.transaction() as conn:
            row = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev_hash = (row[0] + 1, row[1]) if row else (1, AUDIT_GENESIS)
            entry = AuditEntry(seq=seq, prev_hash=prev_hash,
                               hash=audit_hash(prev_hash, seq, **fields), **fields)
            conn.execute(
                "INSERT INTO audit (seq, ts, actor_id, actor_label, action, target, outcome, detail, "
                "prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (seq, entry.ts, entry.actor_id, entry.actor_label, action, entry.target,
                 entry.outcome, json.dumps(entry.detail, sort_keys=True), prev_hash, entry.hash))
        return entry

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
        """Every break in the chain from the first entry on; empty when it is whole."""
        problems: list[str] = []
        prev_hash, prev_seq = AUDIT_GENESIS, 0
        page: list[AuditEntry] = []
        for entry in self.entries():
            page.append(entry)
            if len(page) == _PAGE:
                problems += verify_chain(page, prev_hash, prev_seq)
                prev_hash, prev_seq, page = page[-1].hash, page[-1].seq, []
        return problems + verify_chain(page, prev_hash, prev_seq)


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
