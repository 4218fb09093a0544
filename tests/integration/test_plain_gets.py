"""The poll's plain GETs (`app/fleet/client/_gets.py`) against a scripted TLS server on loopback:
a kit that is not the adopted one, oversized and malformed answers, a silent kit, and a kept
connection the kit closes just as it is reused (issue 19: the GETs left httpx for a leaner path,
which must keep every guarantee httpx's path gave).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.identity import Identity, load_or_create
from app.fleet.client import KitClient
from app.fleet.client._httpx import httpx
from app.fleet.client._transport import _query
from app.fleet.errors import AgentError, BadAnswer, IdentityChanged, KitUnreachable

TIMEOUT = 1.0
Behaviour = Callable[[int, ssl.SSLSocket], None]  # (connection number from 0, its socket)


class ScriptedKit:
    """A TLS server on 127.0.0.1 serving `identity`'s certificate; each accepted connection is
    handed to `behaviour`. `received` holds every byte each connection sent it."""

    def __init__(self, identity: Identity, behaviour: Behaviour) -> None:
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(identity.cert_path, identity.key_path)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._behaviour = behaviour
        self.received: list[bytearray] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        number = 0
        while True:
            try:
                raw, _ = self._listener.accept()
            except OSError:
                return
            self.received.append(bytearray())
            threading.Thread(target=self._one, args=(number, raw), daemon=True).start()
            number += 1

    def _one(self, number: int, raw: socket.socket) -> None:
        try:
            with self._context.wrap_socket(raw, server_side=True) as tls:
                self._behaviour(number, _Recording(tls, self.received[number]))  # type: ignore[arg-type]
        except (OSError, ValueError):
            pass

    def close(self) -> None:
        self._listener.close()


class _Recording:
    """The socket, with what it receives kept."""

    def __init__(self, tls: ssl.SSLSocket, into: bytearray) -> None:
        self._tls, self._into = tls, into

    def recv(self, size: int) -> bytes:
        data = self._tls.recv(size)
        self._into += data
        return data

    def __getattr__(self, name: str) -> object:
        return getattr(self._tls, name)


def _request(tls: ssl.SSLSocket) -> bytes:
    """One request's head (the GETs send no body), or b"" when the client closed."""
    head = b""
    while b"\r\n\r\n" not in head:
        data = tls.recv(65536)
        if not data:
            return b""
        head += data
    return head


