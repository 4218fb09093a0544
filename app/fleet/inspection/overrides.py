"""What the technician says about a model, over what the inspection infers: one flag (or one
field in the Deploy window) per manifest field."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal, get_args

from agent.wire import Task

__all__ = ["NORMALISE_CHOICES", "NormaliseName", "Overrides", "parse_size"]

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
