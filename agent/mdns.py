"""Announce the kit as `_kitfleet._tcp.local.`; withdraw the announcement on shutdown.

The TXT record is a hint for the app; identity is the certificate it pins.
Zeroconf runs on its own thread, so the announcement starts probing while the
rest of the agent is still importing, and never shares the API's event loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ipaddress
import logging
import random
import re
import socket
from typing import TYPE_CHECKING

import psutil
from zeroconf import IPVersion, ServiceInfo, Zeroconf

from agent.wire import SERVICE_TYPE, TxtRecord

if TYPE_CHECKING:  # zeroconf re-exports it without naming it in __all__
    from zeroconf._protocol.outgoing import DNSOutgoing

log = logging.getLogger(__name__)
_PROBE_WAIT_S = 0.25


def instance_name(name: str, device_id: str) -> str:
    """A DNS-SD instance label: readable, unique per kit, at most 63 bytes."""
    label = re.sub(r"[^A-Za-z0-9 _-]", "-", name).strip() or "kit"
    return f"{label[:48]} {device_id[:8]}"


def ip_version(addresses: list[str]) -> IPVersion:
    versions = {ipaddress.ip_address(a).version for a in addresses}
    if versions == {4}:
        return IPVersion.V4Only
    return IPVersion.V6Only if versions == {6} else IPVersion.All


def _field_addresses() -> list[bytes]:
    return [
        socket.inet_aton(a.address)
        for addrs in psutil.net_if_addrs().values()
        for a in addrs
        if a.family == socket.AF_INET and not a.address.startswith("127.")
    ]


class Advertiser:
    """Owns the agent's zeroconf instance, bound to explicit interfaces when given."""

    def __init__(self, txt: TxtRecord, port: int, interfaces: list[str]) -> None:
        self._interfaces = interfaces
        self._zc: Zeroconf | None = None
        self._registered: concurrent.futures.Future[None] | None = None
        self._info = ServiceInfo(
            SERVICE_TYPE,
            f"{instance_name(txt.name, txt.device_id)}.{SERVICE_TYPE}",
            port=port,
            properties=txt.to_properties(),
            server=f"kitfleet-{txt.device_id[:12]}.local.",
            parsed_addresses=interfaces or None,
        )

    def start(self) -> None:
        """Begin probing and announcing; returns at once."""
        if self._interfaces:
            self._zc = Zeroconf(interfaces=list(self._interfaces), ip_version=ip_version(self._interfaces))
        else:  # field use: every interface
            self._zc = Zeroconf()
            self._info.addresses = _field_addresses()
        loop = self._zc.loop
        assert loop is not None  # zeroconf starts its loop thread in the constructor
        self._registered = asyncio.run_coroutine_threadsafe(self._async_register(), loop)

    async def _async_register(self) -> None:
        assert self._zc is not None
        if await self._async_probe(self._zc):
            await self._zc.async_register_service(self._info, cooperating_responders=True)
        else:  # someone answers for our name: let zeroconf probe again and rename us
            await self._zc.async_register_service(self._info, allow_name_change=True)
        log.info("announcing %s on %s", self._info.name, self._interfaces or "all interfaces")

    async def _async_probe(self, zc: Zeroconf) -> bool:
        """RFC 6762 section 8.1 probing: three queries 250 ms apart after a 0-250 ms wait.

        zeroconf's own probing spaces queries 500 ms apart, which puts a kit on the
        technician's list ~0.5 s later than the RFC requires. True if the name is free.
        """
        await zc.async_wait_for_start()
        await asyncio.sleep(random.uniform(0, _PROBE_WAIT_S))  # noqa: S311 - jitter, not crypto
        for _ in range(3):
            if zc.cache.current_entry_with_name_and_alias(self._info.type, self._info.name):
                return False
            zc.async_send(_multicast_answered(zc.generate_service_query(self._info)))
            await asyncio.sleep(_PROBE_WAIT_S)
        return not zc.cache.current_entry_with_name_and_alias(self._info.type, self._info.name)

    def stop(self) -> None:
        """Send the goodbye (TTL 0) records and close zeroconf."""
        if self._zc is None:
            return
        try:
            if self._registered is not None:
                self._registered.result(timeout=10)
                self._zc.unregister_service(self._info)
        except Exception:  # a failed announcement must not stop the agent shutting down
            log.warning("could not withdraw the mDNS announcement", exc_info=True)
        finally:
            self._zc.close()
            self._zc = None


def _multicast_answered(probe: DNSOutgoing) -> DNSOutgoing:
    """The probe with its questions asking for multicast answers (QM).

    zeroconf asks probes QU, as RFC 6762 suggests, but where another mDNS program shares port
    5353 on the kit (avahi, another agent) a defender's unicast answer reaches only one of the
    sockets bound to it, maybe not ours, and a name already taken would look free.
    """
    for question in probe.questions:
        question.unicast = False
    return probe
