"""Provision a kit in one action: trust, detect, copy, install, start, check, enroll, adopt.

Blocking SSH work runs in a worker thread; adoption runs on the caller's event loop, where the
fleet's inventory lives. Each step is announced through `progress` before it starts.
"""

from __future__ import annotations

import asyncio
import json
import posixpath
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.toolkit.readiness import read_health
from agent.toolkit.wheelhouse import PIP_ENV, version_of
from app.fleet.bundles.ledger import Ledger
from app.fleet.inventory import Kit
from app.fleet.service import Fleet
from app.fleet.signing import load_or_create
from app.provision.errors import InstallFailed, ProvisionError, UpgradeFailed
from app.provision.install import Installed, Installer
from app.provision.kitinfo import KitInfo, check_supported, detect
from app.provision.knownhosts import KnownHosts
from app.provision.layout import Layout, choose_layout
from app.provision.records import Record, Records
from app.provision.service import Service, agent_command
from app.provision.session import SshSession
from app.provision.target import KitOptions, Login, SshTarget
from app.provision.transfer import CopyReport, sync_wheels
from app.provision.wheelhouse import WheelFile, Wheelhouse

STEPS = {
    "connect": "connect and check the host key",
    "detect": "detect the kit's platform",
    "wheelhouse": "choose and verify the wheels",
    "copy": "copy the wheels the kit lacks",
    "install": "install the agent into a new venv",
    "configure": "write the agent's configuration",
    "service": "start the agent's service",
    "health": "wait for /v1/health",
    "enroll": "enroll over SSH",
    "adopt": "adopt into the inventory",
}


@dataclass(frozen=True)
class Step:
    name: str
    index: int
    detail: str = ""

    @property
    def total(self) -> int:
        return len(STEPS)

    @property
    def title(self) -> str:
        return STEPS[self.name]

    def line(self) -> str:
        return f"[{self.index}/{self.total}] {self.title}" + (f": {self.detail}" if self.detail else "")


Progress = Callable[[Step], None]


@dataclass(frozen=True)
class ProvisionRequest:
    target: SshTarget
    login: Login
    wheelhouse: Path
    options: KitOptions = field(default_factory=KitOptions)


@dataclass(frozen=True)
class ProvisionResult:
    kit: Kit
    kit_info: KitInfo
    layout: Layout
    copied: CopyReport
    version: str
    previous_version: str | None


