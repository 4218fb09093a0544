"""Announce the kit as `_kitfleet._tcp.local.`; withdraw the announcement on shutdown.

The TXT record is a hint for the app; identity is the certificate it pins.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket

import psutil
from zeroconf import IPVersion, ServiceInfo
from zeroconf.asyncio import AsyncZeroconf

from agent.api.schemas import SERVICE_TYPE, TxtRecord

log = logging.getLogger(__name__)


def instance_name(name: str, device_id: str) -> str:
    """A DNS-SD instance label: readable, unique per kit, at most 63 bytes."""
    label = re.sub(r"[^A-Za-z0-9 _-]", "-", name).strip() or "kit"
    return f"{label[:48]} {device_id[:8]}"


def _ip_version(addresses: list[str]) -> IPVersion:
    versions = {ipaddress.ip_address(a).version for a in addresses}
    if versions == {4}:
        return IPVersion.V4Only
    if versions == {6}:
        return IPVersion.V6Only
    return IPVersion.All


class Advertiser:
    """Owns the agent's zeroconf instance, bound to explicit interfaces when given."""

    def __init__(self, txt: TxtRecord, port: int, interfaces: list[str]) -> None:
        self._interfaces = interfaces
        self._zc: AsyncZeroconf | None = None
        self._info = ServiceInfo(
            SERVICE_TYPE,
            f"{instance_name(txt.name, txt.device_id)}.{SERVICE_TYPE}",
            port=port,
            properties=txt.to_properties(),
            server=f"kitfleet-{txt.device_id[:12]}.local.",
            parsed_addresses=interfaces or None,
        )

    async def async_start(self) -> None:
        if self._interfaces:
            self._zc = AsyncZeroconf(
                interfaces=list(self._interfaces), ip_version=_ip_version(self._interfaces)
            )
        else:  # field use: every interface, addresses filled in by zeroconf
            self._zc = AsyncZeroconf()
            self._info.addresses = [
                socket.inet_aton(a.address) for addrs in psutil.net_if_addrs().values()
                for a in addrs if a.family == socket.AF_INET and not a.address.startswith("127.")
            ]
        await self._zc.async_register_service(self._info, allow_name_change=True)
        log.info("announcing %s on %s", self._info.name, self._interfaces or "all interfaces")

    async def async_stop(self) -> None:
        if self._zc is None:
            return
        try:
            # The call returns the broadcast as a task: await it, or the goodbye never leaves.
            goodbye = await self._zc.async_unregister_service(self._info)
            await goodbye
        finally:
            await self._zc.async_close()
            self._zc = None
