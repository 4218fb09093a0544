"""Field datasets and the unsure buffer against a real agent: real images drawn with PIL, a
real classifier run by real batch-infer jobs, every hostile input refused clearly."""

from __future__ import annotations

import io
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image, ImageDraw

from app.fleet.localagent import LocalAgent
from tests.integration.conftest import AgentFactory
from tests.integration.helpers import pair, raw_client, small_tmpfs
from tests.integration.test_jobs_api import deploy, images, refused, submit, wait


def picture(shape: str, seed: int, kind: str = "PNG", size: tuple[int, int] = (40, 32)) -> bytes:
    """A small drawn picture (a circle or a square at a place the seed picks)."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", size, tuple(int(v) for v in rng.integers(0, 120, 3)))
    x, y = (int(v) for v in rng.integers(2, 14, 2))
    draw = ImageDraw.Draw(image)
    (draw.ellipse if shape == "circle" else draw.rectangle)((x, y, x + 16, y + 16), fill=(250, 250, 250))
    out = io.BytesIO()
    image.save(out, kind)
    return out.getvalue()


@pytest.fixture
def kit(start_agent: AgentFactory) -> Iterator[tuple[httpx.Client, Path]]:
    agent = start_agent("field")
    with raw_client(agent, pair(agent)) as client:
        yield client, agent.data_dir


def label(client: httpx.Client, dataset: str, name: str, body: bytes, **headers: str) -> httpx.Response:
    return client.post(
        f"/v1/datasets/{dataset}/labelled", params={"label": name}, content=body, headers=headers
    )


def test_labelling_keeps_each_image_once_in_its_class_and_counts_them(
    kit: tuple[httpx.Client, Path],
) -> None:
    client, data_dir = kit
    answers = [label(client, "yard", "circle", picture("circle", n)) for n in range(3)]
    answers += [label(client, "yard", "square", picture("square", n, "JPEG")) for n in range(2)]
    assert [a.status_code for a in answers] == [201] * 5, answers[-1].text
    again = label(client, "yard", "circle", picture("circle", 0))
    assert again.status_code == 201
    assert again.json()["added"] is False
    assert again.json()["images"] == 3

    first = answers[0].json()
    stored = data_dir / "datasets" / "yard" / first["file"]
    assert stored.read_bytes() == picture("circle", 0)
    assert stored.name.endswith(".png")
    assert answers[3].json()["file"].endswith(".jpg")
    classes = client.get("/v1/datasets/yard/classes").json()
    assert classes == {
        "dataset": "yard",
        "classes": [{"label": "circle", "images": 3}, {"label": "square", "images": 2}],
        "images": 5,
    }
    assert {d["name"]: d["files"] for d in client.get("/v1/datasets").json()} == {"yard": 5}

    file = answers[1].json()["file"]
    assert client.delete(f"/v1/datasets/yard/labelled/{file}").status_code == 204
    assert client.get("/v1/datasets/yard/classes").json()["images"] == 4
    audit = client.get("/v1/audit", params={"limit": 100}).json()
    labelled = [e for e in audit if e["action"] == "dataset.label"]
    assert len(labelled) == 6
    assert labelled[0]["target"] == "yard"
    assert {e["detail"].get("added") for e in labelled} == {True, False}
    assert [e["target"] for e in audit if e["action"] == "dataset.unlabel"] == [
        f"yard circle {file.split('/')[1]}"
    ]


def test_hostile_labels_and_bodies_are_refused_and_nothing_is_kept(kit: tuple[httpx.Client, Path]) -> None:
    client, data_dir = kit
    good = picture("circle", 1)
    for bad in ("../x", "..", ".hidden", "a/b", "a b", "x" * 65, ""):
        refused(label(client, "yard", bad, good), 422)
    for bad in ("..", "Yard", "a%2F..%2Fb", "-x"):
        response = client.post(f"/v1/datasets/{bad}/labelled", params={"label": "ok"}, content=good)
        assert response.status_code in (404, 422), response.text
    assert refused(label(client, "yard", "ok", b"GIF89a not really"), 422, "not_an_image")["hint"]
    refused(label(client, "yard", "ok", good[: len(good) // 2]), 422, "not_an_image")  # truncated
    gif = io.BytesIO()
    Image.new("RGB", (8, 8)).save(gif, "GIF")
    refused(label(client, "yard", "ok", gif.getvalue()), 422, "not_an_image")  # jobs do not read GIFs
    huge = io.BytesIO()
    Image.new("1", (8000, 8000)).save(huge, "PNG")  # tiny file, 64 M pixels: judged by its header
    assert len(huge.getvalue()) < 1 << 20
    refused(label(client, "yard", "ok", huge.getvalue()), 422, "image_dimensions")
    oversized = good + bytes(16 << 20)
    refused(label(client, "yard", "ok", oversized), 413, "image_too_large")

    def chunked() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield good
        for _ in range(20):
            yield bytes(1 << 20)

    refused(label(client, "yard", "ok", chunked()), 413, "image_too_large")  # type: ignore[arg-type]
    assert not (data_dir / "datasets" / "yard").exists()
    assert [e["outcome"] for e in client.get("/v1/audit").json() if e["action"] == "dataset.label"]


def test_a_field_dataset_holds_a_bounded_number_of_classes(kit: tuple[httpx.Client, Path]) -> None:
    client, _ = kit
    for n in range(200):
        assert label(client, "many", f"c{n}", picture("circle", n)).status_code == 201
    refused(label(client, "many", "one-more", picture("square", 0)), 409, "too_many_classes")
    assert label(client, "many", "c7", picture("square", 1)).status_code == 201  # an existing class
    assert len(client.get("/v1/datasets/many/classes").json()["classes"]) == 200


def _tops(client: httpx.Client, job_id: str) -> dict[str, float]:
    rows = client.get(f"/v1/jobs/{job_id}/results/results.jsonl").text.splitlines()
    return {row["file"]: row["classes"][0]["score"] for row in map(json.loads, rows)}


def _batch(client: httpx.Client, **params: Any) -> dict[str, Any]:
    job = submit(client, "batch-infer", {"model": "tiny", "folder": "in", **params})
    done = wait(client, job["job_id"])
    assert done["state"] == "done", done
    return done


def test_batch_infer_keeps_only_unsure_images_rotates_and_labels_them_into_a_dataset(
    kit: tuple[httpx.Client, Path], tmp_path: Path
) -> None:
    client, data_dir = kit
    deploy(client, tmp_path)
    images(data_dir / "datasets" / "in", 24, seed=3)
    plain = _batch(client)
    tops = _tops(client, plain["job_id"])
    band = float(np.median(list(tops.values())))
    unsure = sorted(f for f, top in tops.items() if top < band)
    assert 0 < len(unsure) < len(tops)
    assert client.get("/v1/unsure").json() == []  # nothing kept unless asked

    kept = _batch(client, keep_unsure={"top_below": band, "max_items": 100})
    assert kept["result"]["unsure_kept"] == len(unsure)
    items = client.get("/v1/unsure", params={"model": "tiny"}).json()
    assert sorted(i["source"] for i in items) == unsure
    assert all(i["top"] < band and i["model"] == "tiny" and i["job_id"] == kept["job_id"] for i in items)
    item = items[0]
    image = client.get(f"/v1/unsure/{item['id']}")
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/png"
    assert image.content == (data_dir / "datasets" / "in" / item["source"]).read_bytes()

    rotated = _batch(client, keep_unsure={"top_below": band, "max_items": 3}, top_k=1)
    assert rotated["result"]["unsure_kept"] == len(unsure)
    items = client.get("/v1/unsure", params={"model": "tiny"}).json()
    assert [i["source"] for i in items] == unsure[-3:][::-1]  # the newest three, newest first
    assert all(i["job_id"] == rotated["job_id"] and len(i["classes"]) >= 2 for i in items)
    assert all(len(json.loads(r)["classes"]) == 1 for r in _rows(client, rotated["job_id"]))
    assert len(list((data_dir / "unsure" / "tiny").iterdir())) == 6  # image + prediction each

    moved = client.post(f"/v1/unsure/{items[0]['id']}/label", params={"dataset": "yard", "label": "odd"})
    assert moved.status_code == 201, moved.text
    assert moved.json()["file"].startswith("odd/")
    assert moved.json()["images"] == 1
    assert client.get("/v1/datasets/yard/classes").json()["classes"] == [{"label": "odd", "images": 1}]
    refused(client.get(f"/v1/unsure/{items[0]['id']}"), 404, "unsure_not_found")
    refused(
        client.post(f"/v1/unsure/{items[1]['id']}/label", params={"dataset": "yard", "label": "../x"}), 422
    )
    assert client.delete(f"/v1/unsure/{items[1]['id']}").status_code == 204
    assert [i["id"] for i in client.get("/v1/unsure").json()] == [items[2]["id"]]

    margins = [
        c[0]["score"] - c[1]["score"]
        for c in (json.loads(r)["classes"] for r in _rows(client, plain["job_id"]))
    ]
    close = float(np.median(margins))
    margin = _batch(client, keep_unsure={"margin_below": close, "max_items": 50}, top_k=1)
    assert margin["result"]["unsure_kept"] == sum(m < close for m in margins) > 0  # judged on 2, shows 1
    refused(
        client.post(
            "/v1/jobs",
            json={"kind": "batch-infer", "params": {"model": "tiny", "folder": "in", "keep_unsure": {}}},
        ),
        422,
    )


def _rows(client: httpx.Client, job_id: str) -> list[str]:
    return client.get(f"/v1/jobs/{job_id}/results/results.jsonl").text.splitlines()


def test_a_stream_keeps_the_frames_its_classifier_was_unsure_of(
    kit: tuple[httpx.Client, Path], tmp_path: Path
) -> None:
    client, data_dir = kit
    deploy(client, tmp_path)
    images(data_dir / "datasets" / "cam", 12, seed=3)
    keep = {"top_below": 0.999, "max_items": 50}
    params = {"model": "tiny", "source": "cam", "realtime": False, "keep_unsure": keep}
    job = submit(client, "stream", params)
    deadline = 600
    while client.get(f"/v1/jobs/{job['job_id']}").json()["progress"]["done"] < 12 and deadline:
        time.sleep(0.1)
        deadline -= 1
    assert client.post(f"/v1/jobs/{job['job_id']}/cancel").status_code == 200
    done = wait(client, job["job_id"])
    rows = [json.loads(r) for r in _rows(client, job["job_id"])]
    unsure = {r["file"] for r in rows if r["classes"][0]["score"] < keep["top_below"]}
    assert 0 < len(unsure) < 12
    assert done["result"]["unsure_kept"] == len(unsure)
    items = client.get("/v1/unsure", params={"model": "tiny"}).json()
    assert {i["source"] for i in items} == unsure
    assert all(i["job_id"] == job["job_id"] and len(i["classes"]) == 3 for i in items)
    frame = client.get(f"/v1/unsure/{items[0]['id']}")
    assert frame.headers["content-type"] == "image/jpeg"  # the decoded frame, as JPEG
    with Image.open(io.BytesIO(frame.content)) as picture:
        assert picture.size == (24, 20)


def test_a_full_disk_refuses_a_labelled_picture_and_keeps_nothing_of_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KITFLEET_AGENT_DISK_RESERVE_BYTES", str(1 << 20))
    with small_tmpfs(tmp_path, 16) as disk:
        agent = LocalAgent(disk / "kit", "full", mdns=False).start()
        try:
            with raw_client(agent, pair(agent)) as client:
                assert label(client, "yard", "circle", picture("circle", 0)).status_code == 201
                filler = disk / "filler"
                filler.write_bytes(bytes(shutil.disk_usage(disk).free - (1 << 20) + 4096))
                body = refused(
                    label(client, "yard", "circle", picture("circle", 1)), 507, "insufficient_storage"
                )
                assert "MiB free" in body["message"]
                assert client.get("/v1/datasets/yard/classes").json()["images"] == 1
                assert not [
                    p for p in (agent.data_dir / "datasets" / "yard").rglob("*") if p.name.startswith(".")
                ]
                filler.unlink()
                assert label(client, "yard", "circle", picture("circle", 1)).status_code == 201
        finally:
            agent.stop()


def test_a_field_dataset_labelled_picture_by_picture_is_what_fine_tune_trains_on(
    kit: tuple[httpx.Client, Path], tmp_path: Path
) -> None:
    client, _ = kit
    deploy(client, tmp_path)
    for shape in ("circle", "square"):
        for n in range(10):
            assert label(client, "yard", shape, picture(shape, n)).status_code == 201
    params = {"model": "tiny", "dataset": "yard", "epochs": 50, "min_per_class": 3}
    job = wait(client, submit(client, "fine-tune", params, resources={"threads": 1})["job_id"], timeout=300)
    assert job["state"] == "done", job
    assert job["result"]["labels"] == ["circle", "square"]
    assert job["result"]["train_count"] + job["result"]["val_count"] == 20
