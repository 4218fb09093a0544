"""Errors the agent raises on purpose. Anything else reaching the API is a bug (5xx).

Refusals are sorted by cause (`agent.toolkit.errors`, shared with the app); the HTTP layer maps
each cause to a status code in one place, `agent/api/errors.py`.
"""

from agent.toolkit.errors import (
    BadInput,
    Busy,
    Conflict,
    Forbidden,
    Invalid,
    NoRoom,
    NotFound,
    Refusal,
    TooLarge,
    Unavailable,
    Unsupported,
)

__all__ = [
    "ApiError",
    "BadInput",
    "Busy",
    "Conflict",
    "Error",
    "Forbidden",
    "Invalid",
    "NoRoom",
    "NotFound",
    "Refusal",
    "TooLarge",
    "Unavailable",
    "Unsupported",
]


class Error(Exception):
    """Base of every error the agent raises knowingly that is not a refusal of a request."""


class ApiError(Refusal):
    """A refusal that names its HTTP status itself: for the HTTP layer only (auth, body limits);
    the domain raises a cause from `agent.toolkit.errors` instead."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        hint: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(error, message, hint)
        self.status = status
        self.headers = headers or {}
