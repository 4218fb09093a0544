"""The kits a `kitfleet jobs` action is aimed at, and one call asked of each of them."""

from __future__ import annotations

import argparse
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import BaseModel

from agent.wire import JOB_ID_PATTERN
from app.cli.common import emit, open_fleet, select_kits
from app.fleet.client import KitClient
from app.fleet.inventory import Kit
from app.fleet.jobs import async_each, async_explained
from app.fleet.service import Fleet
from app.fleet.shortids import async_job_id, async_schedule_id, version_of

M = TypeVar("M", bound=BaseModel)


def resolve(fleet: Fleet, refs: list[str], tags: list[str] | None = None) -> list[Kit]:
    """The kits named or tagged, each once however often it was named."""
    return select_kits(fleet, refs, tags)


async def job_ids(fleet: Fleet, kit: Kit, refs: list[str]) -> list[str]:
    """The full IDs of the kit's jobs that `refs` name, whole or by a unique prefix (one listing
    of the kit's jobs serves them all; whole IDs need none)."""
    listing = f"`kitfleet jobs list {kit.name}`"
    if all(re.fullmatch(JOB_ID_PATTERN, ref) for ref in refs):
        return refs

    async def find(client: KitClient) -> list[str]:
        return [await async_job_id(client, ref, listing) for ref in refs]

    return await async_explained(fleet, kit, find)


async def model_version(fleet: Fleet, kit: Kit, model: str, ref: str) -> str:
    """The version of the kit's `model` that `ref` names: the version itself, or a unique prefix
    of it or of its sha256, as `kitfleet models list` shows them (an ambiguous one lists them)."""
    infos = await async_explained(fleet, kit, lambda c: c.models())
    return version_of(infos, model, ref, f"`kitfleet models list {kit.name}`")


async def schedule_id(fleet: Fleet, kit: Kit, ref: str) -> str:
    if re.fullmatch(JOB_ID_PATTERN, ref):
        return ref
    listing = f"`kitfleet jobs schedules {kit.name}`"
    return await async_explained(fleet, kit, lambda c: async_schedule_id(c, ref, listing))


async def each_kit(
    args: argparse.Namespace,
    call: Callable[[KitClient], Awaitable[list[M]]],
    line: Callable[[str, M], str],
    nothing: str,
) -> int:
    """What `call` lists on each named kit (all adopted kits when none is named), kit by kit."""
    fleet = open_fleet(args)
    try:
        kits = resolve(fleet, args.kits, getattr(args, "tags", None)) or fleet.inventory.kits()
        answers = await async_each(fleet, kits, call)
    finally:
        fleet.close()
    rows: list[dict[str, Any]] = []
    lines: list[str] = []
    for answer in answers:
        if answer.value is None:
            rows.append({"kit": answer.kit.name, "error": answer.error})
            lines.append(f"not listed: {answer.error}")
            continue
        rows += [{"kit": answer.kit.name, **item.model_dump(mode="json")} for item in answer.value]
        lines += [line(answer.kit.name, item) for item in answer.value]
    emit(args, rows, lines or [nothing])
    return 0 if all(a.value is not None for a in answers) else 1
