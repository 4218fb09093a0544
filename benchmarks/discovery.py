"""Discovery latency over real mDNS on 127.0.0.1.

1. Warm: an agent already runs; time from starting the browser to the kit listed.
   Goal <= 0.2 s.
2. Cold: time from spawning the agent process to the kit listed. Goal <= 1.5 s;
   the mDNS probing floor alone is about 0.75 s.
Run: .venv/bin/python -m benchmarks.discovery [--runs 10]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from app.fleet.discovery import async_discover
from app.fleet.localagent import LOOPBACK, LocalAgent

WARM_GOAL_S = 0.2
COLD_GOAL_S = 1.5


async def _time_to_listed(name: str, timeout: float = 10.0) -> float:
    started = time.perf_counter()
    found = await async_discover([LOOPBACK], timeout, stop_when=lambda a: a.name == name)
    if not any(a.name == name for a in found):
        raise RuntimeError(f"{name} was not discovered within {timeout} s")
    return time.perf_counter() - started


def warm(runs: int, tmp: Path) -> list[float]:
    agent = LocalAgent(tmp / "warm", "bench-warm").start()
    try:
        time.sleep(2)  # announcement finished
        return [asyncio.run(_time_to_listed("bench-warm")) for _ in range(runs)]
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


def _report(label: str, times: list[float], goal: float) -> None:
    p50 = statistics.median(times)
    p90 = sorted(times)[max(0, int(len(times) * 0.9) - 1)]
    print(
        f"  {label:<34} p50 {p50:6.3f} s  p90 {p90:6.3f} s  goal {goal:g} s  ratio p50/goal {p50 / goal:.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        warm_times = warm(args.runs, Path(tmp))
        cold_times = cold(max(3, args.runs // 2), Path(tmp))
    print(f"discovery over mDNS on {LOOPBACK} ({args.runs} warm runs, {len(cold_times)} cold runs)")
    _report("running agent -> listed", warm_times, WARM_GOAL_S)
    _report("agent spawn -> listed", cold_times, COLD_GOAL_S)


if __name__ == "__main__":
    main()
