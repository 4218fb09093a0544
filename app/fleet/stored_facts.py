"""Fact families as the inventory stores them: the JSON a kit sent, read back typed.

Rows may be months old, written by an older app from an older kit, so reading never fails:
a family this version cannot read is kept as unavailable, saying why, and the others stand.
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
        data = json.loads(text)
    except ValueError:
        _log.warning("stored facts are not JSON; treating them as none")
        return FactFamilies()
    if not isinstance(data, dict):
        return FactFamilies()
    try:
        return FactFamilies.model_validate(data)
    except ValidationError:
        return FactFamilies.model_validate({name: _readable(name, value) for name, value in data.items()})


def _readable(name: str, value: object) -> object:
    """One family as stored, or an unavailable family when this version cannot read it."""
    try:
        FactFamilies.model_validate({name: value})
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(part) for part in problem["loc"][1:]) or name
        reason = f"stored in a form this app cannot read ({where}: {problem['msg']}); refresh the kit's facts"
        return {"available": False, "reason": reason}
    return value
