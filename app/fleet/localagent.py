"""Start and stop `kitfleet-agent` processes on this machine (demo, tests, benchmarks).

Agents started here listen on loopback with an ephemeral port and announce over
mDNS only on 127.0.0.1, never on the machine's real interfaces.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.toolkit import children
from agent.toolkit.readiness import read_health
from app.fleet.errors import Error

LOOPBACK = "127.0.0.1"


@dataclass
class LocalAgent:
    data_dir: Path
    name: str
    kit_model: str = ""
    mdns: bool = True
    host: str = LOOPBACK
    port: int = 0
    extra_args: list[str] = field(default_factory=list)
    # SIGTERM when the starting thread's process dies, even by SIGKILL: the demo's agents never
    # outlive it (a killed demo's kits answered a later demo's adoption under the same names)
    die_with_parent: bool = False
    process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        cmd = [
            sys.executable,
            "-m",
            "agent",
            "run",
            "--data-dir",
            str(self.data_dir),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--name",
            self.name,
        ]
        if self.kit_model:
            cmd += ["--kit-model", self.kit_model]
        cmd += ["--mdns-interface", LOOPBACK] if self.mdns else ["--no-mdns"]
        return cmd + self.extra_args

    def start(self, timeout: float = 30.0) -> LocalAgent:
        """Start the agent and wait until /v1/health answers."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        port_file = self.data_dir / "agent.port"
        port_file.unlink(missing_ok=True)
        log = open(self.data_dir / "stderr.log", "ab")  # noqa: SIM115 - owned by the process
        self.process = subprocess.Popen(
            self.command(),
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            preexec_fn=children.die_with_parent if self.die_with_parent else None,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise Error(f"agent {self.name} exited with {self.process.returncode}: {self.log_tail()}")
            if port_file.exists() and self._healthy(port_file):
                return self
            time.sleep(0.05)
        self.kill()
        raise Error(f"agent {self.name} not ready within {timeout:g} s: {self.log_tail()}")

    def _healthy(self, port_file: Path) -> bool:
        try:
            self.port = int(port_file.read_text())
            self.health()
        except (OSError, ValueError):
            return False
        return True

    def health(self) -> dict[str, Any]:
        return read_health(self.host, self.port, timeout=2)  # readiness only: no token is sent

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def run_cli(self, *args: str) -> str:
        """Run a `kitfleet-agent` command against this agent's data dir; return stdout."""
        done = subprocess.run(
            [sys.executable, "-m", "agent", *args, "--data-dir", str(self.data_dir)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0:
            raise Error(f"kitfleet-agent {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    def pair_code(self, ttl: float = 600.0) -> str:
        return str(json.loads(self.run_cli("pair-code", "--json", "--ttl", str(ttl)))["code"])

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM and wait: the agent withdraws its mDNS record and closes its database."""
        self.signal_stop()
        return self.wait_stopped(timeout)

    def wait_stopped(self, timeout: float = 15.0) -> int | None:
        """Wait for a signalled agent to exit; SIGKILL it after `timeout` seconds (then None)."""
        if self.process is None:
            return None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def signal_stop(self) -> None:
        """SIGTERM without waiting, so several agents stop at once (`stop_all`)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = (self.data_dir / "stderr.log").read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def stop_all(agents: list[LocalAgent], timeout: float = 15.0) -> None:
    """SIGTERM every agent first, then wait for each (and SIGKILL one that does not stop)."""
    for agent in agents:
        agent.signal_stop()
    for agent in agents:
        agent.wait_stopped(timeout)
