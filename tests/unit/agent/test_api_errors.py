"""BodyLimit and the error handlers, driven in-process through httpx's ASGI transport."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from pydantic import BaseModel, Field

from agent.api.errors import BodyLimit, install_handlers
from agent.errors import ApiError

LIMIT = 64


class Item(BaseModel):
    name: str
    count: int = Field(ge=0)


async def _echo(request: Request) -> Response:
    return Response(await request.body(), media_type="application/octet-stream")


async def _items(item: Item) -> dict[str, Any]:
    return item.model_dump()


async def _refuse() -> None:
    raise ApiError(409, "busy", "the kit is busy", "try again later", headers={"Retry-After": "5"})


def make_app() -> FastAPI:
    app = FastAPI()
    install_handlers(app)
    app.add_api_route("/echo", _echo, methods=["POST"])
    app.add_api_route("/stream/echo", _echo, methods=["POST"])
    app.add_api_route("/items", _items, methods=["POST"])
    app.add_api_route("/refuse", _refuse, methods=["GET"])
    app.add_middleware(BodyLimit, max_bytes=LIMIT, streams=lambda path: path.startswith("/stream/"))
    return app


def send(
    method: str,
    path: str,
    content: bytes | Iterable[bytes] | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """One request; an iterable `content` goes out chunked, without Content-Length."""

    async def run() -> httpx.Response:
        body: bytes | AsyncIterator[bytes] | None
        if content is None or isinstance(content, bytes):
            body = content
        else:
            chunks = list(content)

            async def stream() -> AsyncIterator[bytes]:
                for chunk in chunks:
                    yield chunk

            body = stream()
        transport = httpx.ASGITransport(app=make_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://kit") as client:
            response = await client.request(method, path, content=body, headers=headers)
            assert ("content-length" in response.request.headers) is isinstance(content, bytes)
            return response

    return asyncio.run(run())


def assert_error(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert set(body) == {"error", "message", "hint"}
    assert body["error"] == error
    assert body["message"]
    return body


@pytest.mark.parametrize("size", [0, 1, LIMIT])
def test_body_within_the_limit_passes_intact(size: int) -> None:
    data = bytes(range(size))
    assert send("POST", "/echo", data).content == data


@pytest.mark.parametrize("chunks", [[b"a" * 10, b"b" * 20, b"c" * 34], [b"x"], [b"", b"y" * 5]])
def test_chunked_body_within_the_limit_passes_intact(chunks: list[bytes]) -> None:
    assert send("POST", "/echo", chunks).content == b"".join(chunks)


def test_body_over_the_limit_with_content_length_is_refused() -> None:
    body = assert_error(send("POST", "/echo", b"x" * (LIMIT + 1)), 413, "body_too_large")
    assert str(LIMIT) in body["message"]


@pytest.mark.parametrize("chunks", [[b"x" * (LIMIT + 1)], [b"x" * 40, b"y" * 40], [b"z"] * (LIMIT + 1)])
def test_chunked_body_over_the_limit_is_refused(chunks: list[bytes]) -> None:
    assert_error(send("POST", "/echo", chunks), 413, "body_too_large")


def test_oversized_json_is_refused_before_validation() -> None:
    payload = b'{"name": "' + b"n" * LIMIT + b'", "count": 1}'
    assert_error(send("POST", "/items", payload, {"content-type": "application/json"}), 413, "body_too_large")


def test_streaming_routes_opt_out_of_the_limit() -> None:
    data = b"m" * (LIMIT * 4)
    assert send("POST", "/stream/echo", [data[:100], data[100:]]).content == data


def test_valid_json_reaches_the_route() -> None:
    response = send("POST", "/items", b'{"name": "a", "count": 2}', {"content-type": "application/json"})
    assert response.status_code == 200
    assert response.json() == {"name": "a", "count": 2}


@pytest.mark.parametrize("payload", [b"{not json", b'{"name": "a",', b"\xff\xfe"])
def test_malformed_json_is_a_400(payload: bytes) -> None:
    body = assert_error(
        send("POST", "/items", payload, {"content-type": "application/json"}), 400, "malformed_json"
    )
    assert body["hint"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (b'{"name": "a", "count": -1}', "count"),
        (b'{"count": 1}', "name"),
        (b'{"name": "a", "count": "many"}', "count"),
    ],
)
def test_validation_error_is_a_422_naming_the_field(payload: bytes, field: str) -> None:
    body = assert_error(
        send("POST", "/items", payload, {"content-type": "application/json"}), 422, "invalid_request"
    )
    assert body["message"].startswith(f"{field}:")


def test_api_error_keeps_its_status_hint_and_headers() -> None:
    response = send("GET", "/refuse")
    body = assert_error(response, 409, "busy")
    assert body == {"error": "busy", "message": "the kit is busy", "hint": "try again later"}
    assert response.headers["retry-after"] == "5"


def test_unknown_path_is_a_json_404() -> None:
    assert_error(send("GET", "/nowhere"), 404, "not_found")


def test_wrong_method_is_a_json_405() -> None:
    response = send("GET", "/items")
    assert_error(response, 405, "method_not_allowed")
    assert "POST" in response.headers["allow"]
