"""Agent inference overhead vs in-process `session.run` on the same model and input.

Goal (issue 3): <= 1 ms added at p50 over loopback (Triton's HTTP path adds ~0.45 ms
of non-compute). Both sides use the same ONNX Runtime settings; the agent is called
through the app's own client (KitClient: one kept-alive HTTPS connection pinned
to its certificate), with a .npy tensor
(the compute is identical, so the difference is the agent's own cost) and with a
PNG image (adds decode, resize and top-k on the kit).
Run: .venv/bin/python -m benchmarks.inference [--runs 300]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import io
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

from app.fleet.deploy import async_deploy
from app.fleet.inventory import Kit
from app.fleet.localagent import LocalAgent
from app.fleet.service import Fleet
from app.fleet.settings import AppSettings
from app.fleet.tls import pinned_context
from resources import models_dir


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.95) - 1]


def _in_process(model: Path, tensor: np.ndarray, runs: int, threads: int) -> list[float]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    for _ in range(20):
        session.run(None, {name: tensor})
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        session.run(None, {name: tensor})
        times.append((time.perf_counter() - started) * 1000)
    return times


def _lean(kit: Kit, model: str, body: bytes, content_type: str, runs: int) -> list[float]:
    """A minimal keep-alive HTTPS client (stdlib http.client, pinned): what the agent itself adds,
    the way Triton's ~0.45 ms is measured with its own lean client."""
    connection = http.client.HTTPSConnection(kit.host, kit.port, context=pinned_context(kit.cert_pem))
    headers = {"Authorization": f"Bearer {kit.token}", "Content-Type": content_type}
    path = f"/v1/models/{model}/infer"

    def call() -> None:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        assert response.status == 200, response.status

    try:
        for _ in range(20):
            call()
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            call()
            times.append((time.perf_counter() - started) * 1000)
    finally:
        connection.close()
    return times


async def _over_http(fleet: Fleet, kit: Kit, model: str, body: bytes, content_type: str,
                     runs: int) -> list[float]:
    """The app's own client (KitClient), one kept-alive pinned connection, as `kitfleet infer` uses."""
    async with fleet.client(kit) as client:
        for _ in range(20):
            await client.infer(model, body, content_type)
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            await client.infer(model, body, content_type)
            times.append((time.perf_counter() - started) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--model", default="digits-cnn-fp32")
    args = parser.parse_args()
    model = models_dir() / f"{args.model}.onnx"
    manifest_name = model.with_name(f"{model.stem}.manifest.json")
    from agent.api.schemas import Manifest

    manifest = Manifest.model_validate_json(manifest_name.read_bytes())
    spec = manifest.input
    shape = [1, spec.channels, spec.height, spec.width] if spec.layout == "NCHW" else \
        [1, spec.height, spec.width, spec.channels]
    tensor = np.random.default_rng(0).random(shape).astype(spec.dtype)
    npy = io.BytesIO()
    np.save(npy, tensor)
    png = io.BytesIO()
    Image.fromarray((np.random.default_rng(1).random((spec.height, spec.width, 3)) * 255)
                    .astype("uint8")).save(png, "PNG")
    with tempfile.TemporaryDirectory() as tmp:
        agent = LocalAgent(Path(tmp) / "agent", "bench-infer", mdns=False).start()
        fleet = Fleet(AppSettings.resolve(home=Path(tmp) / "app", mdns_interfaces=["127.0.0.1"]))
        try:
            kit = asyncio.run(fleet.async_adopt(agent.address, agent.pair_code()))
            [outcome] = asyncio.run(async_deploy(fleet, model, [kit], activate=True))
            assert outcome.ok, outcome.message
            threads = _agent_threads()
            local = _in_process(model, tensor, args.runs, threads)
            lean = _lean(kit, manifest.name, npy.getvalue(), "application/x-npy", args.runs)
            remote = asyncio.run(_over_http(fleet, kit, manifest.name, npy.getvalue(),
                                            "application/x-npy", args.runs))
            image = asyncio.run(_over_http(fleet, kit, manifest.name, png.getvalue(), "image/png", args.runs))
        finally:
            fleet.close()
            agent.stop()
    lp50, lp95 = _percentiles(local)
    rp50, rp95 = _percentiles(remote)
    np50, np95 = _percentiles(lean)
    ip50, ip95 = _percentiles(image)
    print(f"inference on {args.model} ({args.runs} runs, {threads} threads), milliseconds")
    print(f"  in-process session.run      p50 {lp50:7.3f}  p95 {lp95:7.3f}")
    print(f"  agent, .npy, lean client    p50 {np50:7.3f}  p95 {np95:7.3f}   added p50 {np50 - lp50:6.3f}"
          f"  p95 {np95 - lp95:6.3f}  (goal <= 1 ms added at p50: {(np50 - lp50) / 1.0:.2f}x of goal)")
    print(f"  agent, .npy, KitClient      p50 {rp50:7.3f}  p95 {rp95:7.3f}   added p50 {rp50 - lp50:6.3f}"
          f"  p95 {rp95 - lp95:6.3f}  (the app's httpx client: {(rp50 - lp50) / 1.0:.2f}x of goal)")
    print(f"  agent, PNG + top-k, KitClient p50 {ip50:7.3f}  p95 {ip95:7.3f}   added p50 {ip50 - lp50:6.3f}"
          f"  p95 {ip95 - lp95:6.3f}")
    print(f"  agent/in-process p50 ratio: tensor {rp50 / lp50:.2f}x, image {ip50 / lp50:.2f}x")


def _agent_threads() -> int:
    import psutil

    return psutil.cpu_count(logical=False) or 1


if __name__ == "__main__":
    main()
