"""The app's settings, each declared once. Order: flag, environment, settings file, default."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import platformdirs

SETTINGS_FILE = "settings.json"
T = TypeVar("T", int, float)


def _meta(env: str, description: str) -> dict[str, str]:
    return {"env": env, "description": description}


@dataclass
class AppSettings:
    home: Path = field(metadata=_meta("KITFLEET_HOME", "data dir: inventory, known hosts, settings"))
    mdns_interfaces: list[str] = field(
        default_factory=list,
        metadata=_meta("KITFLEET_MDNS_INTERFACES",
                       "comma-separated addresses to browse on; empty means every interface"),
    )
    request_timeout_s: float = field(
        default=5.0, metadata=_meta("KITFLEET_TIMEOUT", "seconds before a kit counts as unreachable"))
    # 8, not more: with 200 kits, 32 at once made the window's polling loop lag twice the 50 ms
    # goal, and rounds got no faster (benchmarks/fleet_scale.py).
    poll_concurrency: int = field(
        default=8, metadata=_meta("KITFLEET_POLL_CONCURRENCY", "kits polled at once"))

    @classmethod
    def resolve(cls, home: Path | None = None, mdns_interfaces: list[str] | None = None) -> AppSettings:
        home = home or _env_path("KITFLEET_HOME") or Path(platformdirs.user_data_dir("kitfleet"))
        home.mkdir(parents=True, exist_ok=True)
        stored = _read(home / SETTINGS_FILE)
        interfaces = (
            mdns_interfaces
            or _env_list("KITFLEET_MDNS_INTERFACES")
            or _as_list(stored.get("mdns_interfaces", []), home / SETTINGS_FILE)
        )
        return cls(
            home=home,
            mdns_interfaces=interfaces,
            request_timeout_s=_number(float, "KITFLEET_TIMEOUT", "request_timeout_s", stored, 5.0),
            poll_concurrency=_number(int, "KITFLEET_POLL_CONCURRENCY", "poll_concurrency", stored, 8),
        )


def _number(kind: type[T], env: str, key: str, stored: dict[str, Any], default: T) -> T:
    raw, where = (os.environ[env], env) if os.environ.get(env) else (stored.get(key), key)
    if raw is None:
        return default
    try:
        value = kind(raw)
    except (TypeError, ValueError):
        raise SystemExit(f"{where}={raw!r} is not a valid {kind.__name__}") from None
    if value <= 0:
        raise SystemExit(f"{where}={raw!r} must be positive")
    return value


def _as_list(value: Any, path: Path) -> list[str]:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    raise SystemExit(f"{path}: mdns_interfaces must be a list of addresses")


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value).expanduser() if value else None


def _env_list(name: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


def _read(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SystemExit(f"cannot read {path}: {exc}; fix or remove it") from exc
    return data if isinstance(data, dict) else {}