class _Job:
    """One provisioning run's blocking half; every method runs on a worker thread."""

    def __init__(self, home: Path, request: ProvisionRequest, progress: Progress) -> None:
        self.home, self.request, self._progress = home, request, progress
        self.session: SshSession | None = None
        self.info: KitInfo | None = None
        self.layout: Layout | None = None
        self.house = Wheelhouse.load(request.wheelhouse)
        self.wheels: list[WheelFile] = []

    def step(self, name: str, detail: str = "") -> None:
        self._progress(Step(name, list(STEPS).index(name) + 1, detail))

    @property
    def ssh(self) -> SshSession:
        assert self.session is not None, "connect first"
        return self.session

    @property
    def lay(self) -> Layout:
        assert self.layout is not None, "detect first"
        return self.layout

    def connect(self) -> None:
        req = self.request
        self.step("connect", str(req.target))
        env = {**PIP_ENV, **req.options.remote_env}
        self.session = SshSession.connect(req.target, req.login, KnownHosts(self.home), env)

    def detect(self) -> None:
        info = self.info = detect(self.ssh, self.request.options.python)
        self.step("detect", info.describe())
        check_supported(info, self.house.glibc, 0)  # what no wheelhouse could fix comes first
        self.wheels = self.house.select(info.arch, info.python_short)
        check_supported(info, self.house.glibc, sum(w.size for w in self.wheels) * 4)  # + venv
        self.layout = choose_layout(info, self.request.options)

    def copy(self) -> CopyReport:
        self.step("wheelhouse", f"{len(self.wheels)} wheels for kitfleet {self.house.version}")
        self.house.verify(self.wheels)
        self.step("copy", f"to {self.lay.wheelhouse}")

        shown = [-1]

        def report(sent: int, total: int) -> None:
            tenth = sent * 10 // max(total, 1)  # a line per tenth, not per wheel
            if tenth != shown[0]:
                shown[0] = tenth
                self.step("copy", f"{sent >> 20} of {total >> 20} MiB")

        return sync_wheels(self.ssh, self._python, self.lay.wheelhouse, self.wheels, report)

    @property
    def _python(self) -> str:
        assert self.info is not None
        return self.info.executable

    def install(self) -> tuple[Installed, str | None]:
        self.step("install", f"{self.house.requirement}, offline")
        installer = Installer(self.ssh, self.lay, self._python)
        previous = installer.current_venv()
        return installer.create(self.house, self.wheels), previous

    def deploy(self, new: Installed, previous: str | None) -> None:
        """Switch to the new venv and restart; if it does not answer, go back to the old one."""
        opts = self.request.options
        installer = Installer(self.ssh, self.lay, self._python)
        service = Service(self.ssh, self.lay, self._python)
        self.step("configure", posixpath.join(self.lay.data_dir, "agent.json"))
        settings: dict[str, object] = {"port": opts.agent_port, **opts.agent_settings}
        if opts.name:
            settings["name"] = opts.name
        installer.write_config(settings)
        self.step("service", f"{self.lay.service} service, {new.venv}")
        service.install()
        if previous:
            service.stop()
        installer.switch(new.venv)
        try:
            service.start()
            self.step("health", f"https://{self.request.target.host}:{opts.agent_port}/v1/health")
            self._wait_health(new.device_id, new.version, service, opts.health_timeout_s)
        except ProvisionError as exc:
            self._roll_back(installer, service, new, previous, exc)
        installer.prune(keep=[new.venv] + ([previous] if previous else []))
        installer.prune_wheels([w.name for w in self.wheels])

    def _roll_back(
        self,
        installer: Installer,
        service: Service,
        new: Installed,
        previous: str | None,
        exc: ProvisionError,
    ) -> None:
        """The new venv never answered: put the previous one back (or nothing, on a fresh kit)."""
        log = service.log_tail()
        service.stop()
        if previous is None:
            installer.forget(new.venv)
            raise InstallFailed(f"the agent did not come up: {exc}. Its log:\n{log}") from exc
        installer.switch(previous)
        installer.forget(new.venv)
        try:
            service.start()
            self._wait_health(new.device_id, None, service, self.request.options.health_timeout_s)
        except ProvisionError as again:
            raise UpgradeFailed(
                f"kitfleet-agent {new.version} did not come up ({exc}), and neither did the "
                f"previous agent ({_version_of(previous)}) put back: {again}. See "
                f"`kitfleet ssh-logs`. The new one's log:\n{log}"
            ) from exc
        raise UpgradeFailed(
            f"kitfleet-agent {new.version} did not come up ({exc}); the "
            f"previous agent ({_version_of(previous)}) is running again. "
            f"The new one's log:\n{log}"
        ) from exc

    def _wait_health(self, device_id: str, version: str | None, service: Service, timeout: float) -> None:
        host, port = self.request.target.host, self.request.options.agent_port
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        polls = 0
        while time.monotonic() < deadline:
            try:
                health = read_health(host, port)
            except (OSError, ValueError) as exc:
                last = str(exc)
            else:
                if health.get("device_id") != device_id:
                    last = f"the agent answering is device {str(health.get('device_id'))[:16]}…"
                elif version is not None and health.get("version") != version:
                    last = f"the agent answering is version {health.get('version')}"
                else:
                    return
            polls += 1
            if polls % 20 == 0 and not service.running():
                raise ProvisionError("the agent's service stopped (see its log)")
            time.sleep(0.25)
        raise ProvisionError(f"no healthy answer from {host}:{port} within {timeout:g} s ({last})")

    def enroll(self, app_id: str, signer_key: str) -> dict[str, Any]:
        """`signer_key`: the app's bundle-signing key, trusted by the kit as it enrolls the app."""
        self.step("enroll", "the SSH login vouches for this app: no pairing code")
        out = self.ssh.check(
            agent_command(
                self.lay,
                self.lay.agent,
                "enroll",
                "--data-dir",
                self.lay.data_dir,
                "--app-id",
                app_id,
                "--signer-key",
                signer_key,
            ),
            "enrolling this app on the kit",
        )
        data: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        return data

    def record(self, device_id: str) -> None:
        req = self.request
        Records(self.home).save(
            Record(
                device_id,
                str(req.target),
                str(req.login.key_file) if req.login.key_file else None,
                self.lay.root,
                self.lay.data_dir,
                self.lay.service,
                self._python,
            )
        )

    def close(self) -> None:
        if self.session is not None:
            self.session.close()


def _version_of(venv: str) -> str:
    return version_of(posixpath.basename(venv))


async def async_provision(fleet: Fleet, request: ProvisionRequest, progress: Progress) -> ProvisionResult:
    """Install or upgrade the agent on one kit and adopt it; raises ProvisionError saying why not."""
    job = _Job(fleet.settings.home, request, progress)
    app_id = fleet.inventory.app_id
    try:
        await asyncio.to_thread(job.connect)
        await asyncio.to_thread(job.detect)
        copied = await asyncio.to_thread(job.copy)
        new, previous = await asyncio.to_thread(job.install)
        await asyncio.to_thread(job.deploy, new, previous)
        signer = load_or_create(fleet.settings.home).current
        enrolled = await asyncio.to_thread(job.enroll, app_id, signer.public_b64)
        job.step("adopt", f"device {enrolled['device_id'][:16]}…")
        kit = await fleet.async_adopt_enrolled(
            request.target.host,
            request.options.agent_port,
            device_id=enrolled["device_id"],
            cert_pem=enrolled["cert_pem"],
            token=enrolled["token"],
            token_id=enrolled["token_id"],
            scope=enrolled["scope"],
            name=enrolled["name"],
        )
        if enrolled.get("signer_key_id") == signer.key_id:
            Ledger(fleet.inventory).set_trusted_key(kit.device_id, signer.key_id)
        if kit.device_id != new.device_id:
            raise ProvisionError("the enrolled device ID differs from the installed identity")
        await asyncio.to_thread(job.record, kit.device_id)
    except Exception as exc:  # audited however it ends (app/fleet/audit.py), then as before
        fleet.audit.record(
            "provision",
            request.target.host,
            f"failed: {type(exc).__name__}",
            detail={"message": str(exc)[:256]},
        )
        raise
    finally:
        await asyncio.to_thread(job.close)
    fleet.audit.record(
        "provision", request.target.host, "ok", kit.device_id, kit.name, {"agent_version": new.version}
    )
    assert job.info is not None
    assert job.layout is not None
    return ProvisionResult(
        kit, job.info, job.layout, copied, new.version, _version_of(previous) if previous else None
    )
