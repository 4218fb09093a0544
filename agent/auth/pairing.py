"""One-time pairing codes, bound to the kit's certificate, with lock-out per client.

The agent stores only the scrypt-derived key of the current code, never the
code itself. A code is single use and expires. Wrong proofs are counted per client
address (an IPv6 client by its /64, which one host may hold whole): after `MAX_FAILURES`
that address is locked for a back-off that doubles with each lock-out, while every other
address may still pair, so one stranger cannot lock the technician out. A crowd of
addresses meets a global ceiling: `GLOBAL_MAX_FAILURES` wrong proofs within
`GLOBAL_WINDOW_S` lock pairing for everyone, with its own doubling back-off.

A kit that accepts a proof proves the code back (`confirmation`), so the app can tell
the kit from a rogue that answers yes to anything.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import sqlite3
import time
from dataclasses import dataclass

from agent.db import Database
from agent.errors import Busy, Forbidden
from agent.wire import (
    PAIR_CODE_ALPHABET,
    PAIR_CODE_LENGTH,
    PairRequest,
    pair_confirm,
    pair_key,
    pair_proof,
)

DEFAULT_TTL_S = 600.0
MAX_FAILURES = 5  # wrong proofs from one address before it is locked
GLOBAL_MAX_FAILURES = 50  # wrong proofs from all addresses within GLOBAL_WINDOW_S
GLOBAL_WINDOW_S = DEFAULT_TTL_S  # one code's lifetime: a single address cannot reach the ceiling
BASE_LOCKOUT_S = 30.0
MAX_LOCKOUT_S = 3600.0
FORGET_CLIENT_S = 86400.0  # an address with no wrong proof for a day starts afresh
MAX_CLIENTS = 1024  # addresses remembered at most; the longest quiet are forgotten first
_CHECK_CODE = "check the code shown by `kitfleet-agent pair-code` on the kit"


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
            "INSERT OR REPLACE INTO pairing_code (id, key, created_at, expires_at) VALUES (1, ?, ?, ?)",
            (pair_key(code, device_id), now, now + ttl_s),
        )
    return PairCode(code, now + ttl_s)


def client_key(host: str) -> str:
    """Whom wrong proofs are counted against: an IPv4 address, or an IPv6 client's /64."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host or "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def verify(db: Database, device_id: str, request: PairRequest, client: str) -> bytes:
    """Accept the proof from `client` (the connection's peer address) and consume the code,
    returning the pairing key for the kit's confirmation; or raise a refusal saying why not."""
    now, who = time.time(), client_key(client)
    with db.transaction() as conn:
        _refuse_if_locked(conn, who, now)
        row = conn.execute("SELECT key, expires_at FROM pairing_code WHERE id = 1").fetchone()
        if row is None:
            raise Forbidden(
                "no_pairing_code",
                "this kit has no active pairing code (it was used or never made)",
                "run `kitfleet-agent pair-code` on the kit for a new one",
            )
        expired = row["expires_at"] <= now
        if expired:
            conn.execute("DELETE FROM pairing_code WHERE id = 1")
        else:
            key = bytes(row["key"])
            expected = pair_proof(key, device_id, request.app_id, request.nonce, request.signer_public_key)
            if hmac.compare_digest(expected, request.proof):
                conn.execute("DELETE FROM pairing_code WHERE id = 1")
                conn.execute("UPDATE pairing_lock SET failures = 0, lockouts = 0 WHERE id = 1")
                conn.execute("DELETE FROM pairing_clients WHERE client = ?", (who,))
                return key
            _count_failure(conn, who, now)
    # Raised after the transaction committed, so the deletion and the count stick.
    if expired:
        raise Forbidden(
            "pairing_code_expired",
            "the pairing code has expired",
            "run `kitfleet-agent pair-code` on the kit for a new one",
        )
    raise Forbidden(
        "pairing_code_wrong",
        "the pairing code is wrong, or the certificate you see is not this kit's",
        "type the code again; if it is right, someone may be intercepting the connection",
    )


