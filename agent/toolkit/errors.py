"""Refusals sorted by cause. The agent's HTTP layer maps each cause to a status code in one place
(`agent/api/errors.py`); the app turns them into messages of its own. Anything else raised is a bug.
"""

from __future__ import annotations

__all__ = [
    "BadInput",
    "Busy",
    "Conflict",
    "Forbidden",
    "Invalid",
    "NoRoom",
    "NotFound",
    "Refusal",
    "TooLarge",
    "Unavailable",
    "Unsupported",
]


class Refusal(Exception):
    """Something that will not be done, and why: a stable code (`error`), a `message` saying what was
    wrong and a `hint` saying what to do about it."""

    def __init__(
        self,
        error: str,
        message: str,
        hint: str | None = None,
        *,
        retry_after: int | None = None,
        resume_at: int | None = None,
    ) -> None:
        super().__init__(message)
        self.error, self.message, self.hint = error, message, hint
        self.retry_after = retry_after  # seconds until trying again may succeed
        self.resume_at = resume_at  # the byte offset a resumable upload goes on from


class BadInput(Refusal):
    """The input cannot be read at all: a corrupt image, a malformed file."""


class Forbidden(Refusal):
    """The caller may not do this (a scope too small, a wrong or used pairing code)."""


class NotFound(Refusal):
    """What was named does not exist."""


class Conflict(Refusal):
    """It exists, but its state does not allow this now."""


class TooLarge(Refusal):
    """Over a size limit: the body, the image's pixels, the archive's contents."""


class Unsupported(Refusal):
    """A kind of input this cannot handle (a media type, a format)."""


class Invalid(Refusal):
    """Well formed, but wrong: a manifest that does not match its model, a bad setting."""


class Busy(Refusal):
    """Not now: locked out, or too much at once; `retry_after` seconds when known."""


class Unavailable(Refusal):
    """A part this needs is missing or off on this machine."""


class NoRoom(Refusal):
    """The disk has no room for it."""
