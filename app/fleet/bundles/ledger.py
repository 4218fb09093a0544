"""What the laptop keeps about bundles, in the inventory database: each kit's last sequence
number (so a new bundle is always numbered above it), the signing key each kit trusts, and the
bundles made. The tables are made on first use (`CREATE TABLE IF NOT EXISTS`)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from app.fleet.inventory import Inventory

__all__ = ["Ledger"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS bundle_sequences (device_id TEXT PRIMARY KEY, last INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS signer_kits (
    device_id TEXT PRIMARY KEY, key_id TEXT NOT NULL, updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS bundles_sent (
    sha256 TEXT PRIMARY KEY, path TEXT NOT NULL, sequence INTEGER NOT NULL, targets TEXT NOT NULL,
    signer TEXT NOT NULL, actions TEXT NOT NULL, created_at REAL NOT NULL, expires_at REAL
);
"""


class Ledger:
    def __init__(self, inventory: Inventory) -> None:
        self._conn = inventory.db.conn
        self._conn.executescript(_SCHEMA)

    def next_sequence(self, device_ids: Iterable[str]) -> int:
        """One number above every target's last, taken for all of them (under the write lock:
        two bundles made at once never share a number)."""
        ids = list(device_ids)
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            marks = ",".join("?" * len(ids))
            row = self._conn.execute(
                f"SELECT max(last) FROM bundle_sequences WHERE device_id IN ({marks})",  # noqa: S608
                ids,
            ).fetchone()
            sequence = int(row[0] or 0) + 1
            self._conn.executemany(
                "INSERT INTO bundle_sequences (device_id, last) VALUES (?, ?)"
                " ON CONFLICT (device_id) DO UPDATE SET last = excluded.last",
                [(d, sequence) for d in ids],
            )
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")
        return sequence

    def last_sequence(self, device_id: str) -> int:
        row = self._conn.execute("SELECT last FROM bundle_sequences WHERE device_id = ?", (device_id,))
        found = row.fetchone()
        return int(found[0]) if found else 0

    def trusted_key(self, device_id: str) -> str | None:
        row = self._conn.execute("SELECT key_id FROM signer_kits WHERE device_id = ?", (device_id,))
        found = row.fetchone()
        return str(found[0]) if found else None

    def set_trusted_key(self, device_id: str, key_id: str) -> None:
        with self._conn:
            self._conn.execute(
                "INSERT INTO signer_kits (device_id, key_id, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (device_id) DO UPDATE SET key_id = excluded.key_id,"
                " updated_at = excluded.updated_at",
                (device_id, key_id, time.time()),
            )

    def keys_in_use(self) -> set[str]:
        return {str(r[0]) for r in self._conn.execute("SELECT key_id FROM signer_kits")}

    def record(self, sha256: str, path: str, manifest: dict[str, Any]) -> None:
        with self._conn:
            self._conn.execute(
                "INSERT OR REPLACE INTO bundles_sent (sha256, path, sequence, targets, signer, actions,"
                " created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    sha256,
                    path,
                    manifest["sequence"],
                    json.dumps(manifest["targets"]),
                    manifest["signer"]["key_id"],
                    json.dumps([_summary(a) for a in manifest.get("actions", [])]),
                    manifest["created_at"],
                    manifest.get("expires_at"),
                ),
            )

    def sent(self, device_id: str | None = None) -> list[dict[str, Any]]:
        rows = self._conn.execute("SELECT * FROM bundles_sent ORDER BY created_at").fetchall()
        cols = [d[0] for d in self._conn.execute("SELECT * FROM bundles_sent LIMIT 0").description]
        found = [dict(zip(cols, r, strict=True)) for r in rows]
        return [b for b in found if device_id is None or device_id in json.loads(b["targets"])]


def _summary(action: dict[str, Any]) -> dict[str, Any]:
    kind = action.get("type")
    if kind == "model":
        return {"type": kind, "name": action["manifest"]["name"], "version": action["manifest"]["version"]}
    if kind == "job":
        return {"type": kind, "kind": action["request"].get("kind")}
    if kind == "schedule":
        return {"type": kind, "name": action["request"].get("name")}
    return {k: action[k] for k in ("type", "name", "version") if k in action}
