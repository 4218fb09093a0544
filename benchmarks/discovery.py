"""Discovery latency over real mDNS on 127.0.0.1.

1. Warm: an agent already runs; time from starting the browser to the kit listed.
   Goal <= 0.2 s.
2. Cold: time from spawning the agent process to the kit listed. Goal <= 1.5 s;
   the mDNS probing floor alone is about 0.75 s.
3. Crowded (issue 19): warm, with 8 other mDNS responders on the host sharing port 5353 (other
   zeroconf instances on 127.0.0.1, each announcing another service type, as avahi and other
   agents do on a laptop). Goal: listed <= 0.2 s p50, p95 <= 0.3 s. Measured as the app asks
   (multicast-answer (QM) questions and a one-shot question from its own port, answered
   straight to it) and, beside it, with QM questions alone and with zeroconf's default
   unicast-answer (QU) first questions alone: a unicast answer to port 5353 reaches one socket
   there only.
4. Just answered (as 3): the kit multicast its answer to another browser a moment before, so
   it holds back a multicast answer until a second has passed (RFC 6762 section 6), as a kit
   that just moved and announced itself does when the app looks for it. Goal as 1.
Every zeroconf here is bound to 127.0.0.1 only.
Run: .venv/bin/python -m benchmarks.discovery [--runs 10] [--crowded-only]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from zeroconf import IPVersion, ServiceInfo, Zeroconf

from app.fleet import discovery
from app.fleet.discovery import async_discover
from app.fleet.localagent import LOOPBACK, LocalAgent

WARM_GOAL_S = 0.2
COLD_GOAL_S = 1.5
CROWDED_P95_GOAL_S = 0.3
OTHER_RESPONDERS = 8
RECORD_INTERVAL_S = 1.2


async def _time_to_listed(name: str, timeout: float = 10.0) -> float:
    started = time.perf_counter()
    found = await async_discover([LOOPBACK], timeout, stop_when=lambda a: a.name == name)
    if not any(a.name == name for a in found):
        raise RuntimeError(f"{name} was not discovered within {timeout} s")
    return time.perf_counter() - started


def _spaced(run: Callable[[], float]) -> float:
    """One run, then a pause: a responder multicasts a record at most once a second (RFC 6762
    section 6), so a browser started right after another's answer waits for that second; each
    run here is a new technician's discovery, not a retry of the last one."""
    took = run()
    time.sleep(RECORD_INTERVAL_S)
    return took


def warm(runs: int, tmp: Path) -> list[float]:
    agent = LocalAgent(tmp / "warm", "bench-warm").start()
    try:
        time.sleep(2)  # announcement finished
        return [_spaced(lambda: asyncio.run(_time_to_listed("bench-warm"))) for _ in range(runs)]
    finally:
        agent.stop()


def cold(runs: int, tmp: Path) -> list[float]:
    times = []
    for i in range(runs):
        agent = LocalAgent(tmp / f"cold{i}", f"bench-cold-{i}")
        agent.run_cli("identity")  # identity made beforehand, as on any kit after first boot

        async def run_once(agent: LocalAgent = agent) -> float:
            started = time.perf_counter()
            browse = asyncio.create_task(_time_to_listed(agent.name))
            await asyncio.to_thread(agent.start)
            await browse
            return time.perf_counter() - started

        try:
            times.append(asyncio.run(run_once()))
        finally:
            agent.stop()
    return times


@contextmanager
def other_responders(count: int) -> Iterator[None]:
    """`count` other mDNS programs on 127.0.0.1:5353, each answering for its own service type."""
    running: list[Zeroconf] = []
    try:
        for i in range(count):
            zc = Zeroconf(interfaces=[LOOPBACK], ip_version=IPVersion.V4Only)
            running.append(zc)
            kind = f"_other{i}._tcp.local."
            zc.register_service(
                ServiceInfo(
                    kind,
                    f"responder {i}.{kind}",
                    addresses=[socket.inet_aton(LOOPBACK)],
                    port=9000 + i,
                    properties={"i": str(i)},
                )
            )
        yield
    finally:
        for zc in running:
            zc.close()


