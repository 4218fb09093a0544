"""One record per bundle (imported, failed and resumable, or refused) and a journal of its
actions, in the kit's database.

A bundle is accepted (sequence checked and raised) in the same transaction that writes its
record, so two imports of one file cannot both pass. Each action is marked done only after it
took effect; every action also recognises its own effect (a model version with the same hash, a
dataset with the same files, a job with the bundle's idempotency key), so a kill -9 between the
effect and its mark repeats nothing either.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from agent.db import Database
from agent.errors import Conflict
from agent.toolkit.bundles import VerifiedBundle

__all__ = ["Journal", "Started"]

FINAL = ("applied",)


@dataclass(frozen=True)
class Started:
    resumed: bool
    done: frozenset[int]  # indexes of actions already applied


class Journal:
    def __init__(self, db: Database) -> None:
        self._db = db

    def begin(self, bundle: VerifiedBundle, signer: str) -> Started:
        """Accept the bundle (new) or resume it (interrupted or failed before); refuse a replay."""
        sha, seq = bundle.sha256, bundle.sequence
        rollback = bool(bundle.manifest.get("rollback"))
        with self._db.transaction() as conn:
            row = conn.execute("SELECT * FROM bundle_imports WHERE bundle_sha256 = ?", (sha,)).fetchone()
            if row is not None and row["outcome"] in FINAL:
                raise _replayed(f"this bundle was imported already ({_when(row['finished_at'])})")
            if row is not None and row["outcome"] != "refused":
                done = conn.execute(
                    "SELECT idx FROM bundle_actions WHERE bundle_sha256 = ? AND outcome = 'done'", (sha,)
                ).fetchall()
                conn.execute("UPDATE bundle_imports SET outcome = 'applying' WHERE bundle_sha256 = ?", (sha,))
                return Started(True, frozenset(int(r[0]) for r in done))
            last = int(conn.execute("SELECT last FROM bundle_sequence WHERE id = 1").fetchone()[0])
            if seq <= last and not rollback:
                raise _replayed(f"its sequence {seq} is not above the last bundle this kit accepted ({last})")
            conn.execute("DELETE FROM bundle_imports WHERE bundle_sha256 = ?", (sha,))  # an old refusal
            conn.execute(
                "INSERT INTO bundle_imports (bundle_sha256, sequence, signer, outcome, actions, started_at)"
                " VALUES (?, ?, ?, 'applying', ?, ?)",
                (sha, seq, signer, len(bundle.manifest.get("actions", [])), time.time()),
            )
            conn.execute("UPDATE bundle_sequence SET last = max(last, ?) WHERE id = 1", (seq,))
        return Started(False, frozenset())

    def interrupted(self, sha: str) -> bool:
        """True when this bundle was accepted and not finished (killed, or failed mid-way)."""
        rows = self._db.query("SELECT outcome FROM bundle_imports WHERE bundle_sha256 = ?", (sha,))
        return bool(rows) and rows[0]["outcome"] in ("applying", "failed")

    def action(self, sha: str, idx: int, kind: str, target: str, outcome: str, detail: Any) -> None:
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO bundle_actions (bundle_sha256, idx, kind, target, outcome, detail, at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (bundle_sha256, idx) DO UPDATE SET"
                " outcome = excluded.outcome, detail = excluded.detail, at = excluded.at",
                (sha, idx, kind, target[:256], outcome, json.dumps(detail)[:2000], time.time()),
            )

    def finish(self, sha: str, outcome: str, message: str = "") -> None:
        with self._db.transaction() as conn:
            conn.execute(
                "UPDATE bundle_imports SET outcome = ?, message = ?, finished_at = ? WHERE bundle_sha256 = ?",
                (outcome, message[:2000], time.time(), sha),
            )

    def refused(self, sha: str, sequence: int | None, signer: str, message: str) -> None:
        """Keep a refusal on record (for the receipt), unless the file has a better record."""
        now = time.time()
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO bundle_imports (bundle_sha256, sequence, signer, outcome, message,"
                " started_at, finished_at) VALUES (?, ?, ?, 'refused', ?, ?, ?)"
                " ON CONFLICT (bundle_sha256) DO UPDATE SET message = excluded.message,"
                " finished_at = excluded.finished_at WHERE outcome = 'refused'",
                (sha, sequence, signer, message[:2000], now, now),
            )

    def records(self, limit: int = 100) -> list[dict[str, Any]]:
        rows = self._db.query("SELECT * FROM bundle_imports ORDER BY id DESC LIMIT ?", (limit,))
        return [dict(r) for r in rows]

    def actions(self, sha: str) -> list[dict[str, Any]]:
        rows = self._db.query("SELECT * FROM bundle_actions WHERE bundle_sha256 = ? ORDER BY idx", (sha,))
        return [dict(r) for r in rows]


def _replayed(why: str) -> Conflict:
    return Conflict(
        "bundle_replayed",
        f"The bundle is refused: {why}.",
        "Nothing was changed. Make a new bundle on the laptop (it numbers each kit's bundles); "
        "a deliberate downgrade needs --rollback-to.",
    )


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts)) if ts else "earlier"
