"""Bearer tokens: random, stored only as SHA-256, scoped and revocable."""

from __future__ import annotations

import hashlib
import logging
import secrets
import sqlite3
import time
from dataclasses import dataclass

from agent.db import Database
from agent.wire import SCOPES, Scope, TokenInfo

log = logging.getLogger(__name__)
_RANK = {scope: rank for rank, scope in enumerate(SCOPES)}
TOKEN_PREFIX = "kft_"  # noqa: S105 - a marker, not a secret


@dataclass(frozen=True)
class Caller:
    token_id: str
    label: str
    scope: Scope

    def allows(self, needed: Scope) -> bool:
        return _RANK[self.scope] >= _RANK[needed]


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    # last_used_at is bookkeeping: written at most once a minute per token, so a request
    # costs no fsync, and never allowed to fail a request (e.g. on a full disk).
    LAST_USED_GRANULARITY_S = 60.0
    # A token seen valid is trusted again for this long without a database read, so a request
    # needs no thread hop for auth. Revocation through this agent clears it at once; a revocation
    # by another process (the agent's own CLI) takes effect within this time.
    RECHECK_S = 2.0

    def __init__(self, db: Database) -> None:
        self._db = db
        self._last_written: dict[str, float] = {}
        self._recent: dict[str, tuple[Caller, float]] = {}

    def recently_verified(self, secret: str) -> Caller | None:
        """The caller for a token verified within RECHECK_S, without touching the database."""
        seen = self._recent.get(_digest(secret))
        if seen is None or time.monotonic() - seen[1] > self.RECHECK_S:
            return None
        return seen[0]

    def issue(self, label: str, scope: Scope) -> tuple[str, str]:
        """Make a token; returns (token_id, secret). The secret is never stored."""
        token_id = secrets.token_hex(8)
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO tokens (id, hash, label, scope, created_at) VALUES (?, ?, ?, ?, ?)",
                (token_id, _digest(secret), label, scope, time.time()),
            )
        return token_id, secret

    def authenticate(self, secret: str) -> Caller | None:
        rows = self._db.query(
            "SELECT id, label, scope FROM tokens WHERE hash = ? AND revoked_at IS NULL",
            (_digest(secret),),
        )
        if not rows:
            return None
        row = rows[0]
        self._note_use(row["id"])
        caller = Caller(row["id"], row["label"], row["scope"])
        if len(self._recent) > 1024:  # bounded: only live sessions matter
            self._recent.clear()
        self._recent[_digest(secret)] = (caller, time.monotonic())
        return caller

    def _note_use(self, token_id: str) -> None:
        now = time.time()
        if now - self._last_written.get(token_id, 0.0) < self.LAST_USED_GRANULARITY_S:
            return
        try:
            with self._db.transaction() as conn:
                conn.execute("UPDATE tokens SET last_used_at = ? WHERE id = ?", (now, token_id))
        except sqlite3.Error as exc:
            log.warning("could not record token use: %s", exc)
            return
        self._last_written[token_id] = now

    def revoke(self, token_id: str) -> bool:
        with self._db.transaction() as conn:
            cur = conn.execute(
                "UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (time.time(), token_id),
            )
        self._recent.clear()
        return cur.rowcount == 1

    def list(self) -> list[TokenInfo]:
        rows = self._db.query("SELECT * FROM tokens ORDER BY created_at")
        return [
            TokenInfo(
                token_id=row["id"],
                label=row["label"],
                scope=row["scope"],
                created_at=row["created_at"],
                last_used_at=row["last_used_at"],
                revoked=row["revoked_at"] is not None,
            )
            for row in rows
        ]
