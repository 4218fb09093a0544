"""Provisioning for the window (look at a host key, then install and adopt), run on the bridge's loop.

As every sub-bridge: called on the GUI thread, it only submits coroutines; answers come back as
signals. The blocking SSH work runs in worker threads (`app.provision` hands it to
`asyncio.to_thread`) and the adoption on the loop, into the window's own inventory, so a
provisioned kit joins the table as soon as it is adopted.

Each run has a number, carried by every signal of it, so two Provision dialogs open at once
each follow only their own; a run's failure, sorted by the host bridge like any other, comes
back as `run_failed` to its dialog rather than to the main window.
"""

from __future__ import annotations

import asyncio
import itertools

from PySide6.QtCore import QObject, Signal

from app.fleet.settings import AppSettings
from app.gui.bridges.base import BridgeHost, SubBridge, Work
from app.provision import KnownHosts, ProvisionRequest, SshTarget, Step, async_provision, probe_host_key

__all__ = ["ProvisionBridge"]


class ProvisionBridge(SubBridge):
    probed = Signal(int, object)  # (run, HostKeyCheck): what the host presented, nothing sent yet
    step = Signal(int, object)  # (run, Step): announced as each step starts
    provisioned = Signal(int, object)  # (run, ProvisionResult): installed and adopted
    run_failed = Signal(int, str)  # (run, message for the technician)

    def __init__(self, host: BridgeHost, parent: QObject | None = None) -> None:
        super().__init__(host, parent)
        self._runs = itertools.count(1)  # numbered on the GUI thread only

    @property
    def settings(self) -> AppSettings:
        return self._host.settings

    @property
    def known_hosts(self) -> KnownHosts:
        """The SSH host keys this app trusts (a file under its home)."""
        return KnownHosts(self._host.settings.home)

    # called on the GUI thread ---------------------------------------------------------

    def probe(self, target: SshTarget) -> int:
        """Start a run: look at the target's host key (key exchange only). Returns the run's number."""
        run = next(self._runs)
        self._submit_run(run, self._async_probe(run, target))
        return run

    def provision(self, run: int, request: ProvisionRequest) -> None:
        """Go on with a probed run: install or upgrade the agent, then adopt the kit."""
        self._submit_run(run, self._async_provision(run, request))

    def _submit_run(self, run: int, work: Work) -> None:
        self._host.submit("provision", work, lambda _, message: self.run_failed.emit(run, message))

    # on the loop thread -----------------------------------------------------------------

    async def _async_probe(self, run: int, target: SshTarget) -> None:
        check = await asyncio.to_thread(probe_host_key, target, self.known_hosts)
        self.probed.emit(run, check)

    async def _async_provision(self, run: int, request: ProvisionRequest) -> None:
        def progress(step: Step) -> None:  # called on worker threads too: a signal is safe there
            self.step.emit(run, step)

        self.provisioned.emit(run, await async_provision(self._host.fleet, request, progress))
