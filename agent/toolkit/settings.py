"""Settings declared once, as dataclass fields, and resolved in one fixed order.

Each program declares its settings as fields of a dataclass, with a description (and, where it
has one, the environment variable's name) in the field's metadata. `resolve` takes each from
the first place that has it: the command-line flag, the environment, the settings file, the
field's default. Values from the environment (strings) and the file (JSON) are checked against
the field's type; a bad one stops the program with a message that names where it came from.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Collection, Mapping
from dataclasses import Field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = ["describe", "read_settings_file", "resolve", "setting"]

T = TypeVar("T", bound="DataclassInstance")
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def setting(description: str, env: str | None = None, positive: bool = False) -> dict[str, Any]:
    """A field's metadata: what it is for, its environment variable, whether it must be > 0."""
    return {"description": description, "env": env, "positive": positive}


def resolve(
    kind: type[T],
    flags: Mapping[str, Any],
    file: Path,
    env_name: Callable[[Field[Any]], str | None],
    fixed: Mapping[str, Any],
    sections: Collection[str] = (),
) -> T:
    """`kind` with each field from: flag (not None), environment, `file`, default. `fixed` values
    are taken as they are; `sections` are other keys the file may hold (read elsewhere)."""
    settings = [f for f in fields(kind) if f.name not in fixed]
    stored = read_settings_file(file, {f.name for f in settings} | set(sections))
    values = dict(fixed)
    for f in settings:
        env = env_name(f)
        from_env = os.environ.get(env) if env else None
        if flags.get(f.name) is not None:
            values[f.name] = flags[f.name]
        elif from_env is not None:
            values[f.name] = _coerce(str(env), f, from_env)
        elif f.name in stored:
            values[f.name] = _coerce(f"{file}: {f.name}", f, stored[f.name])
    return kind(**values)


def describe(settings: DataclassInstance) -> dict[str, dict[str, Any]]:
    """Every setting's value and description, for showing (`agent config`, logs)."""
    return {
        f.name: {"value": str(getattr(settings, f.name)), "description": f.metadata.get("description", "")}
        for f in fields(settings)
    }


def read_settings_file(path: Path, known: Collection[str]) -> dict[str, Any]:
    """The JSON object in `path` ({} when there is none); unknown keys are refused."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SystemExit(f"cannot read {path}: {exc}; fix or remove the file") from exc
    if not isinstance(data, dict):
        raise SystemExit(f"{path} must hold a JSON object of settings")
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise SystemExit(
            f"{path}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    return data


def _coerce(where: str, f: Field[Any], value: Any) -> Any:
    """Check a value from the environment (a string) or the file (JSON types) against the field."""
    type_name = str(f.type)
    try:
        coerced = _COERCE[type_name.split("[")[0]](value)
    except (KeyError, ValueError, TypeError) as exc:
        raise SystemExit(f"{where}={value!r} is not a valid {type_name} ({exc})") from None
    if f.metadata.get("positive") and coerced <= 0:
        raise SystemExit(f"{where}={value!r} must be positive")
    return coerced


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in _TRUE | _FALSE:
        raise ValueError(f"use one of {', '.join(sorted(_TRUE | _FALSE))}")
    return text in _TRUE


def _number(kind: type[int] | type[float]) -> Callable[[Any], int | float]:
    def parse(value: Any) -> int | float:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise TypeError("expected a number")
        if kind is int and isinstance(value, float):
            raise TypeError("expected a whole number")
        return kind(value)

    return parse


def _list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    raise TypeError("expected a list of strings or a comma-separated string")


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("expected a string")
    return value


_COERCE: dict[str, Callable[[Any], Any]] = {
    "bool": _bool,
    "int": _number(int),
    "float": _number(float),
    "list": _list,
    "str": _str,
}
