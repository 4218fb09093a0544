"""One-shot mDNS questions (RFC 6762 section 5.1): asked from a port of our own, answered to it.

A responder answers a question that comes from a port other than 5353 at once and by unicast
to that port (section 6.7). So the answer comes
- even when the kit multicast the same records less than a second ago (a kit that just started
  or moved): its multicast answer would wait for the once-a-second limit (section 6);
- to our socket alone: a unicast answer to port 5353 reaches one of the sockets bound there,
  often not ours where another mDNS program (avahi on a laptop) shares it.

The browser asks this way once as it starts, beside its own multicast-answer (QM) questions,
and hands each answer to its zeroconf as if heard on port 5353: the same parsing, cache and
listeners. What arrives is hostile until checked: only answers from port 5353 that carry our
question's ID, of at most the size zeroconf takes, and a bounded number of them.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import secrets
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zeroconf import Zeroconf

__all__ = ["async_ask_once"]

log = logging.getLogger(__name__)

MDNS_GROUP, MDNS_PORT = "224.0.0.251", 5353
LISTEN_S = 3.0  # answers taken this long after the question: a busy kit answers within it
MAX_ANSWERS = 64  # packets taken per socket: a flood aimed at the port stops here
MAX_PACKET = 8966  # the largest mDNS packet zeroconf itself accepts
_PTR, _IN = 12, 1  # DNS record type and class


async def async_ask_once(zc: Zeroconf, name: str, interfaces: list[str], listen_s: float = LISTEN_S) -> None:
    """Ask for `name`'s PTR records once on each IPv4 address in `interfaces` (every IPv4
    address of the host when empty: field use only) and feed the answers to `zc` for
    `listen_s` seconds. IPv6 addresses are left to the multicast-answer questions."""
    # zeroconf's own modules: these names are re-exported by the package but not in its __all__
    from zeroconf._dns import DNSQuestion
    from zeroconf._protocol.outgoing import DNSOutgoing
    from zeroconf._utils.net import get_all_addresses

    question_id = secrets.randbelow(0xFFFF) + 1
    query = DNSOutgoing(0, multicast=False, id_=question_id)
    query.add_question(DNSQuestion(name, _PTR, _IN))
    packets = query.packets()
    transports: list[asyncio.DatagramTransport] = []
    try:
        for address in _ipv4(interfaces) if interfaces else get_all_addresses():
            transport = await _open(address, question_id, functools.partial(_deliver, zc))
            if transport is not None:
                transports.append(transport)
                for packet in packets:
                    transport.sendto(packet, (MDNS_GROUP, MDNS_PORT))
        await asyncio.sleep(listen_s)
    finally:
        for transport in transports:
            transport.close()


async def _open(
    address: str, question_id: int, deliver: Callable[[bytes, tuple[str, int]], None]
) -> asyncio.DatagramTransport | None:
    """A transport taking answers to `question_id` on an ephemeral port of `address`; None
    when the address cannot have one (it left the host meanwhile)."""
    try:
        sock = _socket(address)
    except OSError as exc:
        log.debug("one-shot mDNS question not asked on %s: %s", address, exc)
        return None
    try:
        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: _Answers(question_id, deliver), sock=sock
        )
    except BaseException:
        sock.close()
        raise
    return transport


def _ipv4(interfaces: list[str]) -> list[str]:
    return [a for a in interfaces if ipaddress.ip_address(a).version == 4]


def _socket(address: str) -> socket.socket:
    """A UDP socket on an ephemeral port of `address`, its multicast sent out of that address's
    interface alone."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    try:
        sock.setblocking(False)
        sock.bind((address, 0))
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(address))
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)  # as mDNS sends
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)  # a kit on this host hears it
    except OSError:
        sock.close()
        raise
    return sock


def _deliver(zc: Zeroconf, data: bytes, source: tuple[str, int]) -> None:
    """An answer into `zc`, as its own listener takes a response heard on port 5353."""
    from zeroconf._protocol.incoming import DNSIncoming

    message = DNSIncoming(data, source)
    if message.valid and not message.is_query():
        zc.record_manager.async_updates_from_response(message)


class _Answers(asyncio.DatagramProtocol):
    """Hands on the answers to one question; drops anything else that reaches the port."""

    def __init__(self, question_id: int, deliver: Callable[[bytes, tuple[str, int]], None]) -> None:
        self._id = question_id
        self._deliver = deliver
        self.taken = 0

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        if self.taken >= MAX_ANSWERS or addr[1] != MDNS_PORT or not 12 <= len(data) <= MAX_PACKET:
            return
        if int.from_bytes(data[:2], "big") != self._id:
            return
        self.taken += 1
        try:
            self._deliver(data, addr)
        except Exception:  # a packet zeroconf choked on is no reason to stop hearing the rest
            log.warning("one-shot mDNS answer from %s not taken", addr[0], exc_info=True)

    def error_received(self, exc: Exception) -> None:
        log.debug("one-shot mDNS socket: %s", exc)
