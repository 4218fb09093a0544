"""Receipts back from kits: verified against the pinned certificates and merged into the inventory."""

from app.fleet.receipts.merge import (
    Received,
    ReceiveReport,
    async_receive,
    job_files,
    receipt_files,
    receive,
)
from app.fleet.receipts.opening import ReceiptRefused
from app.fleet.receipts.store import KitImport, ReceiptRecord, ReceiptStore
from app.fleet.receipts.traffic import BundleTraffic, SentBundle, bundle_traffic

__all__ = [
    "BundleTraffic",
    "KitImport",
    "ReceiptRecord",
    "ReceiptRefused",
    "ReceiptStore",
    "ReceiveReport",
    "Received",
    "SentBundle",
    "async_receive",
    "bundle_traffic",
    "job_files",
    "receipt_files",
    "receive",
]
