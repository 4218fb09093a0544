"""The app's bundle-signing identity: an Ed25519 key made at first use, kept 0600 in the app's
home (`signing-key.json`). Kits learn its public half at adoption and provisioning.

A rotation makes a new key and keeps the old ones (private halves too) until every kit that
trusted them has been given the new key: a bundle for a kit not yet reached must still be signed
by a key that kit trusts (`keys_for`).
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.toolkit.bundlesign import ed25519_generate, ed25519_key_id, ed25519_public_key
from agent.toolkit.durable import write_atomic
from app.fleet.errors import Error

__all__ = ["KEY_FILE", "SigningKey", "SigningKeys", "load_or_create", "rotate"]

KEY_FILE = "signing-key.json"


class SigningError(Error):
    """The app's signing key cannot be read or used."""


@dataclass(frozen=True)
class SigningKey:
    private_key: bytes
    created_at: float
    retired_at: float | None = None

    @property
    def public_key(self) -> bytes:
        return ed25519_public_key(self.private_key)

    @property
    def public_b64(self) -> str:
        return base64.b64encode(self.public_key).decode()

    @property
    def key_id(self) -> str:
        return ed25519_key_id(self.public_key)

    def _wire(self) -> dict[str, Any]:
        return {
            "private_key": base64.b64encode(self.private_key).decode(),
            "created_at": self.created_at,
            "retired_at": self.retired_at,
        }


@dataclass
class SigningKeys:
    current: SigningKey
    retired: list[SigningKey] = field(default_factory=list)

    def by_id(self, key_id: str) -> SigningKey | None:
        return next((k for k in [self.current, *self.retired] if k.key_id == key_id), None)


def load_or_create(home: Path) -> SigningKeys:
    path = home / KEY_FILE
    if not path.exists():
        keys = SigningKeys(SigningKey(ed25519_generate(), time.time()))
        _save(home, keys)
        return keys
    try:
        data = json.loads(path.read_text())
        return SigningKeys(_key(data["current"]), [_key(k) for k in data.get("retired", [])])
    except (ValueError, KeyError, TypeError) as exc:
        raise SigningError(
            f"{path} is damaged ({exc}); restore it from a backup, or move it aside to make a new "
            "key (every kit then needs `kitfleet signer rotate` while reachable, or provisioning again)"
        ) from exc


def rotate(home: Path) -> tuple[SigningKeys, SigningKey]:
    """A new current key; the old one is kept (retired) until every kit has the new one."""
    keys = load_or_create(home)
    old = keys.current
    retired = SigningKey(old.private_key, old.created_at, time.time())
    keys = SigningKeys(SigningKey(ed25519_generate(), time.time()), [retired, *keys.retired])
    _save(home, keys)
    return keys, retired


def forget_retired(home: Path, still_needed: set[str]) -> None:
    """Drop retired keys no kit trusts any more (their private halves are then gone)."""
    keys = load_or_create(home)
    kept = [k for k in keys.retired if k.key_id in still_needed]
    if len(kept) != len(keys.retired):
        _save(home, SigningKeys(keys.current, kept))


def _key(data: dict[str, Any]) -> SigningKey:
    raw = base64.b64decode(data["private_key"], validate=True)
    if len(raw) != 32:
        raise ValueError("a private key must be 32 bytes")
    return SigningKey(raw, float(data["created_at"]), data.get("retired_at"))


def _save(home: Path, keys: SigningKeys) -> None:
    body = {"current": keys.current._wire(), "retired": [k._wire() for k in keys.retired]}
    write_atomic(home / KEY_FILE, json.dumps(body, indent=2).encode(), mode=0o600)
