"""Plain data shaped like what the bridge sends: announcements, kits, statuses, facts."""

from __future__ import annotations

import time
from typing import Any

from agent.wire import FactFamilies
from app.fleet.discovery import Announcement
from app.fleet.inventory import Kit
from app.fleet.service import FactsResult, KitStatus, Marking, Status
from app.gui.tables.kit_row import Sighting

DEVICE_A = "ab12" * 16
DEVICE_B = "cd34" * 16
LAST_SEEN = time.time() - 600  # one fixed moment, so equal samples compare equal


def announcement(device_id: str = DEVICE_A, name: str = "kit-a", port: int = 8443) -> Announcement:
    return Announcement(
        instance=f"{name}._kitfleet._tcp.local.",
        device_id=device_id,
        name=name,
        kit_model="Fly-away kit",
        api_version="1",
        agent_version="0.1.0",
        addresses=("127.0.0.1",),
        port=port,
    )


def sighting(device_id: str = DEVICE_A, name: str = "kit-a", marking: Marking = "unadopted") -> Sighting:
    return Sighting(announcement(device_id, name), marking)


def kit(device_id: str = DEVICE_A, name: str = "kit-a", **changes: Any) -> Kit:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 8443,
        "cert_pem": "PEM",
        "agent_version": "0.1.0",
        "last_seen_at": LAST_SEEN,
    }
    return Kit(device_id=device_id, name=name, **(values | changes))


def status(state: Status, device_id: str = DEVICE_A, **changes: Any) -> KitStatus:
    return KitStatus(kit(device_id, **changes), state)


def families() -> FactFamilies:
    return FactFamilies.model_validate(
        {
            "cpu": {
                "available": True,
                "model": "Ampere Altra",
                "arch": "aarch64",
                "logical_cores": 80,
                "int8": {"recommended": True, "via": "dotprod"},
            },
            "memory": {"available": True, "total_bytes": 64 * 2**30},
            "accelerators": {"available": True, "devices": [{"name": "NVIDIA A2", "kind": "gpu"}]},
            "power": {"available": False, "reason": "no battery reported"},
        }
    )


def facts(device_id: str = DEVICE_A, age_s: float = 0.0, live: bool = True) -> FactsResult:
    return FactsResult(kit(device_id), families(), time.time() - age_s, live=live)
