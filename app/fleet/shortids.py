"""Short IDs: a unique prefix names a job, schedule, model version or kit, as a person types it.

Screens show 12 hex digits of a job ID and 16 of a device ID; whatever was shown must work
when typed back. Matching happens here, on the laptop, from what the kit lists: it works with
every agent version, and a kit lists a thousand jobs in one answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import TypeVar

from agent.wire import JOB_ID_PATTERN, ModelInfo
from app.fleet.client import KitClient
from app.fleet.errors import Error

__all__ = ["MIN_PREFIX", "async_job_id", "async_schedule_id", "pick", "version_of"]

MIN_PREFIX = 6
_PAGE = 1000
_SHOWN = 8  # candidates named when a prefix is ambiguous
T = TypeVar("T")


def pick(
    ref: str,
    items: Iterable[T],
    keys: Callable[[T], Iterable[str]],
    label: Callable[[T], str],
    what: str,
    listing: str,
    minimum: int = MIN_PREFIX,
    error: type[Error] = Error,
) -> T:
    """The one item a key of which equals `ref`, else the one a key of which starts with it.

    `what` names the kind of thing ("job"), `listing` the command that lists them; an ambiguous
    prefix names the candidates and asks for more characters."""
    items = list(items)
    wanted = ref.strip().lower()
    exact = [i for i in items if wanted in (k.lower() for k in keys(i))]
    if len(exact) == 1:
        return exact[0]
    prefixed = [i for i in items if any(k.lower().startswith(wanted) for k in keys(i))]
    found = exact or (prefixed if len(wanted) >= minimum else [])
    if len(found) == 1:
        return found[0]
    if found:
        named = ", ".join(label(i) for i in found[:_SHOWN]) + (", …" if len(found) > _SHOWN else "")
        raise error(f"{ref!r} matches {len(found)} {what}s ({named}): give more characters")
    short = f" (a prefix needs at least {minimum} characters)" if len(wanted) < minimum else ""
    raise error(f"no {what} {ref!r}{short}; {listing} shows them")


async def async_job_id(client: KitClient, ref: str, listing: str) -> str:
    """The full ID of the kit's job that `ref` names: a whole ID as it is, else a unique prefix."""
    wanted = _hex(ref, "job", listing)
    if re.fullmatch(JOB_ID_PATTERN, wanted):
        return wanted
    ids: list[str] = []
    offset = 0
    while True:  # every page: an old job is as nameable as a new one
        page = await client.jobs(limit=_PAGE, offset=offset)
        ids += [j.job_id for j in page if j.job_id.startswith(wanted)]
        if len(page) < _PAGE:
            break
        offset += len(page)
    return pick(wanted, ids, lambda i: [i], lambda i: i[:12], "job", listing)


async def async_schedule_id(client: KitClient, ref: str, listing: str) -> str:
    wanted = _hex(ref, "schedule", listing)
    if re.fullmatch(JOB_ID_PATTERN, wanted):
        return wanted
    ids = [s.schedule_id for s in await client.schedules()]
    return pick(wanted, ids, lambda i: [i], lambda i: i[:12], "schedule", listing)


def version_of(models: list[ModelInfo], name: str, ref: str, listing: str) -> str:
    """The version of model `name` that `ref` names: the version itself, or a unique prefix of
    it or of its sha256 (`kitfleet models list` shows 12 digits of it)."""
    model = next((m for m in models if m.name == name), None)
    if model is None:
        return ref  # the kit's own refusal names the model and what to do
    version = pick(
        ref,
        model.versions,
        lambda v: [v.version, v.sha256],
        lambda v: f"{v.version} {v.sha256[:12]}",
        "version",
        f"{listing} (model {name})",
    )
    return version.version


def _hex(ref: str, what: str, listing: str) -> str:
    wanted = ref.strip().lower()
    if not re.fullmatch(r"[0-9a-f]+", wanted) or len(wanted) > 24:
        raise Error(
            f"{ref!r} is not a {what} ID: give its 24 hex digits or at least the first {MIN_PREFIX}, "
            f"as {listing} shows them"
        )
    if len(wanted) < MIN_PREFIX:
        raise Error(f"{ref!r} is too short to name a {what}: give at least {MIN_PREFIX} hex digits")
    return wanted
