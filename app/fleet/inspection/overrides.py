"""What the technician says about a model, over what the inspection infers: one flag (or one
field in the Deploy window) per manifest field."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal, get_args

from pydantic import ValidationError

from agent.wire import Requirements, Task

__all__ = ["NORMALISE_CHOICES", "NormaliseName", "Overrides", "parse_requires", "parse_size"]

NormaliseName = Literal["imagenet", "unit", "symmetric", "none"]
NORMALISE_CHOICES: tuple[str, ...] = get_args(NormaliseName)
_SIZE = re.compile(r"^\s*(\d{1,5})\s*[xX×]\s*(\d{1,5})\s*$")


@dataclass(frozen=True)
class Overrides:
    name: str | None = None
    version: str | None = None
    task: Task | None = None
    labels: Path | None = None
    input_size: tuple[int, int] | None = None  # (height, width)
    normalise: NormaliseName | None = None
    letterbox: bool | None = None
    score_threshold: float | None = None
    requires: Requirements | None = None

    def given(self) -> list[str]:
        """The fields set, as flag names (for a message about them)."""
        return [f"--{f.name.replace('_', '-')}" for f in fields(self) if getattr(self, f.name) is not None]


def parse_size(text: str) -> tuple[int, int]:
    """'640x480' -> (640, 480), height first; a ValueError says the form expected."""
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(f"input size {text!r} is not HEIGHTxWIDTH (e.g. 640x640)")
    height, width = int(match[1]), int(match[2])
    if not (1 <= height <= 8192 and 1 <= width <= 8192):
        raise ValueError(f"input size {text!r}: height and width must be 1 to 8192")
    return height, width


_LISTS = frozenset({"arch", "providers", "cpu_features"})


def parse_requires(items: list[str]) -> Requirements | None:
    """['arch=x86_64,aarch64', 'min_memory_mb=2048'] -> Requirements; a ValueError names the bad item."""
    if not items:
        return None
    fields_given: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in Requirements.model_fields:
            known = ", ".join(Requirements.model_fields)
            raise ValueError(f"--requires {item!r}: write KEY=VALUE with KEY one of {known}")
        value = value.strip()
        fields_given[key] = [v.strip() for v in value.split(",") if v.strip()] if key in _LISTS else value
    try:
        return Requirements.model_validate(fields_given)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"--requires: {problems}") from None
