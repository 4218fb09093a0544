"""`kitfleet datasets` and `kitfleet unsure` end to end: the real CLI against a real agent running
the bundled digits classifier, on digits and on pictures it never saw (drawn with PIL)."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from agent.wire import JobRequest
from app.fleet.service import Fleet
from resources import datasets_dir
from tests.integration.conftest import AgentFactory
from tests.integration.test_cli_jobs import cli, cli_json, deploy


def shapes(folder: Path, count: int) -> list[Path]:
    """Circles on noise: nothing the digits model was trained on."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(5)
    paths = []
    for n in range(count):
        image = Image.fromarray(rng.integers(0, 255, (28, 28, 3), dtype=np.uint8))
        ImageDraw.Draw(image).ellipse((4 + n % 5, 4, 22, 22), outline=(255, 255, 255), width=2)
        paths.append(folder / f"shape-{n:02d}.png")
        image.save(paths[-1])
    return paths


def test_label_pictures_count_classes_and_label_what_the_model_was_unsure_of(
    start_agent: AgentFactory, fleet: Fleet, adopt: Any, tmp_path: Path
) -> None:
    agent = start_agent("kit")
    kit = adopt(agent)
    deploy(fleet, kit)
    circles = shapes(tmp_path / "circles", 3)

    labelled = cli_json(fleet, "datasets", "label", "kit", "field", "circle", *map(str, circles))
    assert [a["added"] for a in labelled] == [True] * 3
    assert (agent.data_dir / "datasets" / "field" / labelled[0]["file"]).read_bytes() == circles[
        0
    ].read_bytes()
    again = cli(fleet, "datasets", "label", "kit", "field", "circle", str(circles[0])).stdout
    assert "already there" in again
    assert "circle: 3 image(s) in field" in again
    counts = cli_json(fleet, "datasets", "classes", "kit", "field")
    assert counts["classes"] == [{"label": "circle", "images": 3}]

    bad = cli(fleet, "datasets", "label", "kit", "field", "../up", str(circles[0]), ok=False)
    assert "is not a label" in bad.stderr
    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture")
    assert "not a JPEG" in cli(fleet, "datasets", "label", "kit", "field", "x", str(notes), ok=False).stderr
    fake = tmp_path / "fake.png"
    fake.write_text("not a picture either")
    refused = cli(fleet, "datasets", "label", "kit", "field", "x", str(fake), ok=False).stderr
    assert "not a readable" in refused  # the kit's own check, its words
    assert "x" not in {c["label"] for c in cli_json(fleet, "datasets", "classes", "kit", "field")["classes"]}

    folder = agent.data_dir / "datasets" / "mixed"
    folder.mkdir()
    for image in sorted((datasets_dir() / "digits-eval" / "3").glob("*.png"))[:6]:
        shutil.copy(image, folder / image.name)
    shapes(folder, 6)
    plain = _batch_infer(fleet, kit, {})
    tops = {r["file"]: r["classes"][0]["score"] for r in _rows(agent.data_dir, plain.job_id)}
    band = float(np.median(list(tops.values())))
    unsure = {f for f, top in tops.items() if top < band}
    assert 0 < len(unsure) < len(tops)
    keep = json.dumps({"top_below": band})  # the CLI's --param takes the JSON as it is
    [row] = cli_json(fleet, *_SUBMIT, "--param", f"keep_unsure={keep}", "--watch")
    assert row["job"]["state"] == "done"
    assert row["job"]["result"]["unsure_kept"] == len(unsure)

    items = cli_json(fleet, "unsure", "list", "kit", "--model", "digits-cnn")
    assert {i["source"] for i in items} == unsure
    shown = cli(fleet, "unsure", "list", "kit").stdout
    assert items[0]["id"] in shown
    assert "digits-cnn@" in shown
    moved = cli_json(
        fleet, "unsure", "label", "kit", items[0]["id"], "--dataset", "field", "--label", "noise"
    )
    assert moved["file"].startswith("noise/")
    assert {
        c["label"]: c["images"] for c in cli_json(fleet, "datasets", "classes", "kit", "field")["classes"]
    } == {
        "circle": 3,
        "noise": 1,
    }
    assert len(cli_json(fleet, "unsure", "list", "kit")) == len(unsure) - 1
    gone = cli(
        fleet, "unsure", "label", "kit", items[0]["id"], "--dataset", "field", "--label", "noise", ok=False
    )
    assert "rotated out" in gone.stderr or "no kept input" in gone.stderr


_SUBMIT = ("jobs", "submit", "kit", "--kind", "batch-infer", "--model", "digits-cnn", "--dataset", "mixed")


def _batch_infer(fleet: Fleet, kit: Any, params: dict[str, Any]) -> Any:
    body = {"kind": "batch-infer", "params": {"model": "digits-cnn", "dataset": "mixed", **params}}
    request = JobRequest.model_validate(body)
    job, _ = asyncio.run(fleet.async_call(kit, lambda c: c.submit_job(request)))
    return _finished(fleet, kit, job.job_id)


def _rows(data_dir: Path, job_id: str) -> list[dict[str, Any]]:
    results = next(p for p in (data_dir / "jobs").rglob("results.jsonl") if job_id in str(p))
    return [json.loads(r) for r in results.read_text().splitlines()]


def _finished(fleet: Fleet, kit: Any, job_id: str) -> Any:
    for _ in range(600):
        job = asyncio.run(fleet.async_call(kit, lambda c: c.job(job_id)))
        if job.state in ("done", "failed", "cancelled", "interrupted"):
            assert job.state == "done", job
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")
