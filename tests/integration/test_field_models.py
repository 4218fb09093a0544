"""Field-style exports (YOLOv8, YOLOv5, end-to-end, EfficientNMS, TF SSD, two classifiers) on a
real agent: deployed with a hand-written manifest each, their /infer answers and a batch-infer
job's rows match the reference pipeline written from the exporter's layout; a manifest of the
wrong family is refused at deploy with what was expected and found, the serving version kept."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import httpx
import onnxruntime as ort
import pytest
from PIL import Image

from agent.wire import Manifest
from tests.field_models import FAMILIES, FIELD, SCENES, Box, agreement, field_manifest, reference
from tests.integration.conftest import AgentFactory
from tests.integration.helpers import pair, raw_client
from tests.integration.test_jobs_api import submit, wait


def upload(client: httpx.Client, model: Path, manifest: Manifest) -> httpx.Response:
    """Install and activate through the upload API; the commit's response."""
    body = {"manifest": json.loads(manifest.model_dump_json()), "activate": True}
    started = client.post("/v1/uploads", json=body)
    assert started.status_code == 201, started.text
    upload_id = started.json()["upload_id"]
    client.patch(
        f"/v1/uploads/{upload_id}", content=model.read_bytes(), headers={"Upload-Offset": "0"}
    ).raise_for_status()
    return client.post(f"/v1/uploads/{upload_id}/commit")


def boxes(answer: dict[str, Any]) -> list[Box]:
    if answer.get("detections") is not None:
        return [Box(d["index"], d["score"], tuple(d["box"])) for d in answer["detections"]]
    return [Box(c["index"], c["score"], None) for c in answer.get("classes") or []]


def expected(family: str, scene: str) -> list[Box]:
    session = ort.InferenceSession(str(FIELD / f"{family}.onnx"), providers=["CPUExecutionProvider"])
    return reference(family, session, Image.open(FIELD / scene).convert("RGB"), top_k=4)


@pytest.fixture
def kit(start_agent: AgentFactory) -> Any:
    agent = start_agent("field", mdns=False)
    with raw_client(agent, pair(agent)) as client:
        yield agent, client


def test_every_family_answers_infer_as_its_exporters_pipeline(kit: Any) -> None:
    _, client = kit
    for family in FAMILIES:
        committed = upload(client, FIELD / f"{family}.onnx", field_manifest(family))
        assert committed.status_code == 200, committed.text
        for scene in SCENES:
            answer = client.post(
                f"/v1/models/{family}/infer",
                content=(FIELD / scene).read_bytes(),
                params={"top_k": 4},
                headers={"Content-Type": "image/png"},
            )
            assert answer.status_code == 200, answer.text
            want = expected(family, scene)
            assert agreement(boxes(answer.json()), want) == 1.0, (family, scene, answer.json(), want)


def test_a_batch_infer_job_decodes_as_infer_does(kit: Any) -> None:
    agent, client = kit
    folder = agent.data_dir / "datasets" / "scenes"
    folder.mkdir(parents=True)
    for scene in SCENES:
        shutil.copy(FIELD / scene, folder / scene)
    for family in ("yolov8-det", "ssd-tf"):  # letterboxed NCHW float; plain-resized NHWC uint8 split outputs
        assert upload(client, FIELD / f"{family}.onnx", field_manifest(family)).status_code == 200
        job = wait(
            client, submit(client, "batch-infer", {"model": family, "folder": "scenes", "top_k": 4})["job_id"]
        )
        assert job["state"] == "done", job
        rows = client.get(f"/v1/jobs/{job['job_id']}/results/results.jsonl").text.splitlines()
        for row in map(json.loads, rows):
            scene = Path(row["file"]).name
            assert agreement(boxes(row), expected(family, scene)) == 1.0, (family, row)


def test_a_manifest_of_another_family_is_refused_and_the_serving_version_stays(
    kit: Any, tmp_path: Path
) -> None:
    _, client = kit
    model = FIELD / "classifier-tv.onnx"
    assert upload(client, model, field_manifest("classifier-tv")).status_code == 200
    wrong = field_manifest(
        "classifier-tv",
        version="2",
        task="detection",
        detection={"format": "yolov8"},
        labels=["red", "green"],
    )
    refused = upload(client, model, wrong)
    assert refused.status_code == 422, refused.text
    message = refused.json()["message"]
    for words in ("YOLOv8-style", "[N, 4 + 2, boxes]", "output [batch_size, 4]"):
        assert words in message, message
    assert "kitfleet models inspect" in message
    info = client.get("/v1/models/classifier-tv").json()
    assert info["active_version"] == "1"
    assert [v["version"] for v in info["versions"]] == ["1"]
    answer = client.post(
        "/v1/models/classifier-tv/infer",
        content=(FIELD / "scene-a.png").read_bytes(),
        headers={"Content-Type": "image/png"},
    )
    assert answer.status_code == 200
    assert answer.json()["version"] == "1"
