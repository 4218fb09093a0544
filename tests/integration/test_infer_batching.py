"""Dynamic batching through a real agent: concurrent callers each get their own answer."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from resources import images_dir
from tests.integration.conftest import AgentFactory
from tests.integration.helpers import pair, raw_client
from tests.integration.test_jobs_api import configure
from tests.integration.test_stream import DETECTOR, deploy_detector


def same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """The same detections, boxes equal but for float noise (a batched run sums in another order)."""
    return len(a["detections"]) == len(b["detections"]) and all(
        x["label"] == y["label"] and all(abs(u - v) < 0.05 for u, v in zip(x["box"], y["box"], strict=True))
        for x, y in zip(a["detections"], b["detections"], strict=True)
    )


def test_concurrent_requests_each_get_their_own_answer_and_errors_stay_theirs(
    start_agent: AgentFactory, tmp_path: Path
) -> None:
    configure(tmp_path, "batch", infer_batch_window_ms=50)
    agent = start_agent("batch", mdns=False)
    token = pair(agent)
    samples = sorted(images_dir().glob("shapes-*.png"))
    payloads = [samples[n % len(samples)].read_bytes() for n in range(20)]
    payloads[7] = payloads[13] = b"\x89PNG\r\n\x1a\n but cut short"
    with raw_client(agent, token) as client:
        deploy_detector(client)
        alone = {
            path.name: client.post(
                f"/v1/models/{DETECTOR}/infer",
                content=path.read_bytes(),
                headers={"Content-Type": "image/png"},
            ).json()
            for path in samples
        }
    barrier = threading.Barrier(len(payloads))

    def call(payload: bytes) -> httpx.Response:
        with raw_client(agent, token) as client:
            client.get("/v1/models")  # connected and authenticated before the race
            barrier.wait()
            return client.post(
                f"/v1/models/{DETECTOR}/infer", content=payload, headers={"Content-Type": "image/png"}
            )

    with ThreadPoolExecutor(len(payloads)) as pool:
        answers = list(pool.map(call, payloads))
    for n, answer in enumerate(answers):
        if n in (7, 13):
            assert answer.status_code == 400, answer.text
            assert answer.json()["error"] == "bad_image"
            continue
        assert answer.status_code == 200, answer.text
        assert same(answer.json(), alone[samples[n % len(samples)].name]), n
    assert agent.health()["status"] == "ok"
    with raw_client(agent, token) as client:
        counts = {
            line.split("{")[0]: float(line.split()[-1])
            for line in client.get("/metrics").text.splitlines()
            if line.startswith("kitfleet_infer_")
        }
    # the first of the burst may run alone on the event loop; the others were grouped
    assert counts["kitfleet_infer_batched_requests_total"] >= len(payloads) - 1
    assert counts["kitfleet_infer_batches_total"] < counts["kitfleet_infer_batched_requests_total"]
