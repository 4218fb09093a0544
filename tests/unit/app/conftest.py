"""Fixtures shared by the app's unit tests: a real inventory in a temporary home."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.fleet.inventory import Inventory


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The runner's own KITFLEET_* variables must not leak into these tests."""
    for name in list(os.environ):
        if name.startswith("KITFLEET_"):
            monkeypatch.delenv(name)


@pytest.fixture
def inventory(tmp_path: Path) -> Iterator[Inventory]:
    inv = Inventory(tmp_path)
    yield inv
    inv.close()