def confirmation(
    key: bytes, device_id: str, request: PairRequest, token_id: str, scope: str, token: str
) -> tuple[str, str]:
    """The kit's nonce and its proof that it knows the code too (`pair_confirm`)."""
    kit_nonce = secrets.token_hex(16)
    return kit_nonce, pair_confirm(
        key, device_id, request.app_id, request.nonce, kit_nonce, token_id, scope, token
    )


def _refuse_if_locked(conn: sqlite3.Connection, who: str, now: float) -> None:
    everyone = conn.execute("SELECT locked_until FROM pairing_lock WHERE id = 1").fetchone()
    if everyone["locked_until"] > now:
        raise _locked(
            everyone["locked_until"] - now,
            f"pairing is locked after {GLOBAL_MAX_FAILURES} wrong codes from several addresses",
            f"{_CHECK_CODE}; someone on this network may be guessing codes",
        )
    mine = conn.execute("SELECT locked_until FROM pairing_clients WHERE client = ?", (who,)).fetchone()
    if mine is not None and mine["locked_until"] > now:
        raise _locked(
            mine["locked_until"] - now,
            f"pairing is locked for your address ({who}) after {MAX_FAILURES} wrong codes",
            _CHECK_CODE,
        )


def _locked(remaining_s: float, why: str, hint: str) -> Busy:
    wait = int(remaining_s) + 1
    return Busy("pairing_locked", f"{why}; try again in {wait} s", hint, retry_after=wait)


@dataclass(frozen=True)
class _Count:
    failures: int
    lockouts: int
    locked_until: float

    def after_failure(self, limit: int, now: float) -> _Count:
        """One more wrong proof: at `limit` the count starts over and a longer lock begins."""
        if self.failures + 1 < limit:
            return _Count(self.failures + 1, self.lockouts, self.locked_until)
        lockouts = self.lockouts + 1
        return _Count(0, lockouts, now + min(BASE_LOCKOUT_S * 2 ** (lockouts - 1), MAX_LOCKOUT_S))


def _count_failure(conn: sqlite3.Connection, who: str, now: float) -> None:
    row = conn.execute(
        "SELECT failures, lockouts, locked_until FROM pairing_clients WHERE client = ?", (who,)
    ).fetchone()
    mine = (_Count(0, 0, 0.0) if row is None else _Count(*row)).after_failure(MAX_FAILURES, now)
    conn.execute(
        "INSERT OR REPLACE INTO pairing_clients "
        "(client, failures, lockouts, locked_until, updated_at) VALUES (?, ?, ?, ?, ?)",
        (who, mine.failures, mine.lockouts, mine.locked_until, now),
    )
    _forget_quiet_clients(conn, now)
    row = conn.execute(
        "SELECT failures, lockouts, locked_until, window_start FROM pairing_lock WHERE id = 1"
    ).fetchone()
    in_window = now - row["window_start"] < GLOBAL_WINDOW_S
    everyone = _Count(row["failures"] if in_window else 0, row["lockouts"], row["locked_until"])
    everyone = everyone.after_failure(GLOBAL_MAX_FAILURES, now)
    conn.execute(
        "UPDATE pairing_lock SET failures = ?, lockouts = ?, locked_until = ?, window_start = ? WHERE id = 1",
        (
            everyone.failures,
            everyone.lockouts,
            everyone.locked_until,
            row["window_start"] if in_window else now,
        ),
    )


def _forget_quiet_clients(conn: sqlite3.Connection, now: float) -> None:
    """Bounded: addresses quiet for a day, and beyond MAX_CLIENTS the longest quiet, go."""
    conn.execute(
        "DELETE FROM pairing_clients WHERE updated_at < ? AND locked_until < ?", (now - FORGET_CLIENT_S, now)
    )
    conn.execute(
        "DELETE FROM pairing_clients WHERE client NOT IN (SELECT client FROM "
        "pairing_clients ORDER BY updated_at DESC LIMIT ?)",
        (MAX_CLIENTS,),
    )
