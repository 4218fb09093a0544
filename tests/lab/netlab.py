"""The network lab: test hosts as Linux network namespaces on one bridge, a real agent in each.

    switch namespace:  br0 ── p1 ── p2 ── … (one veth end per host; the bridge lives here)
    host namespace:    eth0 = 10.213.S.N/24, lo; an agent (or the app) runs inside it

Everything is made inside namespaces this lab creates (named `kflab<pid>-<n>-<role>`, so parallel
runs never collide): no address, route or link is ever added to the machine's root namespace, and
mDNS multicast stays on the bridge. `Lab.close()` kills every process inside the lab's namespaces
and deletes them, whatever state a failed test left behind.

The test process itself reaches into a namespace with `in_netns` (a thread that joins it with
setns(2); a network namespace is per thread), so readiness polls and direct checks need no
subprocess.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from app.fleet.localagent import LocalAgent

T = TypeVar("T")
PREFIX = "kflab"
AGENT_PORT = 8443  # fixed: each host is its own namespace, and a swap keeps HOST:PORT meaningful
_CLONE_NEWNET = 0x40000000
_NETNS_DIR = Path("/run/netns")
_counter = itertools.count(1)
_libc = ctypes.CDLL(None, use_errno=True)


def unavailable() -> str:
    """Why the lab cannot run here ('' when it can)."""
    if os.geteuid() != 0:
        return "the network lab needs root (it creates network namespaces)"
    missing = [tool for tool in ("ip", "tc") if shutil.which(tool) is None]
    if missing:
        return f"the network lab needs iproute2 ({', '.join(missing)} not found)"
    return ""


def run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()}")
    return done


def in_netns(ns: str, fn: Callable[[], T]) -> T:
    """Run `fn` on a thread that joined network namespace `ns`; sockets it opens live there."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            fd = os.open(_NETNS_DIR / ns, os.O_RDONLY)
            try:
                if _libc.setns(fd, _CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns into {ns}: {os.strerror(err)}")
            finally:
                os.close(fd)
            outcome["value"] = fn()
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=target, name=f"netns-{ns}", daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]  # type: ignore[no-any-return]


@dataclass
class NetnsAgent(LocalAgent):
    """A real `kitfleet-agent run` inside a namespace, announcing on that namespace's address."""

    ns: str = ""

    def command(self) -> list[str]:
        return [
            "ip",
            "netns",
            "exec",
            self.ns,
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
            "--mdns-interface",
            self.host,
            *self.extra_args,
        ]

    def health(self) -> dict[str, str]:
        return in_netns(self.ns, super().health)

    def start(self, timeout: float = 30.0) -> NetnsAgent:
        self.port = AGENT_PORT
        super().start(timeout)
        return self


@dataclass
class Host:
    """One test host: a namespace plugged into the lab's bridge through `eth0`."""

    lab: Lab
    role: str
    index: int
    ns: str
    address: str
    agent: NetnsAgent | None = None

    @property
    def switch_port(self) -> str:
        return f"p{self.index}"

    def ip(self, *args: str) -> None:
        run("ip", "-n", self.ns, *args)

    def start_agent(self, name: str, data_dir: Path | None = None) -> NetnsAgent:
        """Start (or restart, keeping its data dir) this host's agent on the host's address."""
        if self.agent is not None:
            self.agent.stop()
        folder = data_dir or (self.agent.data_dir if self.agent else self.lab.root / "kits" / self.role)
        self.agent = NetnsAgent(folder, name, host=self.address, ns=self.ns)
        return self.agent.start()

    def cut(self) -> None:
        """Pull the cable: the switch side of the veth goes down, the host keeps its address."""
        run("ip", "-n", self.lab.switch, "link", "set", self.switch_port, "down")

    def restore(self) -> None:
        run("ip", "-n", self.lab.switch, "link", "set", self.switch_port, "up")

    def netem(self, *spec: str) -> None:
        """Shape what this host sends, e.g. netem("rate", "8mbit") or ("delay", "50ms", "loss", "5%")."""
        run("ip", "netns", "exec", self.ns, "tc", "qdisc", "replace", "dev", "eth0", "root", "netem", *spec)

    def limit_rate(self, rate: str) -> None:
        """Slow what this host sends to `rate` (e.g. "16mbit") with a token bucket, which every
        kernel has (netem is a module some kernels, this CI's among them, lack)."""
        run(
            "ip",
            "netns",
            "exec",
            self.ns,
            "tc",
            "qdisc",
            "replace",
            "dev",
            "eth0",
            "root",
            "tbf",
            "rate",
            rate,
            "burst",
            "32kbit",
            "latency",
            "400ms",
        )

    def clear_netem(self) -> None:
        run("ip", "netns", "exec", self.ns, "tc", "qdisc", "del", "dev", "eth0", "root", check=False)

    def move(self, address: str) -> None:
        """Give the host another address (its agent must be restarted to listen there).

        The link is bounced, as a DHCP renewal after a re-plug would: with arp_notify the host
        then sends a gratuitous ARP, so neighbours do not keep sending to the old owner.
        """
        self.ip("addr", "flush", "dev", "eth0")
        self.ip("addr", "add", f"{address}/24", "dev", "eth0")
        self.ip("link", "set", "eth0", "down")
        self.ip("link", "set", "eth0", "up")
        self.ip("route", "replace", "224.0.0.0/4", "dev", "eth0")
        self.address = address

    def request(self, method: str, path: str, token: str = "", **kwargs: Any) -> httpx.Response:
        """An HTTPS call to this host's agent from inside its namespace (certificate not checked:
        the test inspects the kit, it does not trust it)."""
        assert self.agent is not None
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        headers.update(kwargs.pop("headers", {}))
        url = f"https://{self.address}:{self.agent.port}{path}"

        def call() -> httpx.Response:
            with httpx.Client(verify=False, timeout=10) as client:
                return client.request(method, url, headers=headers, **kwargs)

        return in_netns(self.ns, call)


