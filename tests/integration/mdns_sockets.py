"""Another mDNS program on this host, for discovery tests: a socket on port 5353 in the mDNS
group on loopback only, and a thread handing each packet it receives to the test."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator

from app.fleet.localagent import LOOPBACK
from app.fleet.mdns_ask import MDNS_GROUP, MDNS_PORT

__all__ = ["MDNS_GROUP", "MDNS_PORT", "group_socket", "receiving"]


def group_socket() -> socket.socket:
    """A socket sharing port 5353 that receives only what is sent to the group on loopback."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((MDNS_GROUP, MDNS_PORT))  # only packets sent to the group
    membership = socket.inet_aton(MDNS_GROUP) + socket.inet_aton(LOOPBACK)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
    sock.settimeout(0.1)
    return sock


@contextlib.contextmanager
def receiving(handle: Callable[[bytes, tuple[str, int]], None], name: str) -> Iterator[None]:
    """`handle(packet, sender)` for each packet `group_socket` receives until the block ends."""
    sock = group_socket()
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            with contextlib.suppress(TimeoutError):
                handle(*sock.recvfrom(9000))

    reader = threading.Thread(target=read, name=name)
    reader.start()
    try:
        yield
    finally:
        done.set()
        reader.join()
        sock.close()
