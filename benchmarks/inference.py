"""Agent inference overhead vs the same work done in-process, on the same model and input.

Goals (issue 19), p50 added by the agent over the in-process work, raw client:
- an image (PNG, the common request) over in-process decode + `to_tensor` + `session.run`:
  <= 0.5 ms; <= 0.8 ms with http.client;
- a .npy tensor over in-process `session.run`: <= 0.4 ms.
(Triton's HTTP path adds ~0.45 ms of non-compute, measured with its own C++ client.)

The in-process session is opened by the agent's own `open_session` with the agent's settings
(threads, no spinning); a line with ONNX Runtime's defaults (spinning threads) is for reference.
Clients:
- raw: one kept-alive pinned TLS socket sending a prepared HTTP/1.1 request and reading the
  answer by its Content-Length, the way a lean C/C++ client does (the goals' figure);
- http.client: the standard library's keep-alive client (parses headers with email.parser);
- KitClient: the app's own httpx client, as `kitfleet infer` uses.
Local and agent runs alternate in blocks, so drift of this shared machine's speed falls on
both sides alike. Wall time on a shared 2-core machine includes waiting for a core, so each
row also shows CPU per request (the agent process's for agent rows, this process's for the
in-process ones): the agent's added CPU is its own cost, whatever the machine's load.
At the end, the agent's own per-request breakdown (`/metrics`) for the model.
Run: .venv/bin/python -m benchmarks.inference [--runs 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import io
import socket
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort
import psutil
from PIL import Image

from agent.toolkit.images import decode_image, to_tensor
from agent.toolkit.sessions import default_threads, open_session
from agent.wire import Manifest
from app.fleet.deploy import async_deploy
from app.fleet.inventory import Kit
from app.fleet.localagent import LocalAgent
from app.fleet.service import Fleet
from app.fleet.settings import AppSettings
from app.fleet.tls import pinned_context
from benchmarks.infer_breakdown import print_breakdown
from resources import models_dir

Call = Callable[[], None]
Clock = Callable[[], float]  # CPU seconds of whoever does the work
BLOCK = 100  # calls per side before switching
GOALS_MS = {"png raw": 0.5, "png http.client": 0.8, "npy raw": 0.4}


@dataclass
class Side:
    call: Call
    clock: Clock
    baseline: str  # the in-process side this one adds to ("" for an in-process side)
    wall_ms: list[float] = field(default_factory=list)
    cpu_s: float = 0.0


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.95) - 1]


def _session_call(session: ort.InferenceSession, tensor: np.ndarray) -> Call:
    name = session.get_inputs()[0].name

    def call() -> None:
        session.run(None, {name: tensor})

    return call


def _image_call(session: ort.InferenceSession, manifest: Manifest, png: bytes) -> Call:
    """What the agent computes for an image, in-process: decode, tensor, run."""
    name = session.get_inputs()[0].name

    def call() -> None:
        batch, _ = to_tensor([decode_image(png, "image/png")], manifest.input, manifest.normalisation)
        session.run(None, {name: batch})

    return call


def _raw_call(kit: Kit, path: str, body: bytes, content_type: str) -> tuple[Call, Callable[[], None]]:
    """A prepared keep-alive HTTP/1.1 request over a pinned TLS socket; the answer read by length."""
    plain = socket.create_connection((kit.host, kit.port))
    plain.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    tls = pinned_context(kit.cert_pem).wrap_socket(plain, server_hostname=kit.host)
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {kit.host}\r\nAuthorization: Bearer {kit.token}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body

    def call() -> None:
        tls.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            data += tls.recv(65536)
        head, _, rest = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        while len(rest) < length:
            rest += tls.recv(65536)

    return call, tls.close


def _stdlib_call(kit: Kit, path: str, body: bytes, content_type: str) -> tuple[Call, Callable[[], None]]:
    connection = http.client.HTTPSConnection(kit.host, kit.port, context=pinned_context(kit.cert_pem))
    headers = {"Authorization": f"Bearer {kit.token}", "Content-Type": content_type}

    def call() -> None:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        assert response.status == 200, response.status

    return call, connection.close


def _interleaved(sides: dict[str, Side], runs: int) -> None:
    """Each side `runs` times, in alternating blocks of BLOCK, after a warm-up of each."""
    for side in sides.values():
        for _ in range(50):
            side.call()
    for _ in range(0, runs, BLOCK):
        for side in sides.values():
            cpu_before = side.clock()
            for _ in range(BLOCK):
                started = time.perf_counter()
                side.call()
                side.wall_ms.append((time.perf_counter() - started) * 1000)
            side.cpu_s += side.clock() - cpu_before


async def _over_http(
    fleet: Fleet, kit: Kit, model: str, body: bytes, content_type: str, runs: int
) -> list[float]:
    """The app's own client (KitClient), one kept-alive pinned connection, as `kitfleet infer` uses."""
    async with fleet.client(kit) as client:
        for _ in range(50):
            await client.infer(model, body, content_type)
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            await client.infer(model, body, content_type)
            times.append((time.perf_counter() - started) * 1000)
    return times


