"""Dynamic batching of `POST /v1/models/{name}/infer`: throughput and p99 at concurrency 1, 8, 32,
batching on (`infer_batch_window_ms`, default 2) vs off (0), two real agents on loopback.

Each concurrency level sends the same PNGs from that many concurrent keep-alive pinned
connections (the app's KitClient) for a fixed number of requests.
Goal (issue 8): >= 1.5x throughput at concurrency 32 with p99 no worse than off.
Run: .venv/bin/python -m benchmarks.batching [--requests 600 --model shapes-yolo-fp32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from app.fleet.deploy import async_deploy
from app.fleet.inventory import Kit
from app.fleet.localagent import LocalAgent
from app.fleet.service import Fleet
from app.fleet.settings import AppSettings
from resources import images_dir, models_dir

LEVELS = (1, 8, 32)


async def _load(fleet: Fleet, kit: Kit, model: str, payload: bytes, concurrency: int,
                requests: int) -> dict[str, float]:
    clients = [fleet.client(kit) for _ in range(concurrency)]
    latencies: list[float] = []
    left = requests

    async def worker(index: int) -> None:
        nonlocal left
        client = clients[index]
        await client.infer(model, payload, "image/png")  # connect before the clock starts
        await ready.wait()
        while left > 0:
            left -= 1
            started = time.perf_counter()
            await client.infer(model, payload, "image/png")
            latencies.append((time.perf_counter() - started) * 1000)

    ready = asyncio.Event()
    tasks = [asyncio.create_task(worker(i)) for i in range(concurrency)]
    await asyncio.sleep(0.5)
    began = time.perf_counter()
    ready.set()
    await asyncio.gather(*tasks)
    seconds = time.perf_counter() - began
    for client in clients:
        await client.aclose()
    p50, p99 = np.percentile(latencies, [50, 99])
    return {"rps": len(latencies) / seconds, "p50": float(p50), "p99": float(p99)}


def _measure(window_ms: float, model: Path, payload: bytes, requests: int,
             tmp: Path) -> dict[int, dict[str, float]]:
    folder = tmp / f"agent-{window_ms:g}"
    folder.mkdir(parents=True)
    (folder / "agent.json").write_text(json.dumps({"infer_batch_window_ms": window_ms}))
    agent = LocalAgent(folder, f"bench-batch-{window_ms:g}", mdns=False).start()
    fleet = Fleet(AppSettings.resolve(home=tmp / f"app-{window_ms:g}", mdns_interfaces=["127.0.0.1"]))
    try:
        kit = asyncio.run(fleet.async_adopt(agent.address, agent.pair_code()))
        [outcome] = asyncio.run(async_deploy(fleet, model, [kit], activate=True))
        assert outcome.ok, outcome.message
        name = outcome.info.name if outcome.info else model.stem
        return {level: asyncio.run(_load(fleet, kit, name, payload, level, requests)) for level in LEVELS}
    finally:
        fleet.close()
        agent.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=600, help="per concurrency level")
    parser.add_argument("--model", default="shapes-yolo-fp32")
    parser.add_argument("--window-ms", type=float, default=2.0)
    args = parser.parse_args()
    model = models_dir() / f"{args.model}.onnx"
    sample = "shapes-1.png" if "shapes" in args.model else "digit-7.png"
    payload = (images_dir() / sample).read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        off = _measure(0, model, payload, args.requests, Path(tmp))
        on = _measure(args.window_ms, model, payload, args.requests, Path(tmp))
    print(f"infer {args.model}, {args.requests} requests per level, "
          f"batching window {args.window_ms:g} ms vs off")
    print(f"{'concurrency':>11}{'off req/s':>11}{'on req/s':>10}{'ratio':>7}{'off p99 ms':>12}"
          f"{'on p99 ms':>11}{'p99 ratio':>10}{'off p50':>9}{'on p50':>8}")
    for level in LEVELS:
        a, b = off[level], on[level]
        print(f"{level:>11}{a['rps']:>11.0f}{b['rps']:>10.0f}{b['rps'] / a['rps']:>6.2f}x{a['p99']:>12.2f}"
              f"{b['p99']:>11.2f}{b['p99'] / a['p99']:>9.2f}x{a['p50']:>9.2f}{b['p50']:>8.2f}")
    top = LEVELS[-1]
    print(json.dumps({"throughput_ratio_at_32": round(on[top]["rps"] / off[top]["rps"], 3), "goal": ">= 1.5",
                      "p99_ratio_at_32": round(on[top]["p99"] / off[top]["p99"], 3), "p99_goal": "<= 1.0"}))


if __name__ == "__main__":
    main()
