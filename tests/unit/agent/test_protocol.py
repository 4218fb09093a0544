"""The agent's connection transport sends what one event-loop step wrote as one write."""

from __future__ import annotations

import asyncio
import socket

from agent.api.protocol import Coalescing


async def _pair() -> tuple[asyncio.Transport, list[bytes], socket.socket]:
    """A real socket transport whose writes are recorded, and the peer socket."""
    ours, peer = socket.socketpair()
    transport, _ = await asyncio.get_running_loop().connect_accepted_socket(asyncio.Protocol, ours)
    writes: list[bytes] = []
    real = transport.write

    def record(data: bytes | bytearray | memoryview) -> None:
        writes.append(bytes(data))
        real(data)

    transport.write = record  # type: ignore[method-assign]
    return transport, writes, peer


def _read(peer: socket.socket, size: int) -> bytes:
    data = b""
    peer.settimeout(5)
    while len(data) < size:
        data += peer.recv(65536)
    return data


def test_writes_of_one_step_leave_together_and_in_order() -> None:
    async def scenario() -> tuple[list[bytes], bytes]:
        transport, writes, peer = await _pair()
        coalescing = Coalescing(transport, asyncio.get_running_loop())
        coalescing.write(b"HTTP/1.1 200 OK\r\n\r\n")
        coalescing.write(memoryview(b"body"))
        coalescing.write(b"")
        assert writes == []  # nothing leaves before the step ends
        await asyncio.sleep(0)
        coalescing.write(b"next")  # a later step: a write of its own
        await asyncio.sleep(0)
        received = await asyncio.to_thread(_read, peer, 27)
        coalescing.close()
        peer.close()
        return writes, received

    writes, received = asyncio.run(scenario())
    assert writes == [b"HTTP/1.1 200 OK\r\n\r\nbody", b"next"]
    assert received == b"HTTP/1.1 200 OK\r\n\r\nbodynext"


def test_close_sends_what_waits_and_abort_drops_it() -> None:
    async def scenario() -> tuple[list[bytes], list[bytes], bytes]:
        transport, writes, peer = await _pair()
        coalescing = Coalescing(transport, asyncio.get_running_loop())
        coalescing.write(b"last words")
        coalescing.close()
        received = await asyncio.to_thread(_read, peer, 10)
        peer.close()
        other, dropped, other_peer = await _pair()
        aborting = Coalescing(other, asyncio.get_running_loop())
        aborting.write(b"never sent")
        aborting.abort()
        await asyncio.sleep(0)
        other_peer.close()
        return writes, dropped, received

    writes, dropped, received = asyncio.run(scenario())
    assert writes == [b"last words"]
    assert received == b"last words"
    assert dropped == []
