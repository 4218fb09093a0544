"""Look at a kit's SSH host key without logging in, so the window can ask before trusting it."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Literal

import paramiko

from app.provision.errors import SshUnreachable
from app.provision.knownhosts import KnownHosts, fingerprint, host_entry
from app.provision.target import SshTarget

Trust = Literal["known", "unknown", "changed"]


@dataclass(frozen=True)
class HostKeyCheck:
    host: str
    key_type: str
    fingerprint: str
    trust: Trust
    known_fingerprint: str | None = None


def probe_host_key(target: SshTarget, store: KnownHosts, timeout: float = 10.0) -> HostKeyCheck:
    """Key exchange only: no user name, password or key is sent."""
    try:
        sock = socket.create_connection((target.host, target.port), timeout=timeout)
    except OSError as exc:
        raise SshUnreachable(f"cannot reach {target.host}:{target.port}: {exc}") from exc
    transport = paramiko.Transport(sock)
    try:
        transport.banner_timeout = timeout
        transport.start_client(timeout=timeout)
        key = transport.get_remote_server_key()
    except paramiko.SSHException as exc:
        raise SshUnreachable(f"{target.host}:{target.port} does not speak SSH: {exc}") from exc
    finally:
        transport.close()
    shown = host_entry(target.host, target.port)
    entry = store.load().lookup(shown)
    if not entry:
        return HostKeyCheck(shown, key.get_name(), fingerprint(key), "unknown")
    known = entry.get(key.get_name())
    if known is not None and known.asbytes() == key.asbytes():
        return HostKeyCheck(shown, key.get_name(), fingerprint(key), "known")
    trusted = next(iter(entry.values()))
    return HostKeyCheck(shown, key.get_name(), fingerprint(key), "changed", fingerprint(trusted))
