"""Run the agent: mDNS announcement, then the HTTPS API and metrics sampling."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from agent import __version__
from agent.config import Settings
from agent.identity import Identity, load_or_create_lean
from agent.mdns import Advertiser
from agent.metrics.power import PowerGauge
from agent.metrics.ring import take_sample
from agent.storage import PRIVATE_UMASK, private_data_dir
from agent.toolkit.durable import write_atomic
from agent.wire import TxtRecord

if TYPE_CHECKING:
    from fastapi import FastAPI

    from agent.api.app import Lifespan
    from agent.api.state import AgentState
    from agent.bundles.inbox import Watcher

log = logging.getLogger(__name__)
PORT_FILE = "agent.port"


def bind(host: str, port: int) -> socket.socket:
    """Bind the listening socket ourselves so `--port 0` can report the port it got."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must say TCP: asyncio only sets TCP_NODELAY on accepted sockets whose proto is
    # IPPROTO_TCP, and without it every response's body waited ~40 ms behind its headers (Nagle
    # against the client's delayed ACK).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise SystemExit(
            f"cannot listen on {host}:{port}: {exc.strerror}; choose another --port (0 picks a free one)"
        ) from exc
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


async def _sample_forever(state: AgentState) -> None:
    disk = str(state.settings.data_dir)
    power = await asyncio.to_thread(PowerGauge)
    take_sample(disk, power)  # primes psutil's CPU counter and the power meter
    while True:
        await asyncio.sleep(state.settings.metrics_interval_s)
        try:
            sample = await asyncio.to_thread(take_sample, disk, power)
            await asyncio.to_thread(state.metrics.append, sample)
        except (OSError, sqlite3.Error) as exc:  # e.g. a full disk: skip the sample, keep going
            log.warning("metrics sample not stored: %s", exc)


def _lifespan(state: AgentState) -> Lifespan:
    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        sampler = asyncio.create_task(_sample_forever(state))
        # the job runner recovers jobs a crash left running before any request is served
        await asyncio.to_thread(state.jobs.start)
        watcher = _bundle_watcher(state)  # bundles handed over by `kitfleet-agent import`
        await asyncio.to_thread(_upgrade_on_start, state)  # confirms an upgrade: this agent serves
        try:
            yield
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
            await asyncio.to_thread(watcher.stop)
            await asyncio.to_thread(state.jobs.stop)
            await asyncio.to_thread(state.uploads.close)  # a checker kept ready goes too

    return lifespan


def _upgrade_on_start(state: AgentState) -> None:
    from agent.bundles.upgrade_state import on_start

    try:
        on_start(state.db, state.settings)
    except OSError as exc:  # never keeps the agent from serving
        log.warning("could not settle an agent upgrade: %s", exc)


def _bundle_watcher(state: AgentState) -> Watcher:
    from agent.bundles.inbox import Watcher
    from agent.bundles.runner import in_agent

    settings = state.settings
    importer = in_agent(settings, state.db, state.identity.device_id, state.models, state.jobs)
    watched = Path(settings.bundle_dir) if settings.bundle_dir else None
    watcher = Watcher(settings.data_dir, watched, settings.bundle_poll_s, importer)
    watcher.start()
    return watcher


def _advertise(settings: Settings, device_id: str, port: int) -> Advertiser | None:
    if not settings.mdns:
        return None
    txt = TxtRecord(
        device_id=device_id, name=settings.name, kit_model=settings.kit_model, agent_version=__version__
    )
    advertiser = Advertiser(txt, port, settings.mdns_interfaces)
    advertiser.start()
    return advertiser


