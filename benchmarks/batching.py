"""Dynamic batching of `POST /v1/models/{name}/infer`: throughput and p99 at concurrency 1, 8, 32,
batching on (`infer_batch_window_ms`, default 2) vs off (0), two real agents on loopback.

Both agents run side by side and each concurrency level alternates blocks of requests
between them (`--rounds` blocks each, which side goes first alternating too): this VM's
speed drifts by a fifth over a minute, more than some of the differences measured, and
alternating puts the drift on both sides.

The load comes from lean clients, as Triton's perf_analyzer or wrk load a server: one
keep-alive pinned TLS connection per concurrent caller, sending a request prepared once
and reading the answer by its length. The app's KitClient (httpx) spends ~1.5 ms of CPU per
call, as much as the agent's whole answer, on the same two cores: with it the benchmark
would mostly measure httpx.

Goal (issue 8): >= 1.5x throughput at concurrency 32 with p99 no worse than off.
Run: .venv/bin/python -m benchmarks.batching [--requests 1000 --rounds 6 --model shapes-yolo-fp32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from app.fleet.deploy import async_deploy
from app.fleet.inventory import Kit
from app.fleet.localagent import LocalAgent
from app.fleet.service import Fleet
from app.fleet.settings import AppSettings
from app.fleet.tls import pinned_context
from resources import images_dir, models_dir

LEVELS = (1, 8, 32)


@dataclass
class Side:
    label: str
    kit: Kit
    model: str
    rps: dict[int, list[float]] = field(default_factory=dict)  # per level, one per block
    latencies: dict[int, list[float]] = field(default_factory=dict)  # per level, ms, all blocks


async def _call(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> None:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"the agent answered {head[:40]!r}")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    await reader.readexactly(length)


async def _block(
    side: Side, context: ssl.SSLContext, payload: bytes, concurrency: int, requests: int
) -> tuple[float, list[float]]:
    """(requests per second, latencies in ms) for one block from `concurrency` connections."""
    kit = side.kit
    request = (
        f"POST /v1/models/{side.model}/infer HTTP/1.1\r\nHost: {kit.host}\r\n"
        f"Authorization: Bearer {kit.token}\r\nContent-Type: image/png\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    ).encode() + payload
    connections = [
        await asyncio.open_connection(kit.host, kit.port, ssl=context, server_hostname=kit.host)
        for _ in range(concurrency)
    ]
    for reader, writer in connections:
        await _call(reader, writer, request)  # connected and answered once before the clock starts
    latencies: list[float] = []
    left = requests

    async def caller(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal left
        while left > 0:
            left -= 1
            started = time.perf_counter()
            await _call(reader, writer, request)
            latencies.append((time.perf_counter() - started) * 1000)

    began = time.perf_counter()
    await asyncio.gather(*(caller(reader, writer) for reader, writer in connections))
    seconds = time.perf_counter() - began
    for _, writer in connections:
        writer.close()
    return len(latencies) / seconds, latencies


def _start(label: str, window_ms: float, model: Path, fleet: Fleet, tmp: Path) -> tuple[LocalAgent, Side]:
    folder = tmp / label
    folder.mkdir(parents=True)
    (folder / "agent.json").write_text(json.dumps({"infer_batch_window_ms": window_ms}))
    agent = LocalAgent(folder, f"bench-batch-{label}", mdns=False).start()
    kit = asyncio.run(fleet.async_adopt(agent.address, agent.pair_code()))
    [outcome] = asyncio.run(async_deploy(fleet, model, [kit], activate=True))
    assert outcome.ok, outcome.message
    return agent, Side(label, kit, outcome.info.name if outcome.info else model.stem)


def _measure(sides: list[Side], payload: bytes, requests: int, rounds: int) -> None:
    for level in LEVELS:
        for side in sides:
            context = pinned_context(side.kit.cert_pem)
            asyncio.run(_block(side, context, payload, level, 100))  # warm: sessions loaded, threads up
        for round_ in range(rounds):
            for side in sides if round_ % 2 == 0 else sides[::-1]:  # neither side always goes first
                rps, latencies = asyncio.run(
                    _block(side, pinned_context(side.kit.cert_pem), payload, level, requests)
                )
                side.rps.setdefault(level, []).append(rps)
                side.latencies.setdefault(level, []).extend(latencies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=1000, help="per block")
    parser.add_argument("--rounds", type=int, default=6, help="blocks per side and level")
    parser.add_argument("--model", default="shapes-yolo-fp32")
    parser.add_argument("--window-ms", type=float, default=2.0)
    args = parser.parse_args()
    model = models_dir() / f"{args.model}.onnx"
    sample = "shapes-1.png" if "shapes" in args.model else "digit-7.png"
    payload = (images_dir() / sample).read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        fleet = Fleet(AppSettings.resolve(home=Path(tmp) / "app", mdns_interfaces=["127.0.0.1"]))
        agents: list[LocalAgent] = []
        try:
            sides = []
            for label, window in (("off", 0.0), ("on", args.window_ms)):
                agent, side = _start(label, window, model, fleet, Path(tmp))
                agents.append(agent)
                sides.append(side)
            _measure(sides, payload, args.requests, args.rounds)
        finally:
            fleet.close()
            for agent in agents:
                agent.stop()
    off, on = sides
    print(
        f"infer {args.model}, {args.rounds} alternating blocks of {args.requests} requests per side "
        f"and level, batching window {args.window_ms:g} ms vs off; req/s is the median block"
    )
    print(
        f"{'concurrency':>11}{'off req/s':>11}{'on req/s':>10}{'ratio':>7}{'off p99 ms':>12}"
        f"{'on p99 ms':>11}{'p99 ratio':>10}{'off p50':>9}{'on p50':>8}"
    )
    summary: dict[int, tuple[float, float]] = {}
    for level in LEVELS:
        a_rps, b_rps = float(np.median(off.rps[level])), float(np.median(on.rps[level]))
        a50, a99 = np.percentile(off.latencies[level], [50, 99])
        b50, b99 = np.percentile(on.latencies[level], [50, 99])
        summary[level] = (b_rps / a_rps, float(b99 / a99))
        print(
            f"{level:>11}{a_rps:>11.0f}{b_rps:>10.0f}{b_rps / a_rps:>6.2f}x{a99:>12.2f}"
            f"{b99:>11.2f}{b99 / a99:>9.2f}x{a50:>9.2f}{b50:>8.2f}"
        )
    top = LEVELS[-1]
    print(
        json.dumps(
            {
                "throughput_ratio_at_32": round(summary[top][0], 3),
                "goal": ">= 1.5",
                "p99_ratio_at_32": round(summary[top][1], 3),
                "p99_goal": "<= 1.0",
            }
        )
    )


if __name__ == "__main__":
    main()
