"""Network facts: interfaces with their addresses, link state, speed and MTU."""

from __future__ import annotations

import socket
from typing import Any

import psutil

from agent.wire import IpAddress, NetworkFacts, NetworkInterface


def collect() -> NetworkFacts:
    """Return every network interface, sorted by name."""
    addresses = psutil.net_if_addrs()
    try:
        stats = psutil.net_if_stats()
    except OSError:  # one refused ioctl (SIOCETHTOOL under qemu-user) fails them all: keep the addresses
        stats = {}
    return NetworkFacts(
        available=True,
        interfaces=[
            NetworkInterface(name=name, **_link(stats.get(name)), **_addresses(addresses.get(name, [])))
            for name in sorted(set(addresses) | set(stats))
        ],
    )


def _link(stat: Any) -> dict[str, Any]:
    """Link state from a psutil snicstats, or Nones for an interface it has no stats for."""
    if stat is None:
        return {"up": None, "speed_mbps": None, "mtu": None}
    # psutil reports 0 when the speed or MTU is unknown (virtual links, Wi-Fi on some drivers).
    return {"up": stat.isup, "speed_mbps": stat.speed or None, "mtu": stat.mtu or None}


def _addresses(own: list[Any]) -> dict[str, Any]:
    """MAC, IPv4 and IPv6 addresses from a list of psutil snicaddr."""
    return {
        "mac": next((addr.address for addr in own if addr.family == psutil.AF_LINK), None),
        "ipv4": [_address(addr) for addr in own if addr.family == socket.AF_INET],
        "ipv6": [_address(addr) for addr in own if addr.family == socket.AF_INET6],
    }


def _address(addr: Any) -> IpAddress:
    return IpAddress(address=addr.address, netmask=addr.netmask)
