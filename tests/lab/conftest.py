"""Fixtures for the network lab (tests/lab/netlab.py). Nothing here is autouse."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab.netlab import Lab, unavailable


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    """A fresh bridge with no hosts yet; every namespace and process is gone after the test."""
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    made = Lab(tmp_path)
    try:
        yield made.open()
    finally:
        made.close()