def _inputs(manifest: Manifest) -> tuple[np.ndarray, bytes, bytes]:
    """(tensor, its .npy bytes, a PNG of the model's size)."""
    spec = manifest.input
    shape = (
        [1, spec.channels, spec.height, spec.width]
        if spec.layout == "NCHW"
        else [1, spec.height, spec.width, spec.channels]
    )
    tensor = np.random.default_rng(0).random(shape).astype(spec.dtype)
    npy = io.BytesIO()
    np.save(npy, tensor)
    png = io.BytesIO()
    Image.fromarray(
        (np.random.default_rng(1).random((spec.height, spec.width, 3)) * 255).astype("uint8")
    ).save(png, "PNG")
    return tensor, npy.getvalue(), png.getvalue()


def _cpu_clock(pid: int) -> Clock:
    process = psutil.Process(pid)

    def clock() -> float:
        times = process.cpu_times()
        return times.user + times.system

    return clock


def _report(sides: dict[str, Side], runs: int, remote: dict[str, tuple[list[float], str]]) -> None:
    p50s = {name: _percentiles(side.wall_ms)[0] for name, side in sides.items()}
    for name, side in sides.items():
        p50, p95 = _percentiles(side.wall_ms)
        cpu_ms = side.cpu_s * 1000 / runs
        line = f"  {name:<34} p50 {p50:7.3f}  p95 {p95:7.3f}  cpu/req {cpu_ms:6.3f}"
        if side.baseline:
            base = sides[side.baseline]
            added_cpu = cpu_ms - base.cpu_s * 1000 / runs
            line += f"   added p50 {p50 - p50s[side.baseline]:6.3f}  cpu {added_cpu:6.3f}"
        print(line)
    for label, (samples, baseline) in remote.items():
        p50, p95 = _percentiles(samples)
        print(f"  {label:<34} p50 {p50:7.3f}  p95 {p95:7.3f}   added p50 {p50 - p50s[baseline]:6.3f}")
    print("  goals, p50 added by the agent (ratio of the goal; <= 1.00 meets it):")
    for name, goal in GOALS_MS.items():
        added = p50s[f"agent {name}"] - p50s[sides[f"agent {name}"].baseline]
        print(f"    {name:<18} {added:6.3f} ms  goal {goal:.1f} ms  ratio {added / goal:5.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--model", default="digits-cnn-fp32")
    args = parser.parse_args()
    model = models_dir() / f"{args.model}.onnx"
    manifest = Manifest.model_validate_json(model.with_name(f"{model.stem}.manifest.json").read_bytes())
    tensor, npy, png = _inputs(manifest)
    threads = default_threads()
    agent_like, _ = open_session(model, threads, spinning=False)  # as the agent's SessionCache
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    defaults = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    path = f"/v1/models/{manifest.name}/infer"
    mine = time.process_time
    with tempfile.TemporaryDirectory() as tmp:
        agent = LocalAgent(Path(tmp) / "agent", "bench-infer", mdns=False).start()
        fleet = Fleet(AppSettings.resolve(home=Path(tmp) / "app", mdns_interfaces=["127.0.0.1"]))
        try:
            kit = asyncio.run(fleet.async_adopt(agent.address, agent.pair_code()))
            [outcome] = asyncio.run(async_deploy(fleet, model, [kit], activate=True))
            assert outcome.ok, outcome.message
            assert agent.process is not None
            theirs = _cpu_clock(agent.process.pid)
            clients = {
                "npy raw": _raw_call(kit, path, npy, "application/x-npy"),
                "npy http.client": _stdlib_call(kit, path, npy, "application/x-npy"),
                "png raw": _raw_call(kit, path, png, "image/png"),
                "png http.client": _stdlib_call(kit, path, png, "image/png"),
            }
            sides = {
                "in-process session.run": Side(_session_call(agent_like, tensor), mine, ""),
                "in-process, ORT defaults": Side(_session_call(defaults, tensor), mine, ""),
                "in-process decode + run": Side(_image_call(agent_like, manifest, png), mine, ""),
            }
            for name, (call, _) in clients.items():
                baseline = "in-process session.run" if name.startswith("npy") else "in-process decode + run"
                sides[f"agent {name}"] = Side(call, theirs, baseline)
            try:
                _interleaved(sides, args.runs)
            finally:
                for _, close in clients.values():
                    close()
            remote = {
                "agent npy KitClient (httpx)": (
                    asyncio.run(
                        _over_http(fleet, kit, manifest.name, npy, "application/x-npy", args.runs // 2)
                    ),
                    "in-process session.run",
                ),
                "agent png KitClient (httpx)": (
                    asyncio.run(_over_http(fleet, kit, manifest.name, png, "image/png", args.runs // 2)),
                    "in-process decode + run",
                ),
            }
            print(
                f"inference on {args.model} ({args.runs} runs each, interleaved in blocks of {BLOCK}; "
                f"{threads} threads), milliseconds"
            )
            _report(sides, args.runs, remote)
            asyncio.run(print_breakdown(fleet, kit, manifest.name))
        finally:
            fleet.close()
            agent.stop()


if __name__ == "__main__":
    main()
