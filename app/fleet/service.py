"""Fleet services shared by the CLI and the window: discover, adopt (`adoption`), status, facts."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Literal, TypeVar

from agent.wire import FactFamilies
from app.fleet.adoption import Adoption
from app.fleet.audit import AppAudit
from app.fleet.client import KitClient
from app.fleet.discovery import Announcement, async_discover
from app.fleet.errors import IdentityChanged, KitNotFound, KitUnreachable
from app.fleet.inventory import Inventory, Kit
from app.fleet.settings import AppSettings
from app.fleet.tls import async_fetch_certificate

T = TypeVar("T")
Status = Literal["online", "offline", "identity_changed"]
Marking = Literal["adopted", "unadopted", "identity_changed", "conflict"]
_RELOCATE_S = 1.5  # how long to listen for an adopted kit at a new address (answers take ~0.1 s)


@dataclass(frozen=True)
class KitStatus:
    kit: Kit
    status: Status
    detail: str = ""


@dataclass(frozen=True)
class Verdict:
    """An announcement checked against the inventory and, where it matters, the pinned key."""

    marking: Marking
    detail: str = ""


@dataclass(frozen=True)
class FactsResult:
    kit: Kit
    families: FactFamilies
    collected_at: float
    live: bool
    detail: str = ""


class Fleet(Adoption):
    """The fleet as the CLI and the window see it: discover kits, adopt them (`Adoption`), and
    talk to adopted ones while keeping the inventory's view of them current."""

    def __init__(self, settings: AppSettings) -> None:
        self.settings = settings
        self.inventory = Inventory(settings.home)
        self.audit = AppAudit(self.inventory)  # what this laptop did to each kit, and how it ended

    def close(self) -> None:
        self.inventory.close()

    # discovery ----------------------------------------------------------------

    async def async_discover(self, timeout: float) -> list[Announcement]:
        return await async_discover(self.settings.mdns_interfaces, timeout)

    def marking(self, announcement: Announcement) -> Marking:
        """How an announcement relates to the inventory (a hint, not a verification)."""
        kits = self.inventory.kits()
        for kit in kits:
            if kit.device_id == announcement.device_id:
                return "identity_changed" if kit.state == "identity_changed" else "adopted"
        if any(k.host in announcement.addresses and k.port == announcement.port for k in kits):
            return "identity_changed"  # where a known kit was, another key: it was reinstalled
        return "conflict" if self._named(announcement) is not None else "unadopted"

    def _named(self, announcement: Announcement) -> Kit | None:
        return next(
            (
                k
                for k in self.inventory.kits()
                if k.state == "adopted" and k.name.lower() == announcement.name.lower()
            ),
            None,
        )

    async def async_check_announcement(self, announcement: Announcement) -> Verdict:
        """Check an announcement that claims an adopted kit's ID or name from another address.

        Only the certificate served there decides (a TLS handshake; no token is sent): the
        pinned one means the kit moved and is followed; any other is a conflict, never followed.
        """
        a = announcement
        kit: Kit | None
        try:
            kit = self.inventory.get(a.device_id)
        except KitNotFound:
            kit = self._named(a)
        if kit is None or kit.state != "adopted" or (a.host, a.port) == (kit.host, kit.port):
            return Verdict(self.marking(a))
        try:
            _, served = await async_fetch_certificate(a.host, a.port, self.settings.request_timeout_s)
        except OSError as exc:
            return Verdict(
                self.marking(a),
                f"could not check the certificate at {a.host}:{a.port}: "
                f"{exc}; {kit.name} stays at {kit.address}",
            )
        if served == kit.device_id:
            self.inventory.update(kit.device_id, host=a.host, port=a.port)
            return Verdict("adopted", f"{kit.name} moved to {a.host}:{a.port} (pinned key checked)")
        return Verdict(
            "conflict",
            (
                f"conflict: another device ({served[:16]}…) announces as {a.name} at {a.host}:{a.port}; "
                f"{kit.name} is pinned to {kit.device_id[:16]}… at {kit.address}. Nothing is sent "
                "to the other device; if the kit was reinstalled, adopt it again"
            ),
        )

    # talking to adopted kits --------------------------------------------------

    def client(self, kit: Kit) -> KitClient:
        if kit.state == "identity_changed":
            raise IdentityChanged(kit.name, kit.device_id, "(see kits)")
        return KitClient(
            kit.name,
            kit.host,
            kit.port,
            kit.cert_pem,
            kit.device_id,
            token=kit.token,
            timeout=self.settings.request_timeout_s,
            on_call=self.audit.record_call,
        )

    async def async_call(
        self,
        kit: Kit,
        call: Callable[[KitClient], Awaitable[T]],
        client: KitClient | None = None,
        relocate: bool = True,
        record: bool = True,
    ) -> T:
        """Run one API call, keeping the inventory's view of the kit up to date.

        `client`: one the caller keeps open across calls (fleet polling reuses connections);
        it is used, not closed. Without it a new one is made for this call, and a kit that does
        not answer at its address, or whose address now serves another key, is first looked for
        elsewhere over mDNS (`relocate`; 1.5 s more when it is nowhere). `record=False`: the
        caller writes when the kit was seen (or why not) itself, for many kits in one
        transaction (`Inventory.record_seen`): a commit per kit is an fsync per kit.
        """
        try:
            if client is not None:
                result = await call(client)
            else:
                async with self.client(kit) as made:
                    result = await call(made)
        except (IdentityChanged, KitUnreachable) as exc:
            # Its address leads to another key, or nowhere: first see whether the kit moved.
            moved = await self._async_relocate(kit) if client is None and relocate else None
            if moved is not None:
                return await self.async_call(moved, call, relocate=False)
            if isinstance(exc, KitUnreachable):
                if record:
                    self.inventory.update(kit.device_id, last_error=str(exc))
            elif kit.state != "identity_changed":
                self.inventory.update(kit.device_id, state="identity_changed", last_error=str(exc))
            raise
        if record:
            self.inventory.update(kit.device_id, last_seen_at=time.time(), last_error="")
        return result

    async def _async_relocate(self, kit: Kit) -> Kit | None:
        """The kit at a new address, if one announces its device ID and serves its pinned key."""
        if kit.state != "adopted":
            return None

        def elsewhere(a: Announcement) -> bool:
            return a.device_id == kit.device_id and (a.host, a.port) != (kit.host, kit.port)

        seen = await async_discover(self.settings.mdns_interfaces, _RELOCATE_S, stop_when=elsewhere)
        for a in filter(elsewhere, seen):
            if (await self.async_check_announcement(a)).marking == "adopted":
                return self.inventory.get(kit.device_id)
        return None

    async def async_status(self, kit: Kit) -> KitStatus:
        try:
            health = await self.async_call(kit, lambda c: c.health())
        except IdentityChanged as exc:
            return KitStatus(self.inventory.get(kit.device_id), "identity_changed", str(exc))
        except KitUnreachable as exc:
            return KitStatus(self.inventory.get(kit.device_id), "offline", str(exc))
        if health.version != kit.agent_version:
            self.inventory.update(kit.device_id, agent_version=health.version)
        return KitStatus(self.inventory.get(kit.device_id), "online")

    async def async_statuses(self, kits: Iterable[Kit] | None = None) -> list[KitStatus]:
        kits = list(self.inventory.kits() if kits is None else kits)
        return await self._bounded([functools.partial(self.async_status, k) for k in kits])

    async def async_facts(self, kit: Kit, client: KitClient | None = None) -> FactsResult:
        """Live facts when the kit answers, else the last-known ones marked as such.
        `client`: a connection the caller keeps open (see `async_call`)."""
        try:
            facts = await self.async_call(kit, lambda c: c.facts(), client)
        except (KitUnreachable, IdentityChanged) as exc:
            known = self.inventory.last_facts(kit.device_id)
            if known is None:
                raise
            return FactsResult(kit, known[0], known[1], live=False, detail=str(exc))
        self.inventory.save_facts(kit.device_id, facts.families)
        return FactsResult(kit, facts.families, facts.collected_at, live=True)

    async def _bounded(self, calls: list[Callable[[], Awaitable[T]]]) -> list[T]:
        limit = asyncio.Semaphore(self.settings.poll_concurrency)

        async def run(call: Callable[[], Awaitable[T]]) -> T:
            async with limit:
                return await call()

        return list(await asyncio.gather(*(run(c) for c in calls)))
