"""Facts in the inventory: rows written by older apps read back typed; what is stored keeps its form."""

from __future__ import annotations

import json
import time

from agent.wire import FactFamilies
from app.fleet.inventory import Inventory
from tests.unit.app.samples import make_kit

ALPHA = "a1" * 32

# Exactly what the app stored before the typed families (json.dumps of the kit's mapping).
OLD_ROW = {
    "cpu": {
        "available": True,
        "model": "Intel(R) Xeon(R) Gold 6338",
        "arch": "x86_64",
        "logical_cores": 64,
        "physical_cores": 32,
        "frequency_mhz": None,
        "flags": {"avx2": True, "avx512": True, "vnni": True, "amx": False, "neon": False},
        "int8": {"accelerated": True, "via": "vnni", "recommended": True, "reason": "fast."},
    },
    "memory": {"available": True, "total_bytes": 270000000000, "available_bytes": 200000000000},
    "accelerators": {
        "available": True,
        "devices": [{"vendor": "NVIDIA", "name": "NVIDIA A2", "kind": "gpu", "source": "nvidia-smi"}],
        "device_nodes": [],
        "problems": [],
    },
    "thermal": {"available": False, "reason": "no temperature sensors reported"},
    "kit": {"available": True, "name": "alpha", "kit_model": "Rugged 2U"},
}


def _store_raw(inventory: Inventory, text: str) -> None:
    """Write a facts row as an older app (or a damaged disk) left it."""
    inventory.save(make_kit(ALPHA, "alpha"))
    inventory.db.execute(
        "INSERT OR REPLACE INTO facts (device_id, collected_at, data) VALUES (?, ?, ?)",
        (ALPHA, time.time() - 86400 * 90, text),
    )
    inventory.db.conn.commit()


def test_a_row_an_older_app_stored_reads_typed(inventory: Inventory) -> None:
    _store_raw(inventory, json.dumps(OLD_ROW))
    known = inventory.last_facts(ALPHA)
    assert known is not None
    families, collected_at = known
    assert collected_at < time.time() - 86400 * 89
    assert families.cpu is not None
    assert families.cpu.int8 is not None
    assert families.cpu.int8.via == "vnni"
    assert families.cpu.flags is not None
    assert families.cpu.flags.fp16 is None  # that kit did not know the flag: unknown, not false
    assert families.accelerators is not None
    assert [d.name for d in families.accelerators.devices or []] == ["NVIDIA A2"]
    assert families.thermal is not None
    assert families.thermal.available is False
    assert families.wire() == OLD_ROW


def test_what_is_stored_is_the_json_an_older_app_reads(inventory: Inventory) -> None:
    inventory.save(make_kit(ALPHA, "alpha"))
    inventory.save_facts(ALPHA, FactFamilies.model_validate(OLD_ROW))
    (text,) = inventory.db.execute("SELECT data FROM facts WHERE device_id = ?", (ALPHA,)).fetchone()
    assert json.loads(text) == OLD_ROW  # no nulls added, nothing renamed


def test_a_family_this_app_cannot_read_is_unavailable_and_the_others_stand(inventory: Inventory) -> None:
    odd = {**OLD_ROW, "memory": {"available": True, "total_bytes": "lots"}, "power": "on"}
    _store_raw(inventory, json.dumps(odd))
    known = inventory.last_facts(ALPHA)
    assert known is not None
    families = known[0]
    assert families.memory is not None
    assert families.memory.available is False
    assert "total_bytes" in (families.memory.reason or "")
    assert "kitfleet provision" in (families.memory.reason or "")
    assert families.power is not None
    assert families.power.available is False
    assert families.cpu == FactFamilies.model_validate(OLD_ROW).cpu


def test_a_row_that_is_not_json_reads_as_no_facts(inventory: Inventory) -> None:
    _store_raw(inventory, "{not json")
    known = inventory.last_facts(ALPHA)
    assert known is not None
    assert known[0].wire() == {}