def _answer(body: bytes, status: str = "200 OK", extra: str = "") -> bytes:
    return (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


@pytest.fixture
def identities(tmp_path: Path) -> tuple[Identity, Identity]:
    (tmp_path / "kit").mkdir()
    (tmp_path / "other").mkdir()
    return load_or_create(tmp_path / "kit"), load_or_create(tmp_path / "other")


@pytest.fixture
def serve(identities: tuple[Identity, Identity]) -> Iterator[Callable[..., ScriptedKit]]:
    servers: list[ScriptedKit] = []

    def start(behaviour: Behaviour, identity: Identity | None = None) -> ScriptedKit:
        servers.append(ScriptedKit(identity or identities[0], behaviour))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def _client(kit: ScriptedKit, identity: Identity) -> KitClient:
    pem = identity.cert_path.read_text()
    return KitClient("kit", "127.0.0.1", kit.port, pem, identity.device_id, "secret-token", TIMEOUT)


def _health(identity: Identity) -> bytes:
    return json.dumps(
        {"status": "ok", "version": "1", "api_version": "1", "device_id": identity.device_id}
    ).encode()


def _health_twice(client: KitClient) -> None:
    async def twice() -> None:
        try:
            await client.health()
            await client.health()
        finally:
            await client.aclose()

    asyncio.run(twice())


def test_a_kit_with_another_certificate_is_identity_changed_and_gets_no_token(
    serve: Callable[..., ScriptedKit], identities: tuple[Identity, Identity]
) -> None:
    adopted, other = identities

    def answer_anything(_: int, tls: ssl.SSLSocket) -> None:
        if _request(tls):
            tls.sendall(_answer(_health(adopted)))

    impostor = serve(answer_anything, other)
    with pytest.raises(IdentityChanged) as raised:
        _health_twice(_client(impostor, adopted))
    assert raised.value.seen == other.device_id
    assert b"secret-token" not in b"".join(impostor.received)
    assert all(not sent for sent in impostor.received)  # not a byte past the handshake


def test_a_kept_connection_closed_as_it_is_reused_is_retried_on_a_new_one(
    serve: Callable[..., ScriptedKit], identities: tuple[Identity, Identity]
) -> None:
    """The kit answers the first request, then closes that connection when the next arrives
    (its idle deadline passing at that moment): the GET goes again on a new connection."""
    adopted = identities[0]

    def close_on_second(number: int, tls: ssl.SSLSocket) -> None:
        while _request(tls):
            if number == 0 and len(kit.received[0].split(b"\r\n\r\n")) > 2:
                return  # the second request on the first connection: closed unanswered
            tls.sendall(_answer(_health(adopted)))

    kit = serve(close_on_second)
    _health_twice(_client(kit, adopted))
    assert len(kit.received) == 2
    assert kit.received[1].count(b"GET /v1/health") == 1


def test_a_kit_that_closes_every_connection_unanswered_is_unreachable(
    serve: Callable[..., ScriptedKit], identities: tuple[Identity, Identity]
) -> None:
    kit = serve(lambda _, tls: _request(tls) and None)
    with pytest.raises(KitUnreachable, match="closed the connection"):
        _health_twice(_client(kit, identities[0]))


def test_an_answer_declared_larger_than_the_limit_is_refused_unread(
    serve: Callable[..., ScriptedKit], identities: tuple[Identity, Identity]
) -> None:
    def huge(_: int, tls: ssl.SSLSocket) -> None:
        if _request(tls):
            tls.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 999999999999\r\n\r\n{")

    with pytest.raises(BadAnswer, match="larger than"):
        _health_twice(_client(serve(huge), identities[0]))


def test_a_chunked_answer_past_the_limit_is_refused(
    serve: Callable[..., ScriptedKit], identities: tuple[Identity, Identity]
) -> None:
    """No length declared: the bound holds as chunks arrive (the limit here is 64 KiB)."""
    chunk = b"x" * 4096

    def endless(_: int, tls: ssl.SSLSocket) -> None:
        if _request(tls):
            tls.sendall(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            for _ in range(1000):
                tls.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))

    client = _client(serve(endless), identities[0])

    async def bounded() -> None:
        try:
            await client._request("GET", "/v1/unsure/x", limit=64 << 10)
        finally:
            await client.aclose()

    with pytest.raises(BadAnswer, match="larger than"):
        asyncio.run(bounded())


def test_a_silent_kit_did_not_answer_and_garbage_is_unreachable(
    serve: Callable[..., ScriptedKit], identities: tuple[Identity, Identity]
) -> None:
    def silent(_: int, tls: ssl.SSLSocket) -> None:
        _request(tls)
        tls.recv(1)  # until the client gives up

    with pytest.raises(KitUnreachable, match=f"did not answer within {TIMEOUT:g} s"):
        _health_twice(_client(serve(silent), identities[0]))

    def garbage(_: int, tls: ssl.SSLSocket) -> None:
        if _request(tls):
            tls.sendall(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")

    with pytest.raises(KitUnreachable, match=r"not HTTP/1\.1"):
        _health_twice(_client(serve(garbage), identities[0]))


def test_a_kit_that_trickles_its_answer_is_cut_off_though_each_byte_comes_in_time(
    serve: Callable[..., ScriptedKit], identities: tuple[Identity, Identity]
) -> None:
    """A byte every 0.3 s passes each read's 1 s timeout; without a pace for the whole answer
    the 100 kB answer would hold the poll for eight hours."""

    def trickle(_: int, tls: ssl.SSLSocket) -> None:
        if not _request(tls):
            return
        tls.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n")
        for _ in range(1000):  # until the client gives up (then sendall fails)
            tls.sendall(b" ")
            threading.Event().wait(0.3)

    with pytest.raises(KitUnreachable, match=r"too slowly: \d+ bytes in \d+ s"):
        _health_twice(_client(serve(trickle), identities[0]))


def test_a_refusal_is_the_kits_error_and_a_malformed_body_a_bad_answer(
    serve: Callable[..., ScriptedKit], identities: tuple[Identity, Identity]
) -> None:
    def refuse(_: int, tls: ssl.SSLSocket) -> None:
        if _request(tls):
            body = json.dumps({"error": "unauthorized", "message": "token revoked"}).encode()
            tls.sendall(_answer(body, "401 Unauthorized"))

    with pytest.raises(AgentError, match="token revoked") as refused:
        _health_twice(_client(serve(refuse), identities[0]))
    assert refused.value.status == 401

    def malformed(_: int, tls: ssl.SSLSocket) -> None:
        if _request(tls):
            tls.sendall(_answer(b'{"status": "ok"}'))

    with pytest.raises(BadAnswer, match="/v1/health"):
        _health_twice(_client(serve(malformed), identities[0]))


def test_the_request_carries_the_token_host_and_query(
    serve: Callable[..., ScriptedKit], identities: tuple[Identity, Identity]
) -> None:
    adopted = identities[0]

    def metrics(_: int, tls: ssl.SSLSocket) -> None:
        while _request(tls):
            body = {"device_id": adopted.device_id, "interval_s": 10.0, "samples": []}
            tls.sendall(_answer(json.dumps(body).encode()))

    kit = serve(metrics)
    client = _client(kit, adopted)

    async def ask() -> None:
        try:
            await client.metrics(since=1.5, since_seq=7, limit=10)
        finally:
            await client.aclose()

    asyncio.run(ask())
    head = bytes(kit.received[0]).split(b"\r\n")
    assert head[0] == b"GET /v1/metrics?since=1.5&limit=10&since_seq=7 HTTP/1.1"
    assert f"host: 127.0.0.1:{kit.port}".encode() in [line.lower() for line in head]
    assert b"Authorization: Bearer secret-token" in head


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 5, "offset": 0, "state": ["queued", "running"]},
        {"flag": True, "off": False, "none": None, "since": 1.5, "model": "x y/ä&"},
        {"state": ("done",)},
    ],
)
def test_the_query_is_written_as_httpx_writes_it(params: dict[str, object]) -> None:
    assert _query(params) == str(httpx.QueryParams(params))  # type: ignore[arg-type]


def test_a_body_sent_compressed_unasked_is_not_inflated(
    serve: Callable[..., ScriptedKit], identities: tuple[Identity, Identity]
) -> None:
    """The GETs ask for no encoding; what a kit gzips anyway (a bomb, say) is not inflated: here a
    gzipped health answer, which inflated would pass, is a bad answer."""
    packed = gzip.compress(_health(identities[0]))

    def gzipped(_: int, tls: ssl.SSLSocket) -> None:
        if _request(tls):
            tls.sendall(_answer(packed, extra="content-encoding: gzip\r\n"))

    kit = serve(gzipped)
    with pytest.raises(BadAnswer, match="/v1/health"):
        _health_twice(_client(kit, identities[0]))
    assert b"accept-encoding" not in kit.received[0].lower()
