"""Fleet's view of announcements against a real inventory; no network is touched."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.fleet.service import Fleet
from app.fleet.settings import AppSettings
from tests.unit.app.samples import announcement, make_kit

ADOPTED = "ad" * 32
STRANGER = "5e" * 32


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    fleet = Fleet(AppSettings.resolve(home=tmp_path, mdns_interfaces=["127.0.0.1"]))
    fleet.inventory.save(make_kit(ADOPTED, "kit-1", host="192.0.2.10", port=8443))
    yield fleet
    fleet.close()


def test_adopted_kit_is_marked_adopted(fleet: Fleet) -> None:
    assert fleet.marking(announcement(ADOPTED, "kit-1")) == "adopted"


def test_adopted_kit_is_recognised_by_device_id_alone(fleet: Fleet) -> None:
    assert fleet.marking(announcement(ADOPTED, "renamed", "198.51.100.4", 9443)) == "adopted"


def test_unknown_kit_elsewhere_is_unadopted(fleet: Fleet) -> None:
    assert fleet.marking(announcement(STRANGER, "kit-2", "192.0.2.20")) == "unadopted"


def test_same_host_on_another_port_is_unadopted(fleet: Fleet) -> None:
    assert fleet.marking(announcement(STRANGER, "kit-2", "192.0.2.10", 9443)) == "unadopted"


def test_same_name_with_another_device_id_elsewhere_is_a_conflict(fleet: Fleet) -> None:
    assert fleet.marking(announcement(STRANGER, "kit-1", "198.51.100.4")) == "conflict"


def test_same_address_with_another_device_id_is_identity_changed(fleet: Fleet) -> None:
    assert fleet.marking(announcement(STRANGER, "kit-2", "192.0.2.10", 8443)) == "identity_changed"


def test_any_announced_address_counts(fleet: Fleet) -> None:
    seen = announcement(STRANGER, "kit-2", "fe80::1", 8443, "192.0.2.10")
    assert fleet.marking(seen) == "identity_changed"


def test_kit_already_known_as_changed_stays_marked(fleet: Fleet) -> None:
    fleet.inventory.update(ADOPTED, state="identity_changed")
    assert fleet.marking(announcement(ADOPTED, "kit-1")) == "identity_changed"


def test_empty_inventory_marks_everything_unadopted(tmp_path: Path) -> None:
    empty = Fleet(AppSettings.resolve(home=tmp_path / "empty", mdns_interfaces=["127.0.0.1"]))
    try:
        assert empty.marking(announcement(STRANGER, "kit-1")) == "unadopted"
    finally:
        empty.close()
