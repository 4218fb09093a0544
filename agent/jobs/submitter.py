"""Who queued a job, and the rule that `command` jobs come from an admin.

The rule is checked three times: when the API takes the request, inside the transaction
that adds the row (so nothing that changes between the two, such as an idempotency key
freed by a delete, lets an unchecked job in), and when the job starts (so a row written by
an older agent, by hand, or queued by an admin whose token has since been revoked or
downgraded, does not run).
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.auth.tokens import Caller
from agent.db import Database
from agent.errors import Forbidden
from agent.wire import Scope

__all__ = ["ADMIN_KINDS", "UNKNOWN", "Submitter", "may_start", "require_scope"]

ADMIN_KINDS = frozenset({"command"})


@dataclass(frozen=True)
class Submitter:
    """The token a job or schedule came from, and that token's scope at the time."""

    token_id: str | None
    scope: Scope | None  # None: not recorded (a row from before submitters were kept)

    @classmethod
    def of(cls, caller: Caller) -> Submitter:
        return cls(caller.token_id, caller.scope)


UNKNOWN = Submitter(None, None)


def require_scope(kind: str, submitter: Submitter) -> None:
    """403 unless `submitter` may queue a job of `kind`."""
    if kind in ADMIN_KINDS and submitter.scope != "admin":
        raise Forbidden(
            "insufficient_scope",
            f"{kind} jobs need the admin scope; your token has {submitter.scope or 'no recorded scope'}",
            "ask an admin to submit it, or pair with an admin token",
        )


def may_start(db: Database, kind: str, submitter: Submitter) -> str | None:
    """Why a queued job must not start now (None: it may). For admin-only kinds, the token that
    queued it must still be an admin token that is not revoked."""
    if kind not in ADMIN_KINDS:
        return None
    if submitter.scope is None or submitter.token_id is None:
        return (
            f"{kind} jobs need an admin, and this one has no recorded submitter (it was queued "
            "by an older agent or written by hand); an admin must submit it again"
        )
    if submitter.scope != "admin":
        return (
            f"{kind} jobs need an admin, and this one was queued with {submitter.scope} scope; "
            "an admin must submit it again"
        )
    rows = db.query("SELECT scope, revoked_at FROM tokens WHERE id = ?", (submitter.token_id,))
    row = rows[0] if rows else None
    if row is None or row["revoked_at"] is not None:
        return (
            f"{kind} jobs need an admin, and the admin token that queued this one has been "
            "revoked; an admin must submit it again"
        )
    if row["scope"] != "admin":
        return (
            f"{kind} jobs need an admin, and the token that queued this one is now "
            f"{row['scope']}; an admin must submit it again"
        )
    return None
