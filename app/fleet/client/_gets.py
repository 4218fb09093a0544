"""Plain GETs to one kit over kept TLS connections: TLS by `ssl.SSLObject` on a plain asyncio
connection, pinned to the adopted certificate, and h11 to read HTTP/1.1 (the parser httpx
itself reads with, by the same authors).

The window polls every kit every few seconds, each poll one small GET. Measured against a real
agent on loopback, the app's CPU for a kit's first poll (connection, TLS, /v1/health, then the
overview) was 1.1 + 4.0 + 2.6 ms through httpx, in its layers of pools, streams and anyio's
TLS; by this path it is 0.03 + 1.6 + 0.9 ms. With 1,000 kits that was most of a poll round's
CPU (issue 19). Requests that send a body, stream an answer or set their own timeout stay with
httpx.

What is kept is only ever a connection that presented the kit's pinned certificate; the bearer
token goes out on no other. An answer is read only to the size the caller allows, and only as
long as it keeps a pace (`SLOWEST`): each read must come within the timeout, as on httpx's path,
and the whole answer within `SLOW_GRACE` timeouts plus a second per `SLOWEST` bytes, so a kit
that trickles a byte every few seconds does not hold a poll for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import sys
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import h11

from app.fleet.tls import any_certificate_context

__all__ = ["Answer", "ConnectFailed", "Gets", "NotPinned", "TooBig", "TooSlow"]

IDLE_POOL = 4  # connections kept idle at most (more open only while requests overlap)
_CHUNK = 1 << 16
_HELD = 1 << 20  # raw bytes held unread at most before the kit is made to wait
SLOW_GRACE = 4  # timeouts an answer may take in all, before its pace counts
SLOWEST = 16 << 10  # bytes a second an answer keeps up on average past that (128 kbit/s)
T = TypeVar("T")


class ConnectFailed(Exception):
    """No connection was made (refused, unroutable, TLS failed); `__cause__` says why."""


class NotPinned(Exception):
    """The kit presented a certificate other than the pinned one (`seen`, DER); nothing was sent."""

    def __init__(self, seen: bytes) -> None:
        super().__init__("the kit presented another certificate than the one adopted")
        self.seen = seen


class TooBig(Exception):
    """The answer is larger than the caller reads."""


class TooSlow(Exception):
    """The answer came slower than `SLOWEST` bytes a second, after `SLOW_GRACE` timeouts."""

    def __init__(self, received: int, seconds: float) -> None:
        super().__init__(
            f"the answer came too slowly: {received} bytes in {seconds:.0f} s "
            f"(an answer may take {SLOW_GRACE} timeouts, then must keep up {SLOWEST >> 10} KiB/s)"
        )


@dataclass(frozen=True)
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


class _Tls(asyncio.Protocol):
    """One TCP connection to a kit with TLS over memory buffers (`ssl.SSLObject`).

    asyncio's own TLS transport would do, but gives each connection a 256 KiB read buffer of
    its own: 256 MB of the window's memory with a thousand kits' connections kept, and a
    quarter of a first poll round's CPU filling them. Here a connection holds what arrived.
    """

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._incoming, self._outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls: ssl.SSLObject = any_certificate_context().wrap_bio(self._incoming, self._outgoing)
        self._arrived: list[bytes] = []
        self._held = 0  # bytes in _arrived
        self._paused = False
        self._ended = False
        self._waiter: asyncio.Future[None] | None = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._arrived.append(data)
        self._held += len(data)
        if self._held > _HELD and self._transport is not None and not self._paused:
            self._transport.pause_reading()  # a kit sending faster than it is read waits
            self._paused = True
        self._wake()

    def eof_received(self) -> bool:
        self._ended = True
        self._wake()
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _arrival(self) -> bytes:
        """The raw bytes that arrived since the last call (waiting for some); b"" at the end."""
        while not self._arrived and not self._ended:
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        arrived, self._arrived, self._held = b"".join(self._arrived), [], 0
        if self._paused and self._transport is not None:
            self._transport.resume_reading()
            self._paused = False
        return arrived

    def _flush(self) -> None:
        pending = self._outgoing.read()
        if pending and self._transport is not None:
            self._transport.write(pending)

    # the connection as the GETs use it
    async def handshake(self) -> None:
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                arrived = await self._arrival()
                if not arrived:
                    raise ConnectionResetError("the kit closed the connection in the TLS handshake") from None
                self._incoming.write(arrived)
        self._flush()

    def send(self, data: bytes) -> None:
        self.tls.write(data)
        self._flush()

    async def receive(self) -> bytes:
        """Decrypted bytes, as many as are ready (waiting for some); b"" when the kit ended."""
        while True:
            try:
                return self.tls.read(_CHUNK)
            except ssl.SSLWantReadError:
                arrived = await self._arrival()
                if not arrived:
                    return b""  # the end without TLS's goodbye: what was answered says if it matters
                self._incoming.write(arrived)
            except ssl.SSLZeroReturnError:  # TLS's goodbye
                return b""

    def quiet(self) -> bool:
        """Nothing arrived and nothing ended while the connection sat idle: a kit closing it
        sends TLS's goodbye at once, then its TCP close."""
        return not self._arrived and not self._ended and self._transport is not None

    def drop(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def close(self) -> None:
        """TLS's goodbye, then the TCP close; the kit's goodbye is not waited for."""
        with contextlib.suppress(ssl.SSLError):  # waiting for the kit's goodbye, or already broken
            self.tls.unwrap()
        self._flush()
        if self._transport is not None:
            self._transport.close()


@dataclass
class _Line:
    tls: _Tls
    http: h11.Connection
    idle_since: float

    def usable(self, now: float, keep_s: float) -> bool:
        """Not idle too long, and not closed or being closed by the kit."""
        return now - self.idle_since < keep_s and self.tls.quiet()


class _Stale(Exception):
    """A kept connection ended before any answer came: the kit had closed it."""


class Gets:
    """GET requests to host:port over TLS pinned to the certificate `pinned` (DER), connections
    kept up to `keep_s`."""

    def __init__(
        self,
        host: str,
        port: int,
        pinned: bytes,
        headers: list[tuple[str, str]],
        timeout: float,
        keep_s: float,
    ) -> None:
        self.host, self.port = host, port
        self._pinned = pinned
        self._headers = headers
        self._timeout = timeout
        self._keep_s = keep_s
        self._idle: list[_Line] = []
        self._closed = False

    async def get(self, target: str, limit: int) -> Answer:
        """The answer to GET `target` (path and query), read whole but never past `limit` bytes.
        A kept connection the kit closed just as it was reused is retried once on a new one: a
        GET changes nothing, and that close is routine (the kit ends idle connections)."""
        line = self._take()
        if line is not None:
            try:
                return await self._exchange(line, target, limit)
            except _Stale:
                pass
        try:
            return await self._exchange(await self._open(), target, limit)
        except _Stale as exc:
            raise ConnectionResetError("the kit closed the connection without answering") from exc

    async def aclose(self) -> None:
        self._closed = True
        lines, self._idle = self._idle, []
        for line in lines:
            line.tls.close()

    def _take(self) -> _Line | None:
        now = time.monotonic()
        while self._idle:
            line = self._idle.pop()  # the most recently used: the least likely to be closing
            if line.usable(now, self._keep_s):
                return line
            line.tls.drop()
        return None

    def _give_back(self, line: _Line) -> None:
        if self._closed or len(self._idle) >= IDLE_POOL:
            line.tls.close()
            return
        line.idle_since = time.monotonic()
        self._idle.append(line)

    async def _open(self) -> _Line:
        tls = _Tls()

        async def connect() -> None:
            await asyncio.get_running_loop().create_connection(lambda: tls, self.host, self.port)
            await tls.handshake()

        try:
            await _within(connect(), self._timeout)  # as httpx's connect timeout: TCP and TLS
        except (OSError, asyncio.TimeoutError) as exc:  # ssl.SSLError is an OSError
            tls.drop()
            raise ConnectFailed(str(exc) or type(exc).__name__) from exc
        seen = tls.tls.getpeercert(binary_form=True)
        if seen != self._pinned:  # before a byte is sent: the token goes to the pinned key only
            tls.drop()
            raise NotPinned(seen or b"")
        return _Line(tls, h11.Connection(h11.CLIENT), time.monotonic())

    async def _exchange(self, line: _Line, target: str, limit: int) -> Answer:
        http, tls = line.http, line.tls
        kept = False
        try:
            tls.send(
                http.send(h11.Request(method="GET", target=target, headers=self._headers))
                + http.send(h11.EndOfMessage())
            )
            status, body, received = 0, bytearray(), 0
            headers: Sequence[tuple[bytes, bytes]] = ()
            clock = asyncio.get_running_loop().time
            started = clock()
            while True:
                event = http.next_event()
                if event is h11.NEED_DATA:
                    left = started + SLOW_GRACE * self._timeout + received / SLOWEST - clock()
                    if left <= 0:
                        raise TooSlow(received, clock() - started)
                    try:
                        data = await _within(tls.receive(), min(self._timeout, left))
                    except asyncio.TimeoutError:
                        if left < self._timeout:  # the pace ran out, not one read's patience
                            raise TooSlow(received, clock() - started) from None
                        raise
                    if not data and not received:
                        raise _Stale
                    received += len(data)
                    http.receive_data(data)
                elif isinstance(event, h11.Response):
                    status, headers = event.status_code, event.headers
                    declared = _content_length(headers)
                    if declared is not None and declared > limit:
                        raise TooBig
                elif isinstance(event, h11.Data):
                    body += event.data
                    if len(body) > limit:
                        raise TooBig
                elif isinstance(event, h11.EndOfMessage):
                    break
                elif isinstance(event, h11.ConnectionClosed):
                    raise ConnectionResetError("the kit closed the connection mid-answer")
                # an informational (1xx) answer: the real one follows
            if http.our_state is h11.DONE and http.their_state is h11.DONE:
                http.start_next_cycle()
                kept = True
            return Answer(
                status,
                [(name.decode("latin-1"), value.decode("latin-1")) for name, value in headers],
                bytes(body),
            )
        except h11.ProtocolError as exc:
            raise ConnectionError(f"the kit's answer is not HTTP/1.1: {exc}") from exc
        finally:
            if kept:
                self._give_back(line)
            else:
                line.tls.drop()


def _content_length(headers: Sequence[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            return int(value)  # h11 accepts only digits here
    return None


async def _within(awaitable: Awaitable[T], timeout: float) -> T:
    if sys.version_info >= (3, 11):  # a timer, where wait_for makes a task of each read
        async with asyncio.timeout(timeout):
            return await awaitable
    return await asyncio.wait_for(awaitable, timeout)
