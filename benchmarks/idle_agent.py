"""Agent idle footprint: RSS and CPU of a real agent with no model loaded.

Goal (issue 2): <= 60 MB RSS and < 0.5 % of one core. Anchors: balena-supervisor
idles at 45-80 MB, a Salt minion near 100 MB, Netdata 100-200 MB.
Run: .venv/bin/python -m benchmarks.idle_agent [--seconds 60]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import psutil

from app.fleet.localagent import LocalAgent

RSS_GOAL_MB = 60.0
CPU_GOAL_PERCENT = 0.5
ANCHORS_MB = {"balena-supervisor (low)": 45.0, "Salt minion": 100.0, "Netdata (low)": 100.0}


def measure(seconds: float) -> tuple[float, float, float]:
    """Return (RSS MB at the end, peak RSS MB, CPU % of one core over the window)."""
    with tempfile.TemporaryDirectory() as tmp:
        agent = LocalAgent(Path(tmp) / "idle", "idle-bench").start()
        try:
            assert agent.process is not None
            proc = psutil.Process(agent.process.pid)
            time.sleep(5)  # let start-up work (first metrics sample, mDNS probing) settle
            cpu_before, wall_before = sum(proc.cpu_times()[:2]), time.monotonic()
            peak = 0.0
            deadline = wall_before + seconds
            while time.monotonic() < deadline:
                peak = max(peak, proc.memory_info().rss / 2**20)
                time.sleep(1)
            cpu = (sum(proc.cpu_times()[:2]) - cpu_before) / (time.monotonic() - wall_before)
            return proc.memory_info().rss / 2**20, peak, cpu * 100
        finally:
            agent.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    rss, peak, cpu = measure(args.seconds)
    print(f"agent idle over {args.seconds:g} s (mDNS on 127.0.0.1, metrics every 10 s)")
    print(
        f"  RSS      {rss:6.1f} MB (peak {peak:.1f})  goal {RSS_GOAL_MB:g} MB   "
        f"ratio {rss / RSS_GOAL_MB:.2f}x of goal"
    )
    print(
        f"  CPU      {cpu:6.3f} % of a core        goal {CPU_GOAL_PERCENT:g} %   "
        f"ratio {cpu / CPU_GOAL_PERCENT:.2f}x of goal"
    )
    for name, mb in ANCHORS_MB.items():
        print(f"  vs {name:<24} {mb:5.0f} MB  ratio {rss / mb:.2f}x")


if __name__ == "__main__":
    main()
