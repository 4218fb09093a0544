"""A real OpenSSH server on 127.0.0.1 with throwaway keys, for tests and benchmarks."""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import time
from pathlib import Path

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Sshd:
    """`sshd -D` on an ephemeral loopback port; public-key login as the current user.

    `passwords=True` also offers password logins (checked by sshd against the system's own
    password database, so no test password ever works); `log_level="VERBOSE"` records every
    authentication attempt in `log_path`.
    """

    def __init__(self, root: Path, passwords: bool = False, log_level: str = "ERROR") -> None:
        self.root = root
        self.passwords = passwords
        self.log_level = log_level
        self.port = free_port()
        self.user = getpass.getuser()
        self.host_key = root / "host_ed25519"
        self.client_key = root / "client_ed25519"
        self.process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available() -> bool:
        return Path(SSHD).exists()

    def start(self, timeout: float = 10.0) -> Sshd:
        self.root.mkdir(parents=True, exist_ok=True)
        for key in (self.host_key, self.client_key):
            if not key.exists():
                subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        authorized = self.root / "authorized_keys"
        authorized.write_text(self.client_key.with_suffix(".pub").read_text())
        authorized.chmod(0o600)
        config = self.root / "sshd_config"
        config.write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {self.host_key}\n"
            f"AuthorizedKeysFile {authorized}\n"
            f"PasswordAuthentication {'yes' if self.passwords else 'no'}\n"
            "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPermitRootLogin yes\n"
            f"PidFile {self.root / 'sshd.pid'}\nSubsystem sftp internal-sftp\n"
            f"LogLevel {self.log_level}\n"
        )
        Path("/run/sshd").mkdir(exist_ok=True)  # privilege-separation dir sshd insists on
        self.process = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(config)],
            stderr=open(self.log_path, "ab"),  # noqa: SIM115
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"sshd exited: {self.log_path.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                    if conn.recv(4).startswith(b"SSH-"):
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("sshd did not start in time")

    @property
    def log_path(self) -> Path:
        return self.root / "sshd.log"

    def host_key_fingerprint(self) -> str:
        """As `ssh-keygen -lf` prints it: `SHA256:...`."""
        out = subprocess.run(
            ["ssh-keygen", "-lf", str(self.host_key.with_suffix(".pub"))],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return out.split()[1]

    def change_host_key(self) -> Sshd:
        """Restart on the same port with a new host key, as a reinstalled (or spoofed) kit would."""
        self.stop()
        self.host_key.unlink()
        self.host_key.with_suffix(".pub").unlink()
        return self.start()

    def ssh_options(self) -> list[str]:
        return [
            "-i",
            str(self.client_key),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "BatchMode=yes",
        ]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
