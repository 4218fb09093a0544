"""The app's inventory in a real SQLite file: versioned, owner-only, findable by name or ID."""

from __future__ import annotations

import multiprocessing
import sqlite3
import stat
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from agent.wire import FactFamilies, format_device_id
from app.fleet.errors import KitNotFound
from app.fleet.inventory import _MIGRATIONS, DB_FILE, Inventory
from tests.unit.app.samples import make_kit

ALPHA = "a1b2c3d4" + "0" * 56
BRAVO = "a1b2ffff" + "1" * 56
CHARLIE = "c0ffee00" + "2" * 56


@pytest.fixture
def stocked(inventory: Inventory) -> Inventory:
    for device_id, name in ((ALPHA, "Alpha"), (BRAVO, "bravo"), (CHARLIE, "Charlie")):
        inventory.save(make_kit(device_id, name))
    return inventory


def user_version(path: Path) -> int:
    with closing(sqlite3.connect(path)) as conn:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])


def test_new_inventory_is_versioned(inventory: Inventory, tmp_path: Path) -> None:
    assert user_version(tmp_path / DB_FILE) == len(_MIGRATIONS)


def test_inventory_files_are_readable_by_the_owner_only(inventory: Inventory, tmp_path: Path) -> None:
    inventory.save(make_kit(ALPHA, "Alpha"))
    files = list(tmp_path.glob(DB_FILE + "*"))
    assert tmp_path / DB_FILE in files
    assert {stat.S_IMODE(path.stat().st_mode) for path in files} == {0o600}


def test_reopening_keeps_kits_and_version(tmp_path: Path) -> None:
    first = Inventory(tmp_path)
    first.save(make_kit(ALPHA, "Alpha"))
    first.close()
    second = Inventory(tmp_path)
    try:
        assert [k.device_id for k in second.kits()] == [ALPHA]
    finally:
        second.close()
    assert user_version(tmp_path / DB_FILE) == len(_MIGRATIONS)


def test_a_newer_inventory_is_refused(tmp_path: Path) -> None:
    with closing(sqlite3.connect(tmp_path / DB_FILE)) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(SystemExit, match="upgrade the app"):
        Inventory(tmp_path)
    assert user_version(tmp_path / DB_FILE) == 99


def test_a_newer_inventory_is_refused_naming_the_file(tmp_path: Path) -> None:
    with closing(sqlite3.connect(tmp_path / DB_FILE)) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(SystemExit) as caught:
        Inventory(tmp_path)
    assert str(tmp_path / DB_FILE) in str(caught.value.code)


def test_app_id_is_made_once_and_kept(tmp_path: Path) -> None:
    first = Inventory(tmp_path)
    app_id = first.app_id
    assert app_id.startswith("app-")
    assert first.app_id == app_id
    first.close()
    second = Inventory(tmp_path)
    try:
        assert second.app_id == app_id
    finally:
        second.close()


def _open_when_released(home: str, gate: Any) -> str:
    gate.wait()
    try:
        Inventory(Path(home))
        return "ok"
    except sqlite3.Error as exc:
        return repr(exc)


def test_commands_opening_a_new_home_at_once_all_get_in(tmp_path: Path) -> None:
    """As `kitfleet adopt` run for several kits in parallel: one of two connections switching a
    new database to WAL was told "database is locked" at once (1 round in 20 here)."""
    context = multiprocessing.get_context("spawn")  # separate processes, as separate commands are
    with context.Manager() as manager, context.Pool(4) as pool:
        for round_ in range(12):
            gate = manager.Barrier(4)
            home = tmp_path / f"home-{round_}"
            home.mkdir()
            answers = pool.starmap(_open_when_released, [(str(home), gate)] * 4)
            assert answers == ["ok"] * 4, answers
    assert Inventory(tmp_path / "home-0").db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_saved_kit_reads_back_equal(inventory: Inventory) -> None:
    kit = make_kit(ALPHA, "Alpha")
    inventory.save(kit)
    assert inventory.get(ALPHA) == kit


