"""Per-kit precision decisions in the app's inventory (issue 21): which variant of a model each
kit runs, and why, as `choose-precision` measured it. One row per (kit, model), the latest."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from app.fleet.sqlite_lib import sqlite_utils

__all__ = ["PrecisionChoices", "StoredChoice", "v5_precision_choices"]


def v5_precision_choices(db: sqlite_utils.Database) -> None:
    """Inventory step 5: the precision chosen per kit and model, with the measurements behind it."""
    db.execute("""
        CREATE TABLE precision_choices (
            device_id TEXT NOT NULL, model TEXT NOT NULL, version TEXT NOT NULL,
            precision TEXT NOT NULL, reason TEXT NOT NULL, measures TEXT NOT NULL,
            decided_at REAL NOT NULL, PRIMARY KEY (device_id, model))""")


@dataclass(frozen=True)
class StoredChoice:
    device_id: str
    model: str
    version: str
    precision: str
    reason: str
    measures: list[dict[str, object]]
    decided_at: float

    def line(self) -> str:
        """'digits-cnn 1.0-int8 (int8): INT8 runs 1.9x ...' for lists and reports."""
        return f"{self.model} {self.version} ({self.precision}): {self.reason}"


class _Holder(Protocol):
    """The inventory, by what this needs of it (the inventory imports this module for step 5)."""

    @property
    def db(self) -> sqlite_utils.Database: ...


class PrecisionChoices:
    """The inventory's `precision_choices` table."""

    def __init__(self, inventory: _Holder) -> None:
        self._db = inventory.db

    def record(self, choice: StoredChoice) -> None:
        with self._db.conn:
            self._db.conn.execute(
                "INSERT OR REPLACE INTO precision_choices (device_id, model, version, precision, reason, "
                "measures, decided_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    choice.device_id,
                    choice.model,
                    choice.version,
                    choice.precision,
                    choice.reason,
                    json.dumps(choice.measures),
                    choice.decided_at,
                ),
            )

    def of_kit(self, device_id: str) -> list[StoredChoice]:
        return self._rows("WHERE device_id = ?", [device_id])

    def all(self) -> dict[str, list[StoredChoice]]:
        """device ID -> that kit's choices, by model name."""
        kept: dict[str, list[StoredChoice]] = {}
        for choice in self._rows("", []):
            kept.setdefault(choice.device_id, []).append(choice)
        return kept

    def _rows(self, where: str, args: Iterable[object]) -> list[StoredChoice]:
        cursor = self._db.execute(
            "SELECT device_id, model, version, precision, reason, measures, decided_at "  # noqa: S608
            f"FROM precision_choices {where} ORDER BY device_id, model",
            list(args),
        )
        return [
            StoredChoice(row[0], row[1], row[2], row[3], row[4], _measures(row[5]), float(row[6]))
            for row in cursor.fetchall()
        ]


def _measures(text: str) -> list[dict[str, object]]:
    try:
        value = json.loads(text)
    except ValueError:
        return []
    return [m for m in value if isinstance(m, dict)] if isinstance(value, list) else []