# How a browser asks: (QUESTION_TYPE, ASK_ONCE) in app/fleet/discovery.py
WAYS = {
    "the app (QM + one-shot)": ("QM", True),
    "QM questions alone": ("QM", False),
    "QU first alone (zeroconf default)": (None, False),
}


@contextmanager
def asking(way: str) -> Iterator[None]:
    """Browsers started in the block ask `way` (a key of WAYS)."""
    before = discovery.QUESTION_TYPE, discovery.ASK_ONCE
    discovery.QUESTION_TYPE, discovery.ASK_ONCE = WAYS[way]
    try:
        yield
    finally:
        discovery.QUESTION_TYPE, discovery.ASK_ONCE = before


def crowded(runs: int, tmp: Path, way: str) -> list[float]:
    """Warm discovery with other responders on port 5353, the browser asking `way`."""
    agent = LocalAgent(tmp / f"crowded-{len(os.listdir(tmp))}", "bench-crowded").start()
    try:
        with other_responders(OTHER_RESPONDERS), asking(way):
            time.sleep(2)  # announcements finished
            return [_spaced(lambda: asyncio.run(_time_to_listed("bench-crowded"))) for _ in range(runs)]
    finally:
        agent.stop()


def just_answered(runs: int, tmp: Path, way: str) -> list[float]:
    """As `crowded`, but each timed browser starts right after another browser (QM questions
    alone) listed the kit: the kit's multicast answer went out a moment ago."""
    agent = LocalAgent(tmp / f"answered-{len(os.listdir(tmp))}", "bench-answered").start()
    try:
        with other_responders(OTHER_RESPONDERS):
            time.sleep(2)  # announcements finished
            times = []
            for _ in range(runs):
                with asking("QM questions alone"):
                    asyncio.run(_time_to_listed("bench-answered"))
                with asking(way):
                    times.append(_spaced(lambda: asyncio.run(_time_to_listed("bench-answered"))))
            return times
    finally:
        agent.stop()


def _pct(times: list[float], q: float) -> float:
    return sorted(times)[max(0, round(len(times) * q) - 1)]


def _report(label: str, times: list[float], goal: float, p95_goal: float | None = None) -> None:
    p50, p95 = statistics.median(times), _pct(times, 0.95)
    p95_part = f"  p95/goal {p95 / p95_goal:.2f}x (goal {p95_goal:g} s)" if p95_goal else ""
    print(
        f"  {label:<44} p50 {p50:6.3f} s  p95 {p95:6.3f} s  max {max(times):6.3f} s  "
        f"p50/goal {p50 / goal:.2f}x (goal {goal:g} s){p95_part}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--crowded-only", action="store_true", help="only the crowded-port scenario")
    args = parser.parse_args()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    with tempfile.TemporaryDirectory() as tmp:
        warm_times = [] if args.crowded_only else warm(args.runs, Path(tmp))
        cold_times = [] if args.crowded_only else cold(max(3, args.runs // 2), Path(tmp))
        crowd_times = {way: crowded(args.runs, Path(tmp), way) for way in WAYS}
        fresh_times = {way: just_answered(args.runs, Path(tmp), way) for way in WAYS}
    print(f"discovery over mDNS on {LOOPBACK} ({args.runs} runs each; load average {load})")
    if warm_times:
        _report("running agent -> listed (the app)", warm_times, WARM_GOAL_S)
        _report("agent spawn -> listed (the app)", cold_times, COLD_GOAL_S)
    print(f"  with {OTHER_RESPONDERS} other responders on port 5353:")
    for way, times in crowd_times.items():
        _report(f"  running, {way}", times, WARM_GOAL_S, CROWDED_P95_GOAL_S)
    for way, times in fresh_times.items():
        _report(f"  just answered another, {way}", times, WARM_GOAL_S)
    app, *others = WAYS
    for way in others:
        print(
            f"  p50 of {way} / the app's: running {_ratio(crowd_times, way, app)}, "
            f"just answered another {_ratio(fresh_times, way, app)}"
        )


def _ratio(times: dict[str, list[float]], way: str, app: str) -> str:
    return f"{statistics.median(times[way]) / statistics.median(times[app]):.1f}x"


if __name__ == "__main__":
    main()
