"""Receipts out: what ran on a kit, exported as a signed bundle for the laptop to merge."""

from agent.receipts.export import ExportResult, export

__all__ = ["ExportResult", "export"]
