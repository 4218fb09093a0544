"""Find kits announcing `_kitfleet._tcp.local.` with an AsyncZeroconf browser.

What a kit announces is a hint: the app trusts only the certificate it pinned.
Pass explicit interfaces (e.g. 127.0.0.1) everywhere but real field use.
zeroconf is imported when a browser starts: most commands (`kitfleet kits` with every kit
answering) never browse, and the import was ~5 % of their start (issue 19).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from agent.wire import SERVICE_TYPE, TxtRecord
from app.fleet.mdns_ask import async_ask_once

if TYPE_CHECKING:
    from zeroconf import DNSQuestionType, IPVersion, ServiceStateChange, Zeroconf
    from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

__all__ = ["Announcement", "Browser", "async_discover"]


@dataclass(frozen=True)
class Announcement:
    instance: str
    device_id: str
    name: str
    kit_model: str
    api_version: str
    agent_version: str
    addresses: tuple[str, ...]
    port: int
    seen_at: float = field(default_factory=time.time, compare=False)

    @property
    def host(self) -> str:
        return self.addresses[0]


log = logging.getLogger(__name__)
Listener = Callable[[str, Announcement | None], None]  # (instance, announcement or None if gone)
# Announcements held at once: far beyond a fleet (200 kits is a big one), and a bound on what an
# announcement flood can make the app keep. New names past it are counted in `ignored`, not kept.
MAX_KITS = 1024
MAX_TEXT = 100  # characters kept of each announced text (a TXT value may hold 255 bytes)
MAX_ADDRESSES = 16
# Ask for multicast answers (QM), never unicast ones (QU, zeroconf's default first question):
# where another mDNS program shares port 5353 (avahi on the laptop, other agents), a unicast
# answer reaches only one of the sockets bound to it, often not ours, and the kit is listed
# ~1 s later, at the next question. A multicast answer reaches every socket. A kit that
# multicast its records less than a second ago (it just started or moved) holds back its
# multicast answer until that second has passed: the one-shot question each browser asks as it
# starts (mdns_ask.py) is answered at once, to the browser's own port.
QUESTION_TYPE: str | None = "QM"  # a DNSQuestionType's name; None: zeroconf's default (QU first)
ASK_ONCE = True  # the one-shot question beside (benchmarks/discovery.py compares without it)


class Browser:
    """Keeps browsing until closed, telling `listener` about kits that come and go."""

    def __init__(self, interfaces: list[str], listener: Listener) -> None:
        self._interfaces = interfaces
        self._listener = listener
        self._zc: AsyncZeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._asking: asyncio.Task[None] | None = None
        self.kits: dict[str, Announcement] = {}
        self.ignored = 0  # new announcements dropped while MAX_KITS were held (a flood)

    async def async_start(self) -> None:
        from zeroconf.asyncio import AsyncServiceBrowser, AsyncZeroconf

        if self._interfaces:
            self._zc = AsyncZeroconf(
                interfaces=list(self._interfaces), ip_version=_ip_version(self._interfaces)
            )
        else:  # field use only
            self._zc = AsyncZeroconf()
        self._browser = AsyncServiceBrowser(
            self._zc.zeroconf, SERVICE_TYPE, handlers=[self._on_change], question_type=_question_type()
        )
        if ASK_ONCE:
            self._asking = asyncio.ensure_future(
                async_ask_once(self._zc.zeroconf, SERVICE_TYPE, self._interfaces)
            )

    def _on_change(
        self, zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        from zeroconf import ServiceStateChange  # loaded by async_start

        if state_change is ServiceStateChange.Removed:
            self.kits.pop(name, None)
            self._listener(name, None)
            return
        if name not in self.kits and len(self.kits) + len(self._tasks) >= MAX_KITS:
            self.ignored += 1
            if self.ignored == 1:
                log.warning(
                    "more than %d kits announce at once: new announcements are ignored "
                    "(an mDNS flood?); the count is in Browser.ignored",
                    MAX_KITS,
                )
            return
        task = asyncio.ensure_future(self._resolve(zeroconf, service_type, name))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _resolve(self, zeroconf: Zeroconf, service_type: str, name: str) -> None:
        from zeroconf.asyncio import AsyncServiceInfo

        info = AsyncServiceInfo(service_type, name)
        if not await info.async_request(zeroconf, 3000, question_type=_question_type()):
            return
        announcement = _announcement(name, info)
        if announcement is None:
            return
        self.kits[name] = announcement
        self._listener(name, announcement)

    async def async_close(self) -> None:
        if self._asking is not None:
            self._asking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._asking
        if self._browser is not None:
            await self._browser.async_cancel()
        for task in list(self._tasks):
            task.cancel()
        if self._zc is not None:
            await self._zc.async_close()
        self._browser = self._zc = None


async def async_discover(
    interfaces: list[str],
    timeout: float,
    stop_when: Callable[[Announcement], bool] | None = None,
) -> list[Announcement]:
    """Browse for `timeout` seconds (or until `stop_when` matches) and return what was seen."""
    found = asyncio.Event()

    def listener(_: str, announcement: Announcement | None) -> None:
        if announcement is not None and stop_when is not None and stop_when(announcement):
            found.set()

    browser = Browser(interfaces, listener)
    await browser.async_start()
    try:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(found.wait(), timeout)
        return sorted(browser.kits.values(), key=lambda a: (a.name, a.device_id))
    finally:
        await browser.async_close()


def _announcement(instance: str, info: AsyncServiceInfo) -> Announcement | None:
    """What an answer announces, held to the shapes the app relies on: anyone on the network
    can send one. A device ID that is not one reads as none; text is kept (escaped where shown)
    but bounded; an answer without an address or a usable port is no kit."""
    addresses = tuple(info.parsed_scoped_addresses())[:MAX_ADDRESSES]
    if not addresses or not info.port or not 0 < info.port < 65536:
        return None
    txt = TxtRecord.from_properties(info.properties)
    device_id = txt.device_id if re.fullmatch(r"[0-9a-f]{64}", txt.device_id) else ""
    return Announcement(
        instance=instance[:MAX_TEXT],
        device_id=device_id,
        name=txt.name[:MAX_TEXT],
        kit_model=txt.kit_model[:MAX_TEXT],
        api_version=txt.api_version[:MAX_TEXT],
        agent_version=txt.agent_version[:MAX_TEXT],
        addresses=addresses,
        port=info.port,
    )


def _question_type() -> DNSQuestionType | None:
    from zeroconf import DNSQuestionType

    return None if QUESTION_TYPE is None else DNSQuestionType[QUESTION_TYPE]


def _ip_version(addresses: list[str]) -> IPVersion:
    from zeroconf import IPVersion

    versions = {ipaddress.ip_address(a).version for a in addresses}
    return IPVersion.V4Only if versions == {4} else (IPVersion.V6Only if versions == {6} else IPVersion.All)
