"""The window with 1,000 kits: event-loop lag and table refresh time while polling them all.

The kits are faithful in-process servers: the real agent app (`agent.api.app.create_app`, its
own identity, TLS certificate, SQLite database and metrics ring) per kit, many served by one
process on loopback (uvicorn per kit, one event loop per process) because 1,000 agent processes
do not fit on two cores. Their rings get a sample every 10 s, as agents do. Each kit answers
one request of each kind the window sends before the window starts (`_warm`), as a running
kit has, so the start-up round does not wait for 1,000 kits' first-request set-up on two
cores. The kits' servers share this machine's cores with the window, so a round here also
waits for them: on a loaded machine the round's wall time says more about the simulation
than about the app.

Measured, with the real FleetBridge and MainWindow offscreen:
1. lag of the GUI thread's event loop (a 10 ms timer's lateness), p50/p99/max — goal p99 < 50 ms;
2. lag of the bridge's asyncio loop (where polling runs) — same goal;
3. one poll round of every kit, and the table refresh (rows updated) per round;
4. the window process's own CPU time in each round: what the round would cost with the kits on
   their own hardware, where their servers' CPU is not the laptop's.
Run: .venv/bin/python -m benchmarks.fleet_scale [--kits 1000] [--rounds 4] [--processes 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import uvicorn

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

GOAL_LAG_MS = 50.0
SAMPLE_INTERVAL_S = 10.0
POLL_INTERVAL_S = 5.0


# --- the kits (child processes) --------------------------------------------------------


def serve(first: int, count: int, root: Path, ready: Path) -> None:
    """Serve kits first..first+count-1 on loopback until killed."""
    from agent.api.app import create_app
    from agent.api.state import AgentState
    from agent.config import Settings
    from agent.identity import load_or_create
    from agent.metrics.ring import take_sample
    from agent.server import bind

    async def main() -> None:
        kits, servers, states = [], [], []
        for i in range(first, first + count):
            data = root / f"kit-{i:03d}"
            data.mkdir(parents=True, exist_ok=True)
            settings = Settings.resolve(data, {"name": f"kit-{i:03d}", "host": "127.0.0.1", "port": 0})
            identity = load_or_create(data)
            state = AgentState.open(settings, identity)
            states.append(state)
            for n in range(30):  # some history to pull on the first round
                past = time.time() - 300 + 10 * n
                state.metrics.append(take_sample(str(data)).model_copy(update={"ts": past}))
            token_id, token = state.tokens.issue("kitfleet (bench)", "admin")
            sock = bind("127.0.0.1", 0)
            app = create_app(state)
            await _warm(app, token)
            config = uvicorn.Config(
                app,
                ssl_certfile=str(identity.cert_path),
                ssl_keyfile=str(identity.key_path),
                log_level="error",
                access_log=False,
                lifespan="off",
                timeout_keep_alive=15,
            )
            server = _QuietServer(config)
            servers.append(asyncio.create_task(server.serve(sockets=[sock])))
            kits.append(
                {
                    "name": settings.name,
                    "port": sock.getsockname()[1],
                    "device_id": identity.device_id,
                    "cert_pem": identity.cert_path.read_text(),
                    "token": token,
                    "token_id": token_id,
                }
            )
        ready.write_text(json.dumps(kits))
        while True:  # the sampler each agent runs
            await asyncio.sleep(SAMPLE_INTERVAL_S)
            for state in states:
                await asyncio.to_thread(state.metrics.append, take_sample(str(state.settings.data_dir)))

    asyncio.run(main())


async def _warm(app: Any, token: str) -> None:
    """Ask a kit, in-process, what the window asks it. FastAPI builds each route's context on
    its first request: 70 ms of CPU here. A real kit pays that once, on its own cores, before
    or while the laptop connects; 1,000 simulated kits would pay 70 s of it on the window's two
    cores, inside the start-up round being measured."""
    import httpx

    from agent.wire import OVERVIEW_PATH

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://kit",
        headers={"Authorization": f"Bearer {token}"},
    ) as client:
        for path in ("/v1/health", OVERVIEW_PATH, "/v1/metrics"):
            (await client.get(path)).raise_for_status()


class _QuietServer(uvicorn.Server):
    """A kit's uvicorn without its 10 Hz housekeeping tick (the Date header, a restart check):
    a kit runs one server on its own cores, but 500 ticking in one process here would starve
    the very requests being measured."""

    async def main_loop(self) -> None:
        await asyncio.Event().wait()


Children = list[subprocess.Popen[bytes]]


def start_kits(total: int, processes: int, root: Path) -> tuple[Children, list[dict[str, Any]]]:
    per = -(-total // processes)
    children, readies = [], []
    for p in range(processes):
        first, count = p * per, min(per, total - p * per)
        ready = root / f"ready-{p}.json"
        readies.append(ready)
        children.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "benchmarks.fleet_scale",
                    "--serve",
                    str(first),
                    str(count),
                    str(root),
                    str(ready),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    deadline = time.monotonic() + 600
    while not all(r.exists() for r in readies):
        if time.monotonic() > deadline or any(c.poll() is not None for c in children):
            stop(children)
            raise SystemExit("the kit servers did not start")
        time.sleep(0.5)
    return children, [k for r in readies for k in json.loads(r.read_text())]


def stop(children: Children) -> None:
    """Kill the kit servers: nothing of theirs needs a clean shutdown, and their uvicorns
    each take SIGTERM as a request to stop serving, not to end the process."""
    for child in children:
        child.kill()
    for child in children:
        child.wait(30)


# --- the window (this process) ---------------------------------------------------------


def adopt_all(home: Path, kits: list[dict[str, Any]]) -> None:
    """What enrollment over SSH leaves in the inventory, for every kit."""
    from app.fleet.inventory import Inventory, Kit

    home.mkdir(parents=True, exist_ok=True)
    inventory = Inventory(home)
    for k in kits:
        inventory.save(
            Kit(
                device_id=k["device_id"],
                name=k["name"],
                host="127.0.0.1",
                port=k["port"],
                cert_pem=k["cert_pem"],
                token=k["token"],
                token_id=k["token_id"],
                adopted_at=time.time(),
            )
        )
    inventory.close()


class LoopLag:
    """Lateness of a 10 ms tick on an asyncio loop, from another thread's view of it."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self._stop = threading.Event()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stop.is_set():
            started = loop.time()
            await asyncio.sleep(0.01)
            self.lags.append((loop.time() - started - 0.01) * 1000)

    def stop(self) -> None:
        self._stop.set()


