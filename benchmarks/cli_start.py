"""How long a technician waits for `kitfleet` to start: `--help`, and `kits` with three kits.

Goal (issue 19): `kitfleet kits` (warm, 3 kits adopted) and `kitfleet --help` each start and
finish in <= 0.4 s. `kits` runs twice: with its 3 kits running (real agents on loopback, which it
polls over TLS) and with all 3 offline (their ports closed on loopback). The real console
script runs in a fresh process each time; printed per command: wall time (best and median) and
the CPU time the process used (user + system, median), each as a ratio against the goal, beside
a bare interpreter's. On a shared, loaded machine the wall time mostly measures waiting for a
core, so the CPU time is the figure to compare with the goal there; the load average is printed.
`--imports` also prints the modules that cost `kits` the most (`python -X importtime`).
Run: .venv/bin/python -m benchmarks.cli_start [--runs 7] [--imports]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from app.fleet.localagent import LocalAgent, stop_all

GOAL_S = 0.4
KITFLEET = str(Path(sys.executable).with_name("kitfleet"))
_RUN_CLI = "import sys\nfrom app.cli import main\nsys.exit(main())"


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_home(root: Path, kits: int = 3) -> Path:
    """An app home with `kits` adopted kits, each with a real identity, none running."""
    from agent.identity import load_or_create
    from app.fleet.inventory import Inventory, Kit

    home = root / "home"
    home.mkdir(mode=0o700)
    inventory = Inventory(home)
    try:
        for i in range(kits):
            (root / f"kit-{i}").mkdir()
            identity = load_or_create(root / f"kit-{i}")
            inventory.save(
                Kit(
                    device_id=identity.device_id,
                    name=f"kit-{i}",
                    host="127.0.0.1",
                    port=_closed_port(),
                    cert_pem=identity.cert_path.read_text(),
                    token="kft_bench",
                    token_id=f"t{i}",
                    adopted_at=time.time(),
                    last_seen_at=time.time() - 60,
                )
            )
    finally:
        inventory.close()
    return home


def adopt_running(root: Path, kits: int = 3) -> tuple[Path, list[LocalAgent]]:
    """An app home with `kits` adopted kits that run: real agents on loopback, no mDNS."""
    from app.fleet.service import Fleet
    from app.fleet.settings import AppSettings

    home = root / "home-online"
    home.mkdir(mode=0o700)
    agents = [LocalAgent(root / f"online-{i}", f"online-{i}", mdns=False) for i in range(kits)]
    fleet = Fleet(AppSettings.resolve(home=home, mdns_interfaces=["127.0.0.1"]))
    try:
        for agent in agents:
            agent.start()
            asyncio.run(fleet.async_adopt(agent.address, agent.pair_code()))
    except BaseException:
        stop_all(agents)
        raise
    finally:
        fleet.close()
    return home, agents


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of `argv` in a fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def measure(argv: list[str], env: dict[str, str], runs: int) -> dict[str, float]:
    timed(argv, env)  # warm: the byte code and the file cache
    walls, cpus = zip(*(timed(argv, env) for _ in range(runs)), strict=True)
    return {"best": min(walls), "median": statistics.median(walls), "cpu": statistics.median(cpus)}


def costly_imports(argv: list[str], env: dict[str, str], top: int = 12) -> list[tuple[int, str]]:
    """The `top` imports with the largest cumulative time (µs), outermost first."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", _RUN_CLI, *argv],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    rows = []
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            _, cumulative, name = line.split("|")
            if cumulative.strip().isdigit():
                rows.append((int(cumulative), name.rstrip()))
    return sorted(rows, reverse=True)[:top]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--imports", action="store_true", help="also list what `kits` spends importing")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kitfleet-cli-start-") as tmp:
        home = make_home(Path(tmp))
        # An installed kitfleet has its byte code compiled (pip does it); the warm-up run writes
        # it for a source checkout, unless PYTHONDONTWRITEBYTECODE is set, as on some machines.
        base = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env = {**base, "KITFLEET_HOME": str(home)}
        online_home, agents = adopt_running(Path(tmp))
        online_env = {**base, "KITFLEET_HOME": str(online_home)}
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"load average: {load} on {os.cpu_count()} cores; {args.runs} runs each after one warm-up")
        bare = measure([sys.executable, "-c", "pass"], env, args.runs)
        print(f"  bare interpreter           wall best {bare['best']:.3f} s, CPU {bare['cpu']:.3f} s")
        # mDNS (kits looks for an offline kit at a new address) only ever on loopback here.
        kits = ["--interface", "127.0.0.1", "kits"]
        try:
            for label, argv, on in (
                ("kitfleet --help", ["--help"], env),
                ("kitfleet kits (3 running)", kits, online_env),
                ("kitfleet kits (3 offline)", kits, env),
            ):
                got = measure([KITFLEET, *argv], on, args.runs)
                goal = f"({got['best'] / GOAL_S:.2f}x the {GOAL_S:g} s goal)"
                print(
                    f"  {label:<26} wall best {got['best']:.3f} s {goal}, "
                    f"median {got['median']:.3f} s ({got['median'] / GOAL_S:.2f}x); "
                    f"CPU {got['cpu']:.3f} s ({got['cpu'] / GOAL_S:.2f}x)"
                )
        finally:
            stop_all(agents)
        from app.fleet.service import _RELOCATE_S

        print(
            f"  (of the offline kits' wall time, up to {_RELOCATE_S:g} s is listening over mDNS for "
            "an offline kit at a new address, by design; the CPU time is the start-up cost)"
        )
        if args.imports:
            print("  kits (3 running): costliest imports (cumulative, ms):")
            for micros, name in costly_imports(kits, online_env):
                print(f"    {micros / 1000:8.1f}  {name.strip()}")
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
