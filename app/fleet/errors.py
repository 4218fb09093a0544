"""Errors a technician can act on. Anything else is a bug and gets a traceback."""

from __future__ import annotations


class Error(Exception):
    """Base of every error the app raises knowingly; str() is the message to show."""


class KitNotFound(Error):
    pass


class KitUnreachable(Error):
    pass


class IdentityChanged(Error):
    """The kit at this address presents a different certificate than the one pinned."""

    def __init__(self, name: str, pinned: str, seen: str) -> None:
        super().__init__(
            f"{name}: identity changed: the kit now presents certificate {seen[:16]}… "
            f"instead of the pinned {pinned[:16]}…; no token was sent. If the kit was "
            "reinstalled on purpose, adopt it again; otherwise treat it as an impostor"
        )
        self.pinned = pinned
        self.seen = seen


class AdoptionRefused(Error):
    pass


class AgentError(Error):
    """The agent answered with a 4xx; the message is the agent's own explanation."""

    def __init__(self, status: int, error: str, message: str, hint: str | None) -> None:
        text = f"{message} ({status} {error})"
        super().__init__(f"{text}; {hint}" if hint else text)
        self.status = status
        self.error = error
        self.message = message
        self.hint = hint


class BadAnswer(Error):
    """A kit answered outside the API: a body that is not what the route promises, too big,
    or a file longer or shorter than the kit itself listed. A rogue, or a broken agent."""
