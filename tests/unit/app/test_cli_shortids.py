"""Short IDs (issue 20): a unique prefix names a thing; an ambiguous one lists the candidates."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.fleet.errors import Error
from app.fleet.shortids import pick

IDS = ["6287667874af00000000aaaa", "6287667874bf00000000bbbb", "11aa22bb33cc44dd55ee66ff"]


def _pick(ref: str) -> str:
    return pick(ref, IDS, lambda i: [i], lambda i: i[:12], "job", "`kitfleet jobs list kitA`")


def test_a_unique_prefix_or_the_whole_id_names_one() -> None:
    assert _pick("11aa22") == IDS[2]
    assert _pick("6287667874AF") == IDS[0]
    assert _pick(IDS[1]) == IDS[1]


def test_an_ambiguous_prefix_lists_the_candidates_and_asks_for_more() -> None:
    with pytest.raises(Error, match="give more characters") as said:
        _pick("628766")
    assert "6287667874af" in str(said.value)
    assert "6287667874bf" in str(said.value)


def test_too_short_or_unknown_says_what_to_do() -> None:
    with pytest.raises(Error, match="at least 6 characters"):
        _pick("11aa")
    with pytest.raises(Error, match="`kitfleet jobs list kitA` shows them"):
        _pick("ffffff")


def test_kits_resolve_by_a_unique_name_prefix(tmp_path: Path) -> None:
    from app.fleet.errors import KitNotFound
    from app.fleet.inventory import Inventory

    inventory = Inventory(tmp_path)
    for name, device in (("lab-tower-01", "a1" * 32), ("lab-tower-02", "b2" * 32)):
        inventory.db.table("kits").insert({"device_id": device, "name": name, "host": "127.0.0.1", "port": 1})
    assert inventory.resolve("lab-tower-01").name == "lab-tower-01"
    assert inventory.resolve("B2B2").name == "lab-tower-02"
    with pytest.raises(KitNotFound, match="give more characters"):
        inventory.resolve("lab-tower")
