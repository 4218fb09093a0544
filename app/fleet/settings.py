"""The app's settings, each declared once. Order: flag, environment, settings file, default."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

from agent.toolkit.settings import resolve, setting

SETTINGS_FILE = "settings.json"
SECTIONS = ("alerts",)  # other parts of settings.json, read where they are used (alerts.py)


@dataclass
class AppSettings:
    home: Path = field(metadata=setting("data dir: inventory, known hosts, settings", env="KITFLEET_HOME"))
    mdns_interfaces: list[str] = field(
        default_factory=list,
        metadata=setting(
            "comma-separated addresses to browse on; empty means every interface",
            env="KITFLEET_MDNS_INTERFACES",
        ),
    )
    request_timeout_s: float = field(
        default=5.0,
        metadata=setting("seconds before a kit counts as unreachable", env="KITFLEET_TIMEOUT", positive=True),
    )
    # 8, not more: with 200 kits, 32 at once made the window's polling loop lag twice the 50 ms
    # goal, and rounds got no faster (benchmarks/fleet_scale.py).
    poll_concurrency: int = field(
        default=8, metadata=setting("kits polled at once", env="KITFLEET_POLL_CONCURRENCY", positive=True)
    )

    @property
    def models_dir(self) -> Path:
        """Where the app writes models it makes (quantized copies) unless told otherwise."""
        return self.home / "models"

    @classmethod
    def resolve(cls, home: Path | None = None, mdns_interfaces: list[str] | None = None) -> AppSettings:
        home = home or _env_path("KITFLEET_HOME") or Path(platformdirs.user_data_dir("kitfleet"))
        home.mkdir(parents=True, exist_ok=True)
        return resolve(
            cls,
            {"mdns_interfaces": mdns_interfaces or None},
            home / SETTINGS_FILE,
            lambda f: f.metadata["env"],
            fixed={"home": home},
            sections=SECTIONS,
        )


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value).expanduser() if value else None
