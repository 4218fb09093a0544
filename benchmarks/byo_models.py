"""Models from the field: kitfleet's answers vs each exporter's own pipeline, per output family.

For every field-style export in tests/data/field_models/ (YOLOv8, YOLOv5, end-to-end, EfficientNMS,
TF SSD, torchvision and Keras-style classifiers; made by packaging/models/make_field_models.py),
on the same pictures (the two test scenes and variants: mirrored, turned, shrunk, enlarged,
cropped):
- agreement: the share of the reference pipeline's answers (tests/field_models.py: Ultralytics'
  letterbox and scale_boxes, TF's normalised yxyx, softmax on logits; plain numpy, not kitfleet's
  code) that kitfleet's /infer answer matches: same class, score within 1e-3, box IoU >= 0.99;
- added latency per call: p50 of the agent's /infer (one kept-alive pinned TLS connection,
  http.client) and of kitfleet's in-process `run_inference` against the reference pipeline's p50
  (decode, pre-process, session.run, decode outputs, all in this process), in ms and as a ratio;
  and the same for CPU per call (the agent process's for /infer), which waiting for a core on a
  loaded machine does not inflate.
Sides alternate in blocks so drift of the shared machine falls on all alike. Loopback only.
Run: .venv/bin/python -m benchmarks.byo_models [--runs 200]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import io
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
from PIL import Image, ImageOps

from agent.models.infer import run_inference
from agent.toolkit.sessions import default_threads, open_session
from app.fleet.deploy import async_deploy
from app.fleet.inventory import Kit
from app.fleet.localagent import LocalAgent
from app.fleet.models import manifest_path
from app.fleet.service import Fleet
from app.fleet.settings import AppSettings
from app.fleet.tls import pinned_context
from benchmarks.infer_breakdown import print_breakdown
from tests.field_models import FAMILIES, FIELD, SCENES, Box, agreement, field_manifest, reference

BLOCK = 20  # calls per side before switching
Clock = Callable[[], float]  # CPU seconds of whoever does the work


def pictures() -> dict[str, bytes]:
    """The scenes and variants of them, as PNG bytes by name."""
    made = {}
    for scene in SCENES:
        image = Image.open(FIELD / scene).convert("RGB")
        width, height = image.size
        variants = {
            "": image,
            " mirrored": ImageOps.mirror(image),
            " turned": image.transpose(Image.Transpose.ROTATE_90),
            " shrunk": image.resize((width * 7 // 10, height * 7 // 10), Image.Resampling.BILINEAR),
            " enlarged": image.resize((width * 3 // 2, height * 3 // 2), Image.Resampling.BILINEAR),
            " cropped": image.crop((10, 5, width - 30, height - 15)),
        }
        for suffix, variant in variants.items():
            buffer = io.BytesIO()
            variant.save(buffer, "PNG")
            made[scene + suffix] = buffer.getvalue()
    return made


def _boxes(answer: dict[str, Any]) -> list[Box]:
    if answer.get("detections") is not None:
        return [Box(d["index"], d["score"], tuple(d["box"])) for d in answer["detections"]]
    return [Box(c["index"], c["score"], None) for c in answer.get("classes") or []]


class Agent:
    """/infer over one kept-alive pinned TLS connection (the standard library's client)."""

    def __init__(self, kit: Kit, clock: Clock) -> None:
        self.kit, self.clock = kit, clock  # the agent process's CPU seconds
        self.connection = http.client.HTTPSConnection(
            kit.host, kit.port, context=pinned_context(kit.cert_pem)
        )

    def infer(self, family: str, png: bytes) -> list[Box]:
        headers = {"Authorization": f"Bearer {self.kit.token}", "Content-Type": "image/png"}
        self.connection.request("POST", f"/v1/models/{family}/infer?top_k=4", body=png, headers=headers)
        response = self.connection.getresponse()
        body = response.read()
        assert response.status == 200, body[:300]
        return _boxes(json.loads(body))


def _timed(
    calls: dict[str, tuple[Callable[[], object], Clock]], runs: int
) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Each call `runs` times in alternating blocks after a short warm-up: wall ms per call, and
    CPU ms per call of whoever did the work (unlike wall time, not inflated by waiting for a core)."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    cpu: dict[str, float] = dict.fromkeys(calls, 0.0)
    for call, _ in calls.values():
        for _ in range(5):
            call()
    for _ in range(0, runs, BLOCK):
        for name, (call, clock) in calls.items():
            before = clock()
            for _ in range(BLOCK):
                started = time.perf_counter()
                call()
                times[name].append((time.perf_counter() - started) * 1000)
            cpu[name] += clock() - before
    return times, {name: seconds * 1000 / runs for name, seconds in cpu.items()}


def _cpu_clock(pid: int) -> Clock:
    process = psutil.Process(pid)

    def clock() -> float:
        used = process.cpu_times()
        return float(used.user + used.system)

    return clock


def measure(family: str, agent: Agent, images: dict[str, bytes], threads: int, runs: int) -> list[str]:
    model = FIELD / f"{family}.onnx"
    manifest = field_manifest(family)
    session, _ = open_session(model, threads, spinning=False)  # as the agent's session cache opens it
    agreements = []
    for png in images.values():
        want = reference(family, session, Image.open(io.BytesIO(png)).convert("RGB"), top_k=4)
        agreements.append(agreement(agent.infer(family, png), want))
    png = images[SCENES[0]]
    picture = Image.open(io.BytesIO(png))
    mine = time.process_time
    calls: dict[str, tuple[Callable[[], object], Clock]] = {
        "reference": (
            lambda: reference(family, session, Image.open(io.BytesIO(png)).convert("RGB"), top_k=4),
            mine,
        ),
        "in-process": (lambda: run_inference(session, manifest, png, "image/png", top_k=4), mine),
        "agent": (lambda: agent.infer(family, png), agent.clock),
    }
    times, cpu = _timed(calls, runs)
    p50 = {name: statistics.median(samples) for name, samples in times.items()}
    base, base_cpu = p50["reference"], cpu["reference"]
    whole = sum(a == 1.0 for a in agreements)
    return [
        f"  {family:<17} agreement {statistics.mean(agreements):6.1%} ({whole}/{len(agreements)} whole)"
        f"   reference ({picture.width}x{picture.height}) p50 {base:6.2f} ms, cpu {base_cpu:6.2f} ms",
        *(
            f"  {'':<17} {label:<12} added p50 {p50[side] - base:+6.2f} ms ({p50[side] / base:4.2f}x)"
            f"   cpu {cpu[side] - base_cpu:+6.2f} ms ({cpu[side] / base_cpu:4.2f}x)"
            for side, label in (("in-process", "in-process"), ("agent", "agent /infer"))
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=200, help="timed calls per side and family")
    args = parser.parse_args()
    images = pictures()
    threads = default_threads()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as tmp:
        agent = LocalAgent(Path(tmp) / "agent", "bench-byo", mdns=False).start()
        fleet = Fleet(AppSettings.resolve(home=Path(tmp) / "app", mdns_interfaces=["127.0.0.1"]))
        try:
            kit = asyncio.run(fleet.async_adopt(agent.address, agent.pair_code()))
            for family in FAMILIES:
                copy = Path(tmp) / "models" / f"{family}.onnx"
                copy.parent.mkdir(exist_ok=True)
                shutil.copy(FIELD / f"{family}.onnx", copy)
                manifest_path(copy).write_text(field_manifest(family, copy).model_dump_json())
                [outcome] = asyncio.run(async_deploy(fleet, copy, [kit], activate=True))
                assert outcome.ok, outcome.message
            assert agent.process is not None
            client = Agent(kit, _cpu_clock(agent.process.pid))
            print(
                f"field models: kitfleet vs the exporters' pipelines, {len(images)} pictures each, "
                f"{args.runs} timed calls per side ({threads} threads; scene-a timed)"
            )
            for family in FAMILIES:
                print("\n".join(measure(family, client, images, threads, args.runs)))
                asyncio.run(print_breakdown(fleet, kit, family))
            client.connection.close()
        finally:
            fleet.close()
            agent.stop()
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
