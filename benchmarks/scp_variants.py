"""OpenSSH scp three ways, for the benchmarks that set kitfleet's transfers beside it.

kitfleet keeps its session (SSH or pinned TLS) open across a deploy, so comparing it with a
scp that also pays its SSH connect (key exchange, authentication) flatters kitfleet. Here scp
also runs over a kept-open connection (ControlMaster), with OpenSSH's default cipher and with
AES-GCM (the cipher a kit's CPU with AES instructions runs fastest); the cipher is the master
connection's, so each cipher has a master of its own.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from types import TracebackType

from tests.sshd import Sshd

__all__ = ["NEW", "REUSED", "REUSED_GCM", "VARIANTS", "ScpVariants"]

NEW = "scp, new connection"
REUSED = "scp, reused connection"
REUSED_GCM = "scp, reused, AES-GCM"
VARIANTS = (NEW, REUSED, REUSED_GCM)
_CIPHERS = {REUSED: [], REUSED_GCM: ["-c", "aes128-gcm@openssh.com"]}


class ScpVariants:
    """Masters for the reused variants while in a `with` block; `copy` times one variant."""

    def __init__(self, sshd: Sshd, root: Path) -> None:
        self._sshd, self._root = sshd, root
        self._target = f"{sshd.user}@127.0.0.1"

    def _control(self, variant: str) -> Path:
        return self._root / f"cm-{VARIANTS.index(variant)}.sock"

    def __enter__(self) -> ScpVariants:
        for variant, cipher in _CIPHERS.items():
            control = f"ControlPath={self._control(variant)}"
            persist = ["-o", "ControlMaster=yes", "-o", control, "-o", "ControlPersist=yes", "-fN"]
            ssh = ["ssh", "-p", str(self._sshd.port), *self._sshd.ssh_options(), *cipher, *persist]
            subprocess.run([*ssh, self._target], check=True)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        for variant in _CIPHERS:
            subprocess.run(
                ["ssh", "-o", f"ControlPath={self._control(variant)}", "-O", "exit", self._target],
                capture_output=True,
                check=False,
            )

    def copy(self, variant: str, files: list[Path], dest: str) -> float:
        """Seconds to copy `files` to `dest` on the loopback sshd the `variant` way."""
        control = ["-o", "ControlMaster=no", "-o", f"ControlPath={self._control(variant)}"]
        scp = ["scp", "-q", "-P", str(self._sshd.port), *self._sshd.ssh_options()]
        started = time.perf_counter()
        subprocess.run(
            [*scp, *(control if variant != NEW else []), *map(str, files), f"{self._target}:{dest}"],
            check=True,
        )
        return time.perf_counter() - started
