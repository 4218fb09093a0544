"""The app keys this kit trusts to sign bundles: learnt at adoption or provisioning, or trusted by
hand on the kit; revoked keys stay listed (with when) so a bundle they signed is refused by name."""

from __future__ import annotations

import base64
import binascii
import time
from dataclasses import dataclass

from agent.audit import Actor, AuditLog
from agent.db import Database
from agent.errors import Invalid, NotFound
from agent.toolkit.bundlesign import ed25519_key_id

__all__ = ["Signer", "TrustedSigners", "parse_public_key"]

_CLI = Actor("", "kitfleet-agent (on the kit)")


@dataclass(frozen=True)
class Signer:
    key_id: str
    public_key: bytes
    label: str
    source: str
    added_at: float
    revoked_at: float | None

    def wire(self) -> dict[str, object]:
        return {
            "key_id": self.key_id,
            "public_key": base64.b64encode(self.public_key).decode(),
            "label": self.label,
            "source": self.source,
            "added_at": self.added_at,
            "revoked_at": self.revoked_at,
        }


def parse_public_key(text: str) -> bytes:
    """A raw Ed25519 public key from its base64 text (as `kitfleet signer show` prints it)."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise Invalid(
            "bad_signer_key",
            "a signer key must be 32 bytes of Ed25519 public key in base64",
            "copy the key printed by `kitfleet signer show` on the laptop",
        )
    return raw


class TrustedSigners:
    def __init__(self, db: Database, audit: AuditLog | None = None) -> None:
        self._db, self._audit = db, audit or AuditLog(db)

    def all(self) -> list[Signer]:
        rows = self._db.query("SELECT * FROM trusted_signers ORDER BY added_at")
        return [Signer(**dict(row)) for row in rows]

    def active(self) -> dict[str, bytes]:
        """key id -> raw public key, for every signer not revoked."""
        return {s.key_id: s.public_key for s in self.all() if s.revoked_at is None}

    def trust(self, public_key: bytes, label: str, source: str, actor: Actor = _CLI) -> Signer:
        """Trust `public_key` (again: a revoked key trusted anew is un-revoked)."""
        key_id, now = ed25519_key_id(public_key), time.time()
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO trusted_signers (key_id, public_key, label, source, added_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (key_id) DO UPDATE SET revoked_at = NULL,"
                " label = excluded.label, source = excluded.source",
                (key_id, public_key, label[:200], source[:40], now),
            )
        self._audit.append(actor, "signer.trust", key_id, "ok", {"label": label[:200], "source": source})
        return self.get(key_id)

    def revoke(self, key_id: str, actor: Actor = _CLI) -> Signer:
        signer = self.get(key_id)
        if signer.revoked_at is None:
            with self._db.transaction() as conn:
                conn.execute(
                    "UPDATE trusted_signers SET revoked_at = ? WHERE key_id = ?", (time.time(), key_id)
                )
        self._audit.append(actor, "signer.revoke", key_id, "ok", {"label": signer.label})
        return self.get(key_id)

    def get(self, key_id: str) -> Signer:
        rows = self._db.query("SELECT * FROM trusted_signers WHERE key_id = ?", (key_id,))
        if not rows:
            raise NotFound(
                "signer_not_found",
                f"this kit does not know signer {key_id!r}",
                "list the kit's signers with `kitfleet-agent signers list`",
            )
        return Signer(**dict(rows[0]))
