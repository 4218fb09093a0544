"""Sample values for the app's unit tests."""

from __future__ import annotations

from app.fleet.discovery import Announcement
from app.fleet.inventory import Kit


def make_kit(device_id: str, name: str, host: str = "192.0.2.10", port: int = 8443) -> Kit:
    return Kit(
        device_id=device_id,
        name=name,
        host=host,
        port=port,
        cert_pem="-----BEGIN CERTIFICATE-----\n...",
        token="kft_secret",
        token_id="t1",
        adopted_at=1000.0,
    )


def announcement(
    device_id: str, name: str, host: str = "192.0.2.10", port: int = 8443, *more_addresses: str
) -> Announcement:
    return Announcement(
        instance=f"{name}._kitfleet._tcp.local.",
        device_id=device_id,
        name=name,
        kit_model="Jetson",
        api_version="1",
        agent_version="0.1.0",
        addresses=(host, *more_addresses),
        port=port,
    )
