"""Fact families as the inventory stores them: the JSON a kit sent, read back typed.

Rows may be months old, written by an older app from an older kit, so reading never fails:
the contract reads what it can (a family it cannot read comes back unavailable, saying why),
and a row that is not JSON at all reads as no facts.
"""

from __future__ import annotations

import json
import logging

from pydantic import ValidationError

from agent.wire import FactFamilies

__all__ = ["dump_families", "load_families"]

_log = logging.getLogger(__name__)


def dump_families(families: FactFamilies) -> str:
    """The JSON to store: the families as the kit sent them (only the fields it set)."""
    return json.dumps(families.wire())


def load_families(text: str) -> FactFamilies:
    """Typed families from a stored row, whatever version wrote it."""
    try:
        return FactFamilies.model_validate_json(text)
    except ValidationError:  # not JSON, or not a mapping of families
        _log.warning("stored facts are unreadable; treating them as none")
        return FactFamilies()
