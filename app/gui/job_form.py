"""What the New Job dialog's fields mean, without Qt: number lists, dataset names, readable refusals."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import ValidationError

from agent.api.schemas import NAME_PATTERN
from app.fleet.errors import Error

__all__ = ["FormError", "dataset_name_for", "explain", "parse_numbers"]

_SEPARATORS = re.compile(r"[\s,;]+")


class FormError(Error):
    """A field the technician must fix before the job can be sent; shown in the dialog."""


def parse_numbers(text: str, what: str, example: str) -> list[int]:
    """Whole numbers separated by commas or spaces ("1, 4, 8")."""
    parts = [p for p in _SEPARATORS.split(text.strip()) if p]
    try:
        return [int(p) for p in parts]
    except ValueError:
        raise FormError(f"{what}: whole numbers separated by commas, e.g. {example}") from None


def dataset_name_for(folder: Path) -> str:
    """A dataset name the kit accepts, made from a folder's name ("Digits Eval" -> "digits-eval")."""
    name = re.sub(r"[^a-z0-9_-]+", "-", folder.name.lower()).strip("-_")[:64]
    return name if re.fullmatch(NAME_PATTERN, name) else "images"


def explain(exc: ValidationError) -> str:
    """A pydantic refusal as one line per problem, without pydantic's own decoration."""
    lines = []
    for error in exc.errors()[:4]:
        where = ".".join(str(part) for part in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        lines.append(f"{where}: {message}" if where else message)
    return "\n".join(lines)