POLL_MS: list[float] = []
POLL_CPU_S: list[float] = []  # this process's CPU (every thread) while each round ran


def _time_polls() -> None:
    """Time each poll round of every kit (instrumentation of this benchmark only)."""
    from app.fleet.ops import FleetOps

    original = FleetOps.async_poll

    async def timed(self: FleetOps, *args: Any, **kwargs: Any) -> Any:
        started, cpu = time.perf_counter(), time.process_time()
        polls = await original(self, *args, **kwargs)
        if len(polls) > 1:
            POLL_MS.append((time.perf_counter() - started) * 1000)
            POLL_CPU_S.append(time.process_time() - cpu)
        return polls

    FleetOps.async_poll = timed  # type: ignore[method-assign]


def measure_window(home: Path, total: int, rounds: int) -> dict[str, Any]:
    _time_polls()
    from app.fleet.settings import AppSettings
    from app.gui.bridges.fleet_bridge import FleetBridge
    from app.gui.lag_probe import LagProbe, run_until
    from app.gui.main import application
    from app.gui.main_window import MainWindow

    application()
    settings = AppSettings.resolve(home, ["127.0.0.1"])
    bridge = FleetBridge(settings, poll_interval=POLL_INTERVAL_S)
    window = MainWindow(bridge)
    window.show()
    probe = LagProbe()
    refresh_ms: list[float] = []
    updated_rows: list[int] = []
    original = window.model.apply_views
    changed = [0]
    window.model.dataChanged.connect(lambda *_: changed.__setitem__(0, changed[0] + 1))

    def timed_apply(views: Any) -> None:
        before, started = changed[0], time.perf_counter()
        original(views)
        refresh_ms.append((time.perf_counter() - started) * 1000)
        updated_rows.append(changed[0] - before)

    bridge.views.disconnect(window.model.apply_views)
    bridge.views.connect(timed_apply)
    lag = LoopLag()
    round_started = [time.perf_counter()]
    round_ms: list[float] = []

    def on_views(views: Any) -> None:
        if len(views) == total:
            round_ms.append((time.perf_counter() - round_started[0]) * 1000)
            round_started[0] = time.perf_counter()
            if len(round_ms) == 1:  # steady state from here: start-up (first pull of history,
                probe.lags_ms.clear()  # facts of every kit) is measured apart, as the first round
                lag.lags.clear()

    bridge.views.connect(on_views)
    probe.start()
    bridge.start()
    assert bridge._loop is not None
    lagging = asyncio.run_coroutine_threadsafe(lag.run(), bridge._loop)
    run_until(lambda: len(round_ms) > rounds)
    lag.stop()
    lagging.cancel()
    probe.stop()
    online = sum(r.row_status == "online" for r in window.model.rows())
    rss = psutil.Process().memory_info().rss  # with every kit's connection kept
    window.close()
    bridge.close()
    return {
        "gui_lags": probe.lags_ms,
        "loop_lags": lag.lags,
        "refresh_ms": refresh_ms[1:],
        "updated_rows": updated_rows[1:],
        "round_ms": round_ms,
        "online": online,
        "poll_ms": POLL_MS,
        "poll_cpu_s": POLL_CPU_S,
        "rss": rss,
    }


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kits", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--serve", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(int(args.serve[0]), int(args.serve[1]), Path(args.serve[2]), Path(args.serve[3]))
        return
    with tempfile.TemporaryDirectory(prefix="kitfleet-scale-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        children, kits = start_kits(args.kits, args.processes, root / "kits")
        print(f"{len(kits)} kits serving after {time.perf_counter() - started:.0f} s")
        try:
            adopt_all(root / "home", kits)
            result = measure_window(root / "home", len(kits), args.rounds)
        finally:
            stop(children)
    report(result, len(kits))


def report(r: dict[str, Any], kits: int) -> None:
    print(f"\n{kits} kits, {r['online']} online in the table; {len(r['round_ms'])} measured rounds")
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    print(f"the window's memory after the rounds (RSS, every kit's connection kept): {r['rss'] / 1e6:.0f} MB")
    for name, lags in (("GUI thread", r["gui_lags"]), ("poll loop", r["loop_lags"])):
        p99 = pct(lags, 0.99)
        verdict = "met" if p99 < GOAL_LAG_MS else "MISSED"
        print(
            f"{name:<11} lag p50 {pct(lags, 0.5):6.1f} ms  p99 {p99:6.1f} ms  "
            f"max {max(lags, default=0):6.1f} ms   p99/goal {p99 / GOAL_LAG_MS:4.2f} "
            f"({verdict}, goal < {GOAL_LAG_MS:g} ms)"
        )
    if r["poll_ms"]:
        first, rest = r["poll_ms"][0], r["poll_ms"][1:] or r["poll_ms"]
        interval_ms = POLL_INTERVAL_S * 1000
        print(
            f"poll of every kit: start-up round (pulls all history, reads facts) {first:7.0f} ms "
            f"({first / interval_ms:.2f}x the {POLL_INTERVAL_S:g} s interval); then mean "
            f"{statistics.mean(rest):6.0f} ms, max {max(rest):6.0f} ms ({max(rest) / interval_ms:.2f}x; "
            "goal < 1x)"
        )
        cpu_first, cpu_rest = r["poll_cpu_s"][0], r["poll_cpu_s"][1:] or r["poll_cpu_s"]
        print(
            f"  the window's own CPU in a round (all its threads; the kits' servers apart): start-up "
            f"{cpu_first:.1f} s ({1000 * cpu_first / interval_ms:.2f}x the interval; "
            f"{cpu_first / first * 1000:.0%} of its wall time), then mean {statistics.mean(cpu_rest):.2f} s "
            f"({1000 * statistics.mean(cpu_rest) / interval_ms:.2f}x): with the kits on their own "
            "hardware, the round's floor"
        )
        rounds = zip(r["poll_ms"], r["poll_cpu_s"], strict=True)
        each = ", ".join(f"{ms / 1000:.1f} ({cpu:.1f})" for ms, cpu in rounds)
        print(f"  each round, wall s (window CPU s): {each}")
    if r["refresh_ms"]:
        print(
            f"table refresh per round  mean {statistics.mean(r['refresh_ms']):6.1f} ms  "
            f"max {max(r['refresh_ms']):6.1f} ms; rows updated per round "
            f"{statistics.mean(r['updated_rows']):.0f} of {kits}"
        )


if __name__ == "__main__":
    main()