@dataclass
class AppHost:
    """The namespace the app's core runs in: the real `kitfleet` CLI, browsing on its address."""

    host: Host
    home: Path
    env: dict[str, str] = field(default_factory=dict)
    timings: list[tuple[str, float]] = field(default_factory=list)  # (command, seconds) per run

    def command(self, *args: str) -> list[str]:
        return [
            "ip",
            "netns",
            "exec",
            self.host.ns,
            sys.executable,
            "-m",
            "app",
            "--home",
            str(self.home),
            "--interface",
            self.host.address,
            *args,
        ]

    def _env(self) -> dict[str, str]:
        return dict(os.environ, KITFLEET_MDNS_INTERFACES=self.host.address, **self.env)

    def kitfleet(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        started = time.monotonic()
        done = subprocess.run(
            self.command(*args), capture_output=True, text=True, timeout=timeout, env=self._env(), check=False
        )
        self.timings.append((" ".join(args[:2]), time.monotonic() - started))
        return done

    def ok(self, *args: str, timeout: float = 60) -> str:
        done = self.kitfleet(*args, timeout=timeout)
        assert done.returncode == 0, f"kitfleet {' '.join(args)}: {done.stderr}{done.stdout}"
        return done.stdout

    def json(self, *args: str, timeout: float = 60) -> Any:
        return json.loads(self.ok(*args, "--json", timeout=timeout))

    def popen(self, *args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            self.command(*args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=self._env()
        )
        self.host.lab.processes.append(proc)
        return proc

    def adopt(self, kit: Host) -> str:
        """Adopt the agent on `kit` by HOST:PORT with a fresh pairing code; returns its device ID."""
        assert kit.agent is not None
        answer = self.json("adopt", f"{kit.address}:{kit.agent.port}", "--code", kit.agent.pair_code())
        return str(answer["device_id"])

    def adopt_all(self, kits: Sequence[Host]) -> list[str]:
        """Adopt several kits at once (each adoption is two CLI runs of ~1.5 s)."""
        with ThreadPoolExecutor(len(kits)) as pool:
            return list(pool.map(self.adopt, kits))


class Lab:
    """N hosts on one bridge; `close()` undoes everything, whatever happened."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tag = f"{PREFIX}{os.getpid()}-{next(_counter)}"
        self.subnet = f"10.213.{os.getpid() % 250}"
        self.switch = f"{self.tag}-sw"
        self.hosts: list[Host] = []
        self.processes: list[subprocess.Popen[Any]] = []
        self._namespaces: list[str] = []

    def open(self) -> Lab:
        _remove_stale()
        self._netns(self.switch)
        run("ip", "-n", self.switch, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
        run("ip", "-n", self.switch, "link", "set", "br0", "up")
        return self

    def _netns(self, name: str) -> None:
        run("ip", "netns", "add", name)
        self._namespaces.append(name)
        run("ip", "-n", name, "link", "set", "lo", "up")

    def address(self, n: int) -> str:
        return f"{self.subnet}.{n}"

    def host(self, role: str) -> Host:
        """A new host on the bridge, with the next free address."""
        index = len(self.hosts) + 1
        host = Host(self, role, index, f"{self.tag}-{role}", self.address(10 + index))
        self._netns(host.ns)
        # Both veth ends are born inside lab namespaces: nothing appears in the root namespace.
        run(
            "ip",
            "-n",
            self.switch,
            "link",
            "add",
            host.switch_port,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            host.ns,
        )
        run("ip", "-n", self.switch, "link", "set", host.switch_port, "master", "br0", "up")
        host.ip("addr", "add", f"{host.address}/24", "dev", "eth0")
        run("ip", "netns", "exec", host.ns, "sysctl", "-qw", "net.ipv4.conf.eth0.arp_notify=1")
        host.ip("link", "set", "eth0", "up")
        host.ip("route", "add", "224.0.0.0/4", "dev", "eth0")  # mDNS leaves through the bridge
        self.hosts.append(host)
        return host

    def app(self, **env: str) -> AppHost:
        return AppHost(self.host("app"), self.root / "app-home", dict(env))

    def start_agents(self, named: Sequence[tuple[Host, str]]) -> None:
        """Start several agents at once (each takes ~1 s of imports)."""
        errors: list[BaseException] = []

        def start(host: Host, name: str) -> None:
            try:
                host.start_agent(name)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=start, args=pair) for pair in named]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]

    @staticmethod
    def kill9(pid: int) -> None:
        os.kill(pid, signal.SIGKILL)

    def close(self) -> None:
        for host in self.hosts:
            if host.agent is not None:
                host.agent.stop(timeout=5)
        for proc in self.processes:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        for ns in reversed(self._namespaces):
            _kill_inside(ns)
            run("ip", "netns", "del", ns, check=False)
        self._namespaces.clear()


def _kill_inside(ns: str) -> None:
    """SIGKILL whatever still runs in a lab namespace (only ever processes this lab started)."""
    pids = run("ip", "netns", "pids", ns, check=False).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    deadline = time.monotonic() + 5
    while pids and time.monotonic() < deadline:
        pids = run("ip", "netns", "pids", ns, check=False).stdout.split()
        time.sleep(0.05)


def _remove_stale() -> None:
    """Delete lab namespaces left by a lab run whose process is gone (a killed pytest)."""
    if not _NETNS_DIR.is_dir():
        return
    for path in _NETNS_DIR.iterdir():
        name = path.name
        if not name.startswith(PREFIX):
            continue
        pid = name[len(PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            _kill_inside(name)
            run("ip", "netns", "del", name, check=False)