def run(settings: Settings) -> None:
    """Serve until SIGTERM/SIGINT, then withdraw the mDNS record and close the database."""
    os.umask(PRIVATE_UMASK)  # as the CLI does; also for a caller that did not come through it
    tightened = private_data_dir(settings.data_dir)
    if tightened:  # e.g. made by an older agent or by hand: a local user could read the keys
        log.warning("made %s readable by the agent's user only: %s", settings.data_dir, ", ".join(tightened))
    identity = load_or_create_lean(settings.data_dir)
    sock = bind(settings.host, settings.port)
    port = sock.getsockname()[1]
    write_atomic(settings.data_dir / PORT_FILE, f"{port}\n".encode())
    log.info(
        "kitfleet-agent %s, device %s, listening on https://%s:%d",
        __version__,
        identity.display_id,
        settings.host,
        port,
    )
    advertiser = _advertise(settings, identity.device_id, port)  # probes while we import
    try:
        _serve(settings, identity, sock)
    finally:
        if advertiser is not None:
            advertiser.stop()
        log.info("agent stopped cleanly")


def _serve(settings: Settings, identity: Identity, sock: socket.socket) -> None:
    # The web stack is imported only now, so mDNS probing overlaps its import time.
    import uvicorn

    from agent.api.app import create_app
    from agent.api.quiet_server import QuietServer
    from agent.api.state import AgentState

    try:
        state = AgentState.open(settings, identity)
    except sqlite3.Error as exc:  # not damage (that is quarantined): locked, read-only, I/O
        raise SystemExit(
            f"cannot open the agent database {settings.data_dir / 'agent.db'}: {exc}; it was left "
            "as it is: check that the disk is writable and not full and that no other program "
            "holds the file locked, then start the agent again"
        ) from exc
    if state.db.recovery is not None:
        _record_recovery(state)
    config = uvicorn.Config(
        create_app(state, _lifespan(state)),
        ssl_certfile=str(identity.cert_path),
        ssl_keyfile=str(identity.key_path),
        log_level="warning",
        access_log=False,
        proxy_headers=False,  # no proxy in front: X-Forwarded-For from loopback must not be trusted
        # asyncio's own loop, even where uvloop happens to be installed: uvloop's TLS keeps
        # reading a refused body to its end after a 413 (tests/lab/test_lab_hostile.py)
        loop="asyncio",
        http=_guarded_http(settings),
        timeout_keep_alive=15,  # an idle connection closes sooner: http_header_timeout_s
        limit_concurrency=settings.http_max_connections,
        timeout_graceful_shutdown=10,
    )
    # uvicorn re-raises the signal that stopped it once it has shut down; turn SIGTERM
    # into a normal exit so service managers and scripts see status 0 after a clean stop.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    try:
        QuietServer(config).run(sockets=[sock])
    finally:
        state.db.close()


def _record_recovery(state: AgentState) -> None:
    """The fresh database's first audit entry says what the damaged one took with it."""
    from agent.audit import Actor, AuditLog

    recovery = state.db.recovery
    assert recovery is not None
    log.error(
        "started with a fresh database; every app must adopt this kit again (device %s is unchanged)",
        state.identity.display_id,
    )
    AuditLog.of(state.db, state.settings).append(
        Actor("", "kitfleet-agent"),
        "agent.db_recovered",
        recovery.quarantined,
        "ok",
        {"reason": recovery.reason[:200], "lost": ", ".join(recovery.lost)},
        ts=recovery.at,
    )


def _guarded_http(settings: Settings) -> type[asyncio.Protocol]:
    from agent.api.protocol import GuardedHttp

    GuardedHttp.header_timeout_s = settings.http_header_timeout_s
    GuardedHttp.max_header_bytes = settings.http_max_header_bytes
    return GuardedHttp


def _exit_cleanly(signum: int, frame: object) -> None:
    from agent.bundles import restart

    # A bundle's agent upgrade switched venvs: exit so the service manager starts the new one.
    raise SystemExit(restart.EXIT_RESTART if restart.requested() else 0)


def read_port(data_dir: Path) -> int | None:
    try:
        return int((data_dir / PORT_FILE).read_text())
    except (OSError, ValueError):
        return None
