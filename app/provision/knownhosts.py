"""The app's own known-hosts store, and the policy that decides whether to trust a host key.

The check runs after key exchange and before authentication, so an untrusted kit never
receives a password, a key signature or a command.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import paramiko

from app.provision.errors import HostKeyChanged, HostKeyUnknown
from app.provision.target import Login

KNOWN_HOSTS_FILE = "known_hosts"


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's form (`SHA256:...`), as `ssh-keygen -lf` prints it on the kit."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def host_entry(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


class KnownHosts:
    """`<app home>/known_hosts` in OpenSSH format, so `ssh -o UserKnownHostsFile=` can share it."""

    def __init__(self, home: Path) -> None:
        self.path = home / KNOWN_HOSTS_FILE

    def load(self) -> paramiko.HostKeys:
        keys = paramiko.HostKeys()
        if self.path.exists():
            keys.load(str(self.path))
        return keys

    def known_key(self, host: str, port: int, key_type: str) -> paramiko.PKey | None:
        entry = self.load().lookup(host_entry(host, port))
        if entry is None:
            return None
        return entry.get(key_type) or next(iter(entry.values()), None)

    def add(self, host: str, port: int, key: paramiko.PKey) -> None:
        keys = self.load()
        keys.add(host_entry(host, port), key.get_name(), key)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys.save(str(self.path))

    def check(self, host: str, port: int, key: paramiko.PKey, login: Login) -> None:
        """Return if the key is trusted (adding it when the technician accepted it), else raise."""
        entry = self.load().lookup(host_entry(host, port))
        shown = host_entry(host, port)
        if entry:
            known = entry.get(key.get_name())
            if known is not None and known.asbytes() == key.asbytes():
                return
            # A different key, or a key of another type than the one trusted: both are changes.
            trusted = next(iter(entry.values()))
            raise HostKeyChanged(shown, fingerprint(key), fingerprint(trusted), str(self.path))
        seen = fingerprint(key)
        confirmed = login.confirmed_fingerprint
        if (confirmed is not None and confirmed == seen) or (confirmed is None and login.accept_new_host_key):
            self.add(host, port, key)
            return
        raise HostKeyUnknown(shown, key.get_name(), seen)


class StorePolicy(paramiko.MissingHostKeyPolicy):
    """Routes paramiko's 'unknown host' callback to `KnownHosts.check`."""

    def __init__(self, store: KnownHosts, host: str, port: int, login: Login) -> None:
        self._store, self._host, self._port, self._login = store, host, port, login

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        self._store.check(self._host, self._port, key, self._login)
