"""The app's settings, each declared once. Order: flag, environment, settings file, default."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

SETTINGS_FILE = "settings.json"


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
    poll_concurrency: int = field(
        default=32, metadata=_meta("KITFLEET_POLL_CONCURRENCY", "kits polled at once"))

    @classmethod
    def resolve(cls, home: Path | None = None, mdns_interfaces: list[str] | None = None) -> AppSettings:
        home = home or _env_path("KITFLEET_HOME") or Path(platformdirs.user_data_dir("kitfleet"))
        home.mkdir(parents=True, exist_ok=True)
        stored = _read(home / SETTINGS_FILE)
        interfaces = (
            mdns_interfaces
            or _env_list("KITFLEET_MDNS_INTERFACES")
            or list(stored.get("mdns_interfaces", []))
        )
        return cls(
            home=home,
            mdns_interfaces=interfaces,
            request_timeout_s=float(os.environ.get("KITFLEET_TIMEOUT")
                                    or stored.get("request_timeout_s", 5.0)),
            poll_concurrency=int(os.environ.get("KITFLEET_POLL_CONCURRENCY")
                                 or stored.get("poll_concurrency", 32)),
        )


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
