"""One SSH connection to a kit (paramiko): host key checked first, then login, commands, SFTP."""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paramiko

from app.provision.errors import AuthFailed, ProvisionError, SshUnreachable
from app.provision.knownhosts import KnownHosts, StorePolicy, fingerprint
from app.provision.target import Login, SshTarget

# AES-GCM first: one AEAD pass per packet instead of AES-CTR plus a separate HMAC, which is
# most of paramiko's per-packet cost. OpenSSH offers both.
_FAST_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")
WINDOW = 64 << 20  # bytes in flight the kit may send us before we acknowledge


def _transport(
    sock: Any,
    /,
    *,
    gss_kex: bool = False,
    gss_deleg_creds: bool = False,
    disabled_algorithms: Mapping[str, Iterable[str]] | None = None,
) -> paramiko.Transport:
    del gss_kex, gss_deleg_creds  # GSS-API is not offered (and paramiko 4+ dropped it)
    transport = paramiko.Transport(sock, default_window_size=WINDOW, disabled_algorithms=disabled_algorithms)
    options = transport.get_security_options()
    available = tuple(options.ciphers)
    options.ciphers = tuple(c for c in _FAST_CIPHERS if c in available) + tuple(
        c for c in available if c not in _FAST_CIPHERS
    )
    return transport


@dataclass(frozen=True)
class Result:
    status: int
    stdout: str
    stderr: str

    def tail(self, lines: int = 15) -> str:
        text = self.stderr.strip() or self.stdout.strip()
        return "\n".join(text.splitlines()[-lines:])


class SshSession:
    """Open with `SshSession.connect`; close it (or use `with`)."""

    def __init__(
        self, target: SshTarget, client: paramiko.SSHClient, env: Mapping[str, str] | None = None
    ) -> None:
        self.target = target
        self.client = client
        self.env = dict(env or {})
        self._sftp: paramiko.SFTPClient | None = None

    @classmethod
    def connect(
        cls, target: SshTarget, login: Login, known_hosts: KnownHosts, env: Mapping[str, str] | None = None
    ) -> SshSession:
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(StorePolicy(known_hosts, target.host, target.port, login))
        explicit = login.key_file is not None or login.password is not None
        try:
            client.connect(
                target.host,
                target.port,
                target.user,
                password=login.password,
                key_filename=str(login.key_file) if login.key_file else None,
                allow_agent=not explicit,
                look_for_keys=not explicit,
                timeout=login.timeout_s,
                banner_timeout=login.timeout_s,
                auth_timeout=login.timeout_s,
                transport_factory=_transport,
            )
        except ProvisionError:
            client.close()
            raise
        except paramiko.AuthenticationException as exc:
            client.close()
            raise AuthFailed(_auth_message(target, login, exc)) from exc
        except (paramiko.SSHException, OSError) as exc:
            client.close()
            if isinstance(exc, FileNotFoundError | PermissionError) and login.key_file:
                raise AuthFailed(f"cannot read the key {login.key_file}: {exc.strerror}") from exc
            raise SshUnreachable(
                f"cannot reach {target} over SSH: {exc or type(exc).__name__}; "
                "check the address, the port and that sshd runs on the kit"
            ) from exc
        return cls(target, client, env)

    @property
    def transport(self) -> paramiko.Transport:
        transport = self.client.get_transport()
        if transport is None:
            raise SshUnreachable(f"the SSH connection to {self.target} is closed")
        return transport

    def host_key_fingerprint(self) -> str:
        return fingerprint(self.transport.get_remote_server_key())

    def run(self, command: str, stdin: bytes | None = None, timeout: float = 600.0) -> Result:
        """Run a shell command on the kit with the session's environment; never raises on status."""
        prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(self.env.items()))
        # sshd drops client environment requests unless AcceptEnv allows them; `env` always works.
        full = f"env {prefix} sh -c {shlex.quote(command)}" if prefix else command
        channel = self.transport.open_session()
        try:
            channel.settimeout(timeout)
            channel.exec_command(full)
            if stdin is not None:
                channel.sendall(stdin)
            channel.shutdown_write()
            out, err = bytearray(), bytearray()
            while True:
                chunk = channel.recv(1 << 16)
                if not chunk:
                    break
                out += chunk
            while True:
                chunk = channel.recv_stderr(1 << 16)
                if not chunk:
                    break
                err += chunk
            status = channel.recv_exit_status()
        except TimeoutError as exc:
            raise ProvisionError(f"{self.target}: `{command[:80]}` took longer than {timeout:g} s") from exc
        finally:
            channel.close()
        return Result(status, out.decode(errors="replace"), err.decode(errors="replace"))

    def check(self, command: str, what: str, stdin: bytes | None = None, timeout: float = 600.0) -> str:
        """Run and return stdout; a non-zero status raises with the command's own words."""
        result = self.run(command, stdin, timeout)
        if result.status != 0:
            raise ProvisionError(
                f"{what} failed on {self.target.host} (exit {result.status}): {result.tail()}"
            )
        return result.stdout

    def sftp(self) -> paramiko.SFTPClient:
        """The session's shared SFTP channel, for small files."""
        if self._sftp is None:
            self._sftp = self.open_sftp()
        return self._sftp

    def open_sftp(self) -> paramiko.SFTPClient:
        """A new SFTP channel on this connection (one per copying thread); close it after."""
        sftp = paramiko.SFTPClient.from_transport(self.transport, window_size=WINDOW)
        if sftp is None:
            raise SshUnreachable(f"{self.target} refused the SFTP subsystem")
        return sftp

    def close(self) -> None:
        if self._sftp is not None:
            self._sftp.close()
        self.client.close()

    def __enter__(self) -> SshSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _auth_message(target: SshTarget, login: Login, exc: Exception) -> str:
    if login.password is not None and login.key_file is None:
        how = "the password was refused (or the kit does not accept password logins)"
        fix = "type it again, or use --key with a key in the user's authorized_keys"
    elif login.key_file is not None:
        how = f"the key {Path(login.key_file).name} was refused"
        fix = (
            f"add {login.key_file}.pub to ~{target.user}/.ssh/authorized_keys on the kit, "
            "or use --password-prompt"
        )
    else:
        how = "no key from the SSH agent or ~/.ssh was accepted"
        fix = "give the right key with --key, or use --password-prompt"
    return f"{target}: login failed: {how} ({exc}); {fix}"
