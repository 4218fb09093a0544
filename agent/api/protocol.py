"""uvicorn's HTTP protocol with a deadline and a size bound on request headers.

uvicorn times out idle keep-alive connections, but any byte received cancels that timer,
and nothing bounds how long a client may take to finish a request's headers: a slow
client (slowloris) sending one header byte now and then holds its connection, and one of
the agent's `limit_concurrency` slots, for ever. Here every connection must complete each
request's headers within `header_timeout_s` of connecting or of its previous response, and
in at most `max_header_bytes`; otherwise it is closed (431 when the headers are too big).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

TOO_LARGE = (b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
             b"connection: close\r\ncontent-length: %d\r\n\r\n%s")
_TOO_LARGE_BODY = (b'{"error":"headers_too_large","message":"the request headers are too large",'
                   b'"hint":"send fewer or shorter headers"}')


class GuardedHttp(HttpToolsProtocol):
    """Set `header_timeout_s` and `max_header_bytes` on the class before serving."""

    header_timeout_s = 10.0
    max_header_bytes = 64 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._header_bytes = 0
        # Between a request's headers and the end of its body. An early answer (413, 409, 507
        # before the body is read) completes the response while body bytes still arrive: they
        # are not the next request's headers and must not start its deadline or count as such.
        self._in_body = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        waiting = self._deadline is not None
        super().data_received(data)
        if waiting and self._deadline is not None:  # still no complete headers after this data
            self._header_bytes += len(data)
            if self._header_bytes > self.max_header_bytes and not self.transport.is_closing():
                self._disarm()
                self.transport.write(TOO_LARGE % (len(_TOO_LARGE_BODY), _TOO_LARGE_BODY))
                self.transport.close()

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
        if not busy and not self.transport.is_closing():
            self.transport.close()