def test_saving_again_replaces_the_kit(inventory: Inventory) -> None:
    inventory.save(make_kit(ALPHA, "Alpha"))
    inventory.save(make_kit(ALPHA, "Alpha", host="192.0.2.99"))
    assert [k.host for k in inventory.kits()] == ["192.0.2.99"]


def test_update_changes_only_the_named_fields(inventory: Inventory) -> None:
    kit = make_kit(ALPHA, "Alpha")
    inventory.save(kit)
    inventory.update(ALPHA, state="identity_changed", last_seen_at=2000.0)
    updated = inventory.get(ALPHA)
    assert (updated.state, updated.last_seen_at) == ("identity_changed", 2000.0)
    assert (updated.name, updated.token, updated.address) == (kit.name, kit.token, kit.address)


def test_get_of_an_unknown_kit_raises(inventory: Inventory) -> None:
    with pytest.raises(KitNotFound, match=CHARLIE):
        inventory.get(CHARLIE)


def test_kits_are_listed_by_name(stocked: Inventory) -> None:
    assert [k.name for k in stocked.kits()] == sorted(k.name for k in stocked.kits())
    assert len(stocked.kits()) == 3


@pytest.mark.parametrize("ref", ["Charlie", "charlie", "CHARLIE"])
def test_resolve_by_name_ignores_case(stocked: Inventory, ref: str) -> None:
    assert stocked.resolve(ref).device_id == CHARLIE


@pytest.mark.parametrize("ref", [CHARLIE, CHARLIE.upper(), "c0ff", "C0FF-EE00", "c0ffee00", "c0ff-ee00-2222"])
def test_resolve_by_device_id_prefix(stocked: Inventory, ref: str) -> None:
    assert stocked.resolve(ref).device_id == CHARLIE


def test_resolve_by_the_shown_device_id(stocked: Inventory) -> None:
    assert stocked.resolve(format_device_id(BRAVO)).device_id == BRAVO


@pytest.mark.parametrize("ref", ["delta", "c0f", "ffff"])
def test_resolve_of_an_unknown_kit_lists_the_known_ones(stocked: Inventory, ref: str) -> None:
    with pytest.raises(KitNotFound) as caught:
        stocked.resolve(ref)
    message = str(caught.value)
    assert repr(ref) in message
    assert all(name in message for name in ("Alpha", "bravo", "Charlie"))


def test_resolve_in_an_empty_inventory_says_how_to_adopt(inventory: Inventory) -> None:
    with pytest.raises(KitNotFound, match="kitfleet adopt"):
        inventory.resolve("alpha")


def test_resolve_of_an_ambiguous_prefix_names_the_candidates(stocked: Inventory) -> None:
    with pytest.raises(KitNotFound, match="several") as caught:
        stocked.resolve("A1B2")
    assert "Alpha" in str(caught.value)
    assert "bravo" in str(caught.value)
    assert "Charlie" not in str(caught.value)


def test_facts_read_back_with_their_time(inventory: Inventory) -> None:
    inventory.save(make_kit(ALPHA, "Alpha"))
    facts = {"cpu": {"available": True, "logical_cores": 8}, "thermal": {"available": False, "reason": "no"}}
    before = time.time()
    inventory.save_facts(ALPHA, FactFamilies.model_validate(facts))
    known = inventory.last_facts(ALPHA)
    assert known is not None
    assert known[0].wire() == facts
    assert before <= known[1] <= time.time()


def test_newer_facts_replace_older(inventory: Inventory) -> None:
    inventory.save(make_kit(ALPHA, "Alpha"))
    inventory.save_facts(ALPHA, FactFamilies.model_validate({"cpu": {"logical_cores": 4}}))
    inventory.save_facts(ALPHA, FactFamilies.model_validate({"cpu": {"logical_cores": 8}}))
    known = inventory.last_facts(ALPHA)
    assert known is not None
    assert known[0].wire() == {"cpu": {"logical_cores": 8}}


def test_no_facts_yet_is_none(inventory: Inventory) -> None:
    inventory.save(make_kit(ALPHA, "Alpha"))
    assert inventory.last_facts(ALPHA) is None
