"""What every sub-bridge shares: its host bridge, seen only through what it needs.

A sub-bridge (jobs, models, fleet operations, streams, provisioning) is called on the GUI
thread, submits coroutines to the host's loop, and answers with its own signals; its work
fails through the host's `failed` signal, sorted there into known problems and bugs. It sees
the host as a `BridgeHost`, so no sub-bridge imports the bridge that makes it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol, TypeVar

from PySide6.QtCore import QObject, SignalInstance

from app.fleet.client import KitClient
from app.fleet.inventory import Kit
from app.fleet.ops import FleetOps
from app.fleet.service import Fleet
from app.fleet.settings import AppSettings

__all__ = ["BridgeHost", "Failed", "SubBridge", "Work"]

T = TypeVar("T")
Work = Coroutine[Any, Any, None]
Failed = Callable[[str, str], None]  # (operation, message for the technician)


class BridgeHost(Protocol):
    """What a sub-bridge needs of the bridge that runs the loop (`FleetBridge`)."""

    @property
    def failed(self) -> SignalInstance:  # (operation, message)
        ...

    @property
    def views(self) -> SignalInstance:  # list[KitView]
        ...

    @property
    def settings(self) -> AppSettings: ...

    @property
    def fleet(self) -> Fleet:  # on the loop thread only
        ...

    @property
    def ops(self) -> FleetOps:  # on the loop thread only
        ...

    def submit(self, operation: str, work: Work, failed: Failed | None = None) -> None: ...


class SubBridge(QObject):
    """One family of work on the host's loop; `parent` is the host, so they go together."""

    def __init__(self, host: BridgeHost, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._host = host

    @property
    def failed(self) -> SignalInstance:
        """(operation, message): this work fails through the host bridge's signal."""
        return self._host.failed

    @property
    def settings(self) -> AppSettings:
        """The app's settings, as the host bridge resolved them (its home, its models folder)."""
        return self._host.settings

    def _submit(self, operation: str, work: Work) -> None:
        """Run `work` on the host's loop (called on the GUI thread)."""
        self._host.submit(operation, work)

    # on the loop thread -----------------------------------------------------------------

    def _kit(self, device_id: str) -> Kit:
        return self._host.fleet.inventory.get(device_id)

    async def _on_kit(self, device_id: str, call: Callable[[KitClient], Awaitable[T]]) -> T:
        """`call` with a client of this adopted kit; the inventory's view of the kit follows."""
        return await self._host.fleet.async_call(self._kit(device_id), call)
