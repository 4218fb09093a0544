"""One-time pairing codes, bound to the kit's certificate, with lock-out.

The agent stores only the scrypt-derived key of the current code, never the
code itself. A code is single use and expires. Wrong proofs are counted; after
`MAX_FAILURES` pairing locks for a back-off that doubles with each lock-out.
"""

from __future__ import annotations

import hmac
import secrets
import sqlite3
import time
from dataclasses import dataclass

from agent.api.schemas import (
    PAIR_CODE_ALPHABET,
    PAIR_CODE_LENGTH,
    PairRequest,
    pair_key,
    pair_proof,
)
from agent.db import Database
from agent.errors import ApiError

DEFAULT_TTL_S = 600.0
MAX_FAILURES = 5
BASE_LOCKOUT_S = 30.0
MAX_LOCKOUT_S = 3600.0


@dataclass(frozen=True)
class PairCode:
    code: str
    expires_at: float

    @property
    def display(self) -> str:
        half = len(self.code) // 2
        return f"{self.code[:half]}-{self.code[half:]}"


def new_code(db: Database, device_id: str, ttl_s: float = DEFAULT_TTL_S) -> PairCode:
    """Make a fresh code, replacing any earlier one."""
    if ttl_s <= 0:
        raise ValueError("the code's lifetime must be positive")
    code = "".join(secrets.choice(PAIR_CODE_ALPHABET) for _ in range(PAIR_CODE_LENGTH))
    now = time.time()
    with db.transaction() as conn:
        conn.execute(
            "INSERT OR REPLACE INTO pairing_code (id, key, created_at, expires_at) "
            "VALUES (1, ?, ?, ?)",
            (pair_key(code, device_id), now, now + ttl_s),
        )
    return PairCode(code, now + ttl_s)


def verify(db: Database, device_id: str, request: PairRequest) -> None:
    """Accept the proof and consume the code, or raise an ApiError saying why not."""
    now = time.time()
    with db.transaction() as conn:
        lock = conn.execute("SELECT * FROM pairing_lock WHERE id = 1").fetchone()
        if lock["locked_until"] > now:
            wait = int(lock["locked_until"] - now) + 1
            raise ApiError(
                429, "pairing_locked",
                f"pairing is locked after {MAX_FAILURES} wrong codes; try again in {wait} s",
                "check the code shown by `kitfleet-agent pair-code` on the kit",
                headers={"Retry-After": str(wait)},
            )
        row = conn.execute("SELECT key, expires_at FROM pairing_code WHERE id = 1").fetchone()
        if row is None:
            raise ApiError(
                403, "no_pairing_code", "this kit has no active pairing code (it was used or never made)",
                "run `kitfleet-agent pair-code` on the kit for a new one",
            )
        expired = row["expires_at"] <= now
        if expired:
            conn.execute("DELETE FROM pairing_code WHERE id = 1")
        else:
            expected = pair_proof(row["key"], device_id, request.app_id, request.nonce)
            if hmac.compare_digest(expected, request.proof):
                conn.execute("DELETE FROM pairing_code WHERE id = 1")
                conn.execute("UPDATE pairing_lock SET failures = 0, lockouts = 0 WHERE id = 1")
                return
            _count_failure(conn, lock, now)
    # Raised after the transaction committed, so the deletion and the count stick.
    if expired:
        raise ApiError(403, "pairing_code_expired", "the pairing code has expired",
                       "run `kitfleet-agent pair-code` on the kit for a new one")
    raise ApiError(
        403, "pairing_code_wrong",
        "the pairing code is wrong, or the certificate you see is not this kit's",
        "type the code again; if it is right, someone may be intercepting the connection",
    )


def _count_failure(conn: sqlite3.Connection, lock: sqlite3.Row, now: float) -> None:
    failures = lock["failures"] + 1
    if failures < MAX_FAILURES:
        conn.execute("UPDATE pairing_lock SET failures = ? WHERE id = 1", (failures,))
        return
    lockouts = lock["lockouts"] + 1
    backoff = min(BASE_LOCKOUT_S * 2 ** (lockouts - 1), MAX_LOCKOUT_S)
    conn.execute(
        "UPDATE pairing_lock SET failures = 0, lockouts = ?, locked_until = ? WHERE id = 1",
        (lockouts, now + backoff),
    )
