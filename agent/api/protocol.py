"""uvicorn's HTTP protocol with a deadline and a size bound on request headers, and one
write per response.

uvicorn times out idle keep-alive connections, but any byte received cancels that timer,
and nothing bounds how long a client may take to finish a request's headers: a slow
client (slowloris) sending one header byte now and then holds its connection, and one of
the agent's `limit_concurrency` slots, for ever. Here every connection must complete each
request's headers within `header_timeout_s` of connecting or of its previous response, and
in at most `max_header_bytes` and `max_header_count` headers; otherwise it is closed (431 when
the headers are too big). Headers are counted as the parser reads them, whatever the reads: a
whole request arriving in one TLS read is parsed (and would be answered) within that read.

A connection closed while its client is still sending lingers, as web servers' do: after a
431, and after an early answer that closes (401, 413 or 507 before the body is read). Closed at
once with the client's bytes still arriving, the socket answers them with a reset, and the client
sees "connection reset" instead of the answer that says what to fix (every time, for headers
sent in 8 KB pieces or a 20 MB body refused from its Content-Length). What still comes is read
and dropped until the client has been quiet for `LINGER_QUIET_S`, and `LINGER_MAX_S` at most;
a body taking longer than that to send is still cut off.

uvicorn writes a response's headers and its body as two writes; over TLS each is a record
and a send() of its own, and the client reads twice. The connection's transport here sends
what was written in one step of the event loop as one write, in order, when the step ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
    b"connection: close\r\ncontent-length: %d\r\n\r\n%s"
)
LINGER_QUIET_S = 0.5  # a closed connection's client has sent nothing for this long: close it
LINGER_MAX_S = 5.0  # and this long after the close at the latest, however it keeps sending
GOODBYE_S = 1.0  # an idle connection the agent closes waits this long for its client's TLS goodbye
_TOO_LARGE_BODY = (
    b'{"error":"headers_too_large","message":"the request headers are too large",'
    b'"hint":"send fewer or shorter headers"}'
)


class _HeadersTooLarge(Exception):
    """Raised from a parser callback: the only way to stop httptools within one read."""


class GuardedHttp(HttpToolsProtocol):
    """Set `header_timeout_s` and `max_header_bytes` on the class before serving."""

    header_timeout_s = 10.0
    max_header_bytes = 64 * 1024
    max_header_count = 256  # far above any client's; 1,600 tiny ones cost more than their bytes

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._header_bytes = 0  # received while a request's headers are incomplete
        self._parsed_bytes = 0  # of this request's request line and headers, as parsed
        self._parsed_count = 0
        self._refused = False  # closed (lingering): whatever arrives is dropped unread
        self._linger_until = 0.0  # loop time to close by, once refused
        # Between a request's headers and the end of its body. An early answer (413, 409, 507
        # before the body is read) completes the response while body bytes still arrive: they
        # are not the next request's headers and must not start its deadline or count as such.
        self._in_body = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._coalescing = Coalescing(transport, self.loop, self._linger_on_close)
        self.transport = self._coalescing
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def shutdown(self) -> None:
        """The agent is stopping: an idle connection closes now, a busy one after its answer."""
        if self.cycle is None or self.cycle.response_complete:
            self._close_idle()
        else:
            super().shutdown()

    def timeout_keep_alive_handler(self) -> None:
        self._close_idle()

    def _close_idle(self) -> None:
        """Close a connection with no request in flight.

        The close sends what is still unsent, then TLS's close_notify, and then asyncio waits
        for the client's own close_notify: 30 s, or until the client closes before Python 3.11.
        An idle client is not reading, so it never answers. Until then the connection held a
        `limit_concurrency` slot, and a stopping agent waited out uvicorn's 10 s graceful
        shutdown for it: with the app's window open, every restart of the agent. The wait is
        cut after GOODBYE_S (an abort of a connection already gone does nothing)."""
        if self.transport.is_closing():
            return
        self.transport.close()
        self.loop.call_later(GOODBYE_S, self._coalescing.abort)

    def data_received(self, data: bytes) -> None:
        if self._refused:  # lingering: dropped unread
            self._linger()
            return
        waiting = self._deadline is not None
        super().data_received(data)
        if waiting and self._deadline is not None:  # still no complete headers after this data
            self._header_bytes += len(data)
            if self._header_bytes > self.max_header_bytes:
                self._refuse_headers()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._parsed_bytes = self._parsed_count = 0

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        self._count_parsed(len(url), 0)

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        self._count_parsed(len(name) + len(value) + 4, 1)  # with ": " and CRLF

    def _count_parsed(self, size: int, headers: int) -> None:
        self._parsed_bytes += size
        self._parsed_count += headers
        if self._parsed_bytes > self.max_header_bytes or self._parsed_count > self.max_header_count:
            self._refuse_headers()
            raise _HeadersTooLarge  # uvicorn stops parsing; its 400 is not sent (below)

    def _refuse_headers(self) -> None:
        self._refused = True
        self._disarm()
        if not self.transport.is_closing():
            self.transport.write(TOO_LARGE % (len(_TOO_LARGE_BODY), _TOO_LARGE_BODY))
            self.transport.close()  # lingers (_linger_on_close)

    def _linger_on_close(self) -> bool:
        """Asked by the transport as it is closed: True when the client may still be sending
        (its headers after a 431, or a body not read to its end), so the close waits (see the
        module's docstring); the transport is closed by `_linger` then."""
        if not (self._refused or self._in_body):
            return False
        self._refused = True
        self._linger_until = self.loop.time() + LINGER_MAX_S
        self.transport.resume_reading()  # uvicorn pauses reads while a body waits for its reader
        self._linger()
        return True

    def _linger(self) -> None:
        """(Re)set the end of a lingering connection: after LINGER_QUIET_S more of quiet, or
        at `_linger_until`, whichever comes first."""
        self._disarm()
        left = self._linger_until - self.loop.time()
        if left <= 0:
            self._coalescing.close_now()
            return
        self._deadline = self.loop.call_later(min(LINGER_QUIET_S, left), self._coalescing.close_now)

    def send_400_response(self, msg: str) -> None:
        if not self._refused:  # after a 431, or lingering, the connection is closing: nothing to say
            super().send_400_response(msg)

    def on_headers_complete(self) -> None:
        self._disarm()
        self._in_body = True
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_body = False
        if self.cycle is not None and self.cycle.response_complete and not self.transport.is_closing():
            self._arm()  # answered before its body ended: the next request's headers start now

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self._in_body and not self.transport.is_closing():
            self._arm()

    def _arm(self) -> None:
        self._disarm()
        self._header_bytes = 0
        self._deadline = self.loop.call_later(self.header_timeout_s, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        busy = (self.cycle is not None and not self.cycle.response_complete) or self.pipeline
        if not busy:
            self._close_idle()


class Coalescing(asyncio.Transport):
    """A transport whose writes within one event-loop step leave as one write at its end.

    Everything else is the wrapped transport's; `close()` sends what is waiting first and
    `abort()` drops it, as a transport's own buffer would be. When `lingers()` says so at
    `close()`, the transport counts as closing from then on, and the wrapped one is closed by
    `close_now()`.
    """

    def __init__(
        self,
        transport: asyncio.Transport,
        loop: asyncio.AbstractEventLoop,
        lingers: Callable[[], bool] = lambda: False,
    ) -> None:
        super().__init__()
        self._transport, self._loop, self._lingers = transport, loop, lingers
        self._waiting: list[bytes] = []
        self._lingering = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not self._waiting:
            self._loop.call_soon(self._send)
        self._waiting.append(bytes(data))

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        for data in list_of_data:
            self.write(data)

    def close(self) -> None:
        self._send()
        if self._lingering or self._transport.is_closing():
            return
        self._lingering = self._lingers()
        if not self._lingering:
            self._transport.close()

    def close_now(self) -> None:
        self._send()
        self._transport.close()

    def abort(self) -> None:
        self._waiting.clear()
        self._transport.abort()

    def write_eof(self) -> None:
        self._send()
        self._transport.write_eof()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._waiting))

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def is_closing(self) -> bool:
        return self._lingering or self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()

    def _send(self) -> None:
        if not self._waiting:
            return
        data = self._waiting[0] if len(self._waiting) == 1 else b"".join(self._waiting)
        self._waiting.clear()
        if not self._transport.is_closing():
            self._transport.write(data)
