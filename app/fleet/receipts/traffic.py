"""Per kit, what went out by bundle and what came back by receipt: for the kit's page and the
field report. Bundles sent are the ones `kitfleet bundle create` recorded (`bundles_sent`,
app/fleet/bundles/ledger.py); whether each reached the kit is what the kit's receipts said."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from app.fleet.inventory import Inventory
from app.fleet.receipts.store import KitImport, ReceiptRecord, ReceiptStore

__all__ = ["BundleTraffic", "SentBundle", "bundle_traffic"]

NOT_REPORTED = "no receipt has mentioned it yet"


@dataclass(frozen=True)
class SentBundle:
    sha256: str
    file: str
    sequence: int
    created_at: float
    expires_at: float | None
    carried: list[str]  # one short line per action: "model digits 3", "job batch-infer"
    outcome: str  # applied, failed, refused, applying, or NOT_REPORTED
    reported_at: float | None


@dataclass(frozen=True)
class BundleTraffic:
    sent: list[SentBundle] = field(default_factory=list)
    imports: list[KitImport] = field(default_factory=list)
    receipts: list[ReceiptRecord] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.sent or self.imports or self.receipts)


def bundle_traffic(inventory: Inventory, device_id: str, limit: int = 50) -> BundleTraffic:
    store = ReceiptStore(inventory)
    imports = store.imports(device_id, limit)
    known = {i.bundle_sha256: i for i in store.imports(device_id, 10_000)}
    return BundleTraffic(_sent(inventory, device_id, known, limit), imports, store.receipts(device_id, limit))


def _sent(inventory: Inventory, device_id: str, known: dict[str, KitImport], limit: int) -> list[SentBundle]:
    conn = inventory.db.conn
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'bundles_sent'").fetchone():
        return []  # no bundle made on this laptop yet
    rows = conn.execute(
        "SELECT sha256, path, sequence, targets, actions, created_at, expires_at FROM bundles_sent "
        "WHERE instr(targets, ?) > 0 ORDER BY created_at DESC",
        (device_id,),
    ).fetchall()
    sent = []
    for sha256, path, sequence, targets, actions, created_at, expires_at in rows:
        if device_id not in json.loads(targets):
            continue
        line = known.get(sha256)
        sent.append(
            SentBundle(
                sha256,
                str(path).rsplit("/", 1)[-1],
                int(sequence),
                float(created_at),
                expires_at,
                [_carried(a) for a in json.loads(actions)],
                line.outcome if line else NOT_REPORTED,
                line.at if line else None,
            )
        )
    return sent[:limit]


def _carried(action: object) -> str:
    if not isinstance(action, dict):
        return "?"
    words = [str(action.get(k)) for k in ("type", "name", "version", "kind") if action.get(k) is not None]
    return " ".join(words)
