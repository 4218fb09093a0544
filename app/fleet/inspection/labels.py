"""Class names: from a file the technician names, the exporter's metadata, or a file beside the model."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from app.fleet.inspection.facts import Facts, InspectionError

__all__ = ["BESIDE", "Labels", "find_labels", "read_labels_file"]

BESIDE = ("labels.txt", "classes.txt")
MAX_LABELS = 100_000
_MAX_TEXT = 4 << 20  # a label file or metadata value larger than this is not a list of names


@dataclass(frozen=True)
class Labels:
    names: tuple[str, ...]
    source: str  # where they came from, for the reason and the warnings


def find_labels(facts: Facts, given: Path | None, warnings: list[str]) -> Labels | None:
    """--labels FILE, else Ultralytics `names`, else labels.txt / classes.txt beside the model."""
    if given is not None:
        return Labels(read_labels_file(given), f"{given.name} (--labels)")
    from_metadata = _metadata_names(facts, warnings)
    if from_metadata:
        return Labels(from_metadata, "the exporter's metadata (names)")
    for name in BESIDE:
        beside = facts.path.with_name(name)
        if beside.is_file():
            return Labels(read_labels_file(beside), f"{name} beside the model")
    return None


def read_labels_file(path: Path) -> tuple[str, ...]:
    """One name a line; blank lines at the end are left out."""
    if not path.is_file():
        raise InspectionError(
            f"labels file {path} does not exist: give a text file with one class name a line"
        )
    if path.stat().st_size > _MAX_TEXT:
        raise InspectionError(f"labels file {path.name} is over {_MAX_TEXT >> 20} MiB: is it the right file?")
    text = path.read_bytes().decode("utf-8", errors="replace").lstrip("\ufeff")
    names = [line.strip() for line in text.splitlines()]
    while names and not names[-1]:
        names.pop()
    if not names:
        raise InspectionError(f"labels file {path.name} is empty: one class name a line")
    if len(names) > MAX_LABELS:
        raise InspectionError(f"labels file {path.name} has {len(names)} lines; at most {MAX_LABELS} classes")
    return tuple(names)


def _metadata_names(facts: Facts, warnings: list[str]) -> tuple[str, ...]:
    """Ultralytics writes `names` as a Python dict, "{0: 'person', 1: 'bicycle'}": read as a literal
    (never evaluated), bounded in size, and only a dict of index -> name or a list of names."""
    text = facts.metadata.get("names", "")
    if not text:
        return ()
    value: object = None
    if len(text) <= _MAX_TEXT:
        try:
            value = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            value = None
    names = _as_names(value)
    if names is None:
        warnings.append(
            "the model's metadata `names` is not a list of class names: left out; give --labels FILE"
        )
        return ()
    return names


def _as_names(value: object) -> tuple[str, ...] | None:
    if isinstance(value, dict) and value and len(value) <= MAX_LABELS:
        if not all(type(k) is int for k in value):
            return None
        keys = sorted(value)
        if keys == list(range(len(keys))) and all(isinstance(value[k], str) for k in keys):
            return tuple(str(value[k]) for k in keys)
        return None
    if not isinstance(value, (list, tuple)) or not 0 < len(value) <= MAX_LABELS:
        return None
    return tuple(value) if all(isinstance(v, str) for v in value) else None
