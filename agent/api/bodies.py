"""Large request bodies that routes stream to disk (model chunks, dataset archives).

The size a client declares is judged before any byte is read, and a client that goes away
mid-body is a dropped link, the case resumable uploads exist for: a warning and a 499 in the
audit log, not a server error with a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from fastapi import Request
from starlette.requests import ClientDisconnect

from agent.errors import ApiError

__all__ = ["CLIENT_GONE", "body_of", "declared_length"]

log = logging.getLogger(__name__)
CLIENT_GONE = 499  # "client closed request": nobody reads the answer, the audit log does


def declared_length(request: Request) -> int | None:
    """The body's Content-Length, or None when it is not sent (chunked)."""
    value = request.headers.get("content-length")
    return int(value) if value is not None and value.isdigit() else None


async def body_of(request: Request, what: str, kept: str) -> AsyncIterator[bytes]:
    """The request body chunk by chunk; a dropped link raises ApiError(499) after a warning
    naming `what` was sent and what became of the bytes that arrived (`kept`)."""
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            yield chunk
    except ClientDisconnect:
        client = request.client.host if request.client else "unknown"
        log.warning("%s from %s dropped after %d bytes; %s", what, client, received, kept)
        raise ApiError(
            CLIENT_GONE, "upload_dropped", f"the link dropped after {received} bytes of the {what}", kept
        ) from None
