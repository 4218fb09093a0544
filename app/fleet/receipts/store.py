"""What came back from each kit by receipt: the receipts merged, and the bundles the kits say
they imported. Two tables of the inventory, made when first needed (`CREATE ... IF NOT
EXISTS`: they hold nothing an older kitfleet reads, so they need no schema step of their own).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from agent.wire.receipts import ImportReceipt, Receipt
from app.fleet.inventory import Inventory
from app.fleet.sqlite_lib import sqlite_utils

__all__ = ["KitImport", "ReceiptRecord", "ReceiptStore"]


@dataclass(frozen=True)
class ReceiptRecord:
    """One receipt merged into the inventory."""

    sha256: str
    device_id: str
    seq: int
    exported_at: float
    received_at: float
    file: str
    counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class KitImport:
    """A bundle a kit imported (or refused), as its receipt said."""

    device_id: str
    bundle_sha256: str
    sequence: int | None
    outcome: str
    at: float
    message: str
    receipt_sha256: str


class ReceiptStore:
    def __init__(self, inventory: Inventory) -> None:
        self._db: sqlite_utils.Database = inventory.db
        with self._db.conn:
            self._db.execute("""
                CREATE TABLE IF NOT EXISTS receipts (
                    sha256 TEXT PRIMARY KEY, device_id TEXT NOT NULL, seq INTEGER NOT NULL,
                    exported_at REAL NOT NULL, received_at REAL NOT NULL, file TEXT NOT NULL,
                    counts TEXT NOT NULL, notes TEXT NOT NULL)""")
            self._db.execute("CREATE INDEX IF NOT EXISTS receipts_kit ON receipts (device_id, seq)")
            self._db.execute("""
                CREATE TABLE IF NOT EXISTS kit_imports (
                    device_id TEXT NOT NULL, bundle_sha256 TEXT NOT NULL, sequence INTEGER,
                    outcome TEXT NOT NULL, at REAL NOT NULL, message TEXT NOT NULL,
                    receipt_sha256 TEXT NOT NULL, PRIMARY KEY (device_id, bundle_sha256))""")

    def known(self, sha256: str) -> ReceiptRecord | None:
        row = self._db.execute(f"SELECT {_RECEIPT} FROM receipts WHERE sha256 = ?", (sha256,)).fetchone()  # noqa: S608 - constant
        return _record(row) if row else None

    def add_imports(self, device_id: str, receipt_sha256: str, imports: list[ImportReceipt]) -> int:
        """Store what the kit imported, one line per bundle: its newest record wins (a bundle
        applying at one export is applied at the next). Returns how many lines changed."""
        start = self._db.conn.total_changes
        self._db.conn.executemany(
            "INSERT INTO kit_imports (device_id, bundle_sha256, sequence, outcome, at, message, "
            "receipt_sha256) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (device_id, bundle_sha256) "
            "DO UPDATE SET sequence = excluded.sequence, outcome = excluded.outcome, at = excluded.at, "
            "message = excluded.message, receipt_sha256 = excluded.receipt_sha256 "
            "WHERE excluded.at > kit_imports.at",
            [
                (device_id, i.bundle_sha256, i.sequence, i.outcome, i.at, i.message, receipt_sha256)
                for i in imports
            ],
        )
        return int(self._db.conn.total_changes - start)

    def add(
        self, sha256: str, receipt: Receipt, file: str, received_at: float, counts: dict[str, int]
    ) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO receipts (sha256, device_id, seq, exported_at, received_at, file, "
            "counts, notes) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                sha256,
                receipt.device_id,
                receipt.seq,
                receipt.exported_at,
                received_at,
                file,
                json.dumps(counts),
                json.dumps(receipt.notes),
            ),
        )

    def receipts(self, device_id: str | None = None, limit: int = 100) -> list[ReceiptRecord]:
        """Newest first (by the kit's receipt number), of one kit or all."""
        where, params = ("WHERE device_id = ?", (device_id,)) if device_id else ("", ())
        rows = self._db.execute(
            f"SELECT {_RECEIPT} FROM receipts {where} ORDER BY received_at DESC, seq DESC LIMIT ?",  # noqa: S608 - constant
            (*params, limit),
        ).fetchall()
        return [_record(r) for r in rows]

    def imports(self, device_id: str | None = None, limit: int = 100) -> list[KitImport]:
        """Newest first, of one kit or all."""
        where, params = ("WHERE device_id = ?", (device_id,)) if device_id else ("", ())
        sql = f"SELECT {_IMPORT} FROM kit_imports {where} ORDER BY at DESC LIMIT ?"  # noqa: S608 - constant
        rows = self._db.execute(
            sql,
            (*params, limit),
        ).fetchall()
        return [KitImport(*r) for r in rows]


_IMPORT = "device_id, bundle_sha256, sequence, outcome, at, message, receipt_sha256"
_RECEIPT = "sha256, device_id, seq, exported_at, received_at, file, counts, notes"


def _record(row: Any) -> ReceiptRecord:
    sha256, device_id, seq, exported_at, received_at, file, counts, notes = row
    return ReceiptRecord(
        sha256, device_id, int(seq), exported_at, received_at, file, json.loads(counts), json.loads(notes)
    )
