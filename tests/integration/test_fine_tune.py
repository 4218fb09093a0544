"""`fine-tune` jobs on a real agent: the bundled digits CNN as backbone, images the test draws,
a real head trained on the kit and installed through the normal verification."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image, ImageDraw, ImageOps

from resources import datasets_dir, models_dir
from tests.integration.conftest import AgentFactory
from tests.integration.helpers import pair, raw_client
from tests.integration.test_jobs_api import refused, submit, wait

DIGITS = models_dir() / "digits-cnn-fp32.onnx"
YOLO = models_dir() / "shapes-yolo-fp32.onnx"
SHAPES = ("circle", "square", "triangle")
MARGIN = 0.5  # accuracy the fine-tuned model must gain over the backbone on field-condition digits


def deploy_file(client: httpx.Client, model: Path, activate: bool = True) -> dict[str, Any]:
    manifest = json.loads(model.with_suffix("").with_suffix(".manifest.json").read_text())
    upload = client.post("/v1/uploads", json={"manifest": manifest, "activate": activate}).json()
    client.patch(
        f"/v1/uploads/{upload['upload_id']}", content=model.read_bytes(), headers={"Upload-Offset": "0"}
    ).raise_for_status()
    client.post(f"/v1/uploads/{upload['upload_id']}/commit").raise_for_status()
    return dict(manifest)


def draw_shape(kind: str, rng: np.random.Generator) -> Image.Image:
    """A white outline of a circle, square or triangle of random size and place, on black."""
    image = Image.new("L", (32, 32), 0)
    pen = ImageDraw.Draw(image)
    x, y = (int(v) for v in rng.integers(12, 20, 2))
    r = int(rng.integers(6, 11))
    if kind == "circle":
        pen.ellipse([x - r, y - r, x + r, y + r], outline=255, width=2)
    elif kind == "square":
        pen.rectangle([x - r, y - r, x + r, y + r], outline=255, width=2)
    else:
        pen.polygon([(x, y - r), (x - r, y + r), (x + r, y + r)], outline=255)
    return image


def shapes_dataset(folder: Path, per_class: int = 20, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for kind in SHAPES:
        (folder / kind).mkdir(parents=True, exist_ok=True)
        for n in range(per_class):
            draw_shape(kind, rng).save(folder / kind / f"{n:03d}.png")


def field_digits(folder: Path) -> int:
    """The bundled digits, inverted and turned a quarter: conditions the backbone never saw,
    labelled with the backbone's own labels."""
    count = 0
    for label_dir in sorted(p for p in (datasets_dir() / "digits-eval").iterdir() if p.is_dir()):
        (folder / label_dir.name).mkdir(parents=True)
        for image in sorted(label_dir.glob("*.png")):
            turned = ImageOps.invert(Image.open(image).convert("L")).rotate(90)
            turned.save(folder / label_dir.name / image.name)
            count += 1
    return count


def versions(client: httpx.Client, name: str) -> dict[str, dict[str, Any]]:
    return {v["version"]: v for v in client.get(f"/v1/models/{name}").json()["versions"]}


def test_fine_tune_teaches_new_classes_installed_not_activated(start_agent: AgentFactory) -> None:
    agent = start_agent("field", mdns=False)
    shapes_dataset(agent.data_dir / "datasets" / "shapes")
    with raw_client(agent, pair(agent)) as client:
        deploy_file(client, DIGITS)
        job = submit(
            client, "fine-tune", {"model": "digits-cnn", "dataset": "shapes"}, resources={"threads": 2}
        )
        done = wait(client, job["job_id"], timeout=120)
        assert done["state"] == "done", done
        result = done["result"]
        assert result["labels"] == list(SHAPES)
        assert result["embedding"] == "view"
        assert (result["train_count"], result["val_count"]) == (48, 12)
        assert result["before"]["accuracy"] is None
        assert "no label for circle, square, triangle" in result["before"]["note"]
        assert result["after"]["accuracy"] >= 0.9
        assert result["after"]["confusion"]["labels"] == list(SHAPES)
        assert sum(map(sum, result["after"]["confusion"]["matrix"])) == 12
        assert {s["support"] for s in result["after"]["per_class"].values()} == {4}
        assert result["better"] is True
        assert "Activate" in result["advice"]
        assert result["installed"] == {"name": "digits-cnn", "version": "1.0-ft", "activated": False}
        listed = versions(client, "digits-cnn")
        assert listed["1.0"]["active"]
        assert not listed["1.0-ft"]["active"]
        saved = json.loads(client.get(f"/v1/jobs/{job['job_id']}/results/result.json").content)
        assert saved["installed"]["version"] == "1.0-ft"

        # the new version is a model like any other: the kit quantizes it
        quantized = wait(
            client, submit(client, "quantize", {"model": "digits-cnn", "version": "1.0-ft"})["job_id"]
        )
        assert quantized["state"] == "done", quantized
        assert versions(client, "digits-cnn")["1.0-ft-int8"]["precision"] == "int8"

        # a second fine-tune never collides with the first; activated, the kit answers in shapes
        again = submit(client, "fine-tune", {"model": "digits-cnn", "dataset": "shapes", "activate": True})
        second = wait(client, again["job_id"], timeout=120)["result"]
        assert second["installed"] == {"name": "digits-cnn", "version": "1.0-ft2", "activated": True}
        assert "digits-cnn 1.0-ft2 now serves" in second["advice"]
        picture = io.BytesIO()
        draw_shape("square", np.random.default_rng(99)).save(picture, "PNG")
        answer = client.post("/v1/models/digits-cnn/infer", content=picture.getvalue()).json()
        assert answer["classes"][0]["label"] in SHAPES


def test_fine_tune_beats_the_backbone_on_field_conditions(start_agent: AgentFactory) -> None:
    agent = start_agent("adapt", mdns=False)
    count = field_digits(agent.data_dir / "datasets" / "turned")
    with raw_client(agent, pair(agent)) as client:
        deploy_file(client, DIGITS)
        job = submit(
            client,
            "fine-tune",
            {"model": "digits-cnn", "dataset": "turned", "val_fraction": 0.25, "seed": 3},
            resources={"threads": 2},
        )
        done = wait(client, job["job_id"], timeout=120)
        assert done["state"] == "done", done
        result = done["result"]
        assert result["train_count"] + result["val_count"] == count
        before, after = result["before"], result["after"]
        assert before["images"] == result["val_count"]  # every class is one the backbone knows
        assert before["accuracy"] is not None
        assert after["accuracy"] >= before["accuracy"] + MARGIN, (before, after)
        assert result["better"] is True
        assert not versions(client, "digits-cnn")["1.0-ft"]["active"]


def dataset(agent: Any, name: str) -> Path:
    folder: Path = agent.data_dir / "datasets" / name
    folder.mkdir(parents=True)
    return folder


def failed(client: httpx.Client, params: dict[str, Any], **extra: Any) -> str:
    done = wait(client, submit(client, "fine-tune", params, **extra)["job_id"], timeout=120)
    assert done["state"] == "failed", done
    assert done["attempts"] == 1  # bad input is not retried
    return str(done["error"])


def test_fine_tune_refuses_bad_datasets_before_training(start_agent: AgentFactory) -> None:
    agent = start_agent("bad", mdns=False)
    shapes_dataset(dataset(agent, "csv"), per_class=6)
    csv = agent.data_dir / "datasets" / "csv" / "labels.csv"
    csv.write_text("file,label\ncircle/000.png,circle\nsquare/000.png,../../models\n")
    shapes_dataset(one := dataset(agent, "one"), per_class=6)
    for kind in SHAPES[1:]:
        for path in (one / kind).iterdir():
            path.unlink()
        (one / kind).rmdir()
    shapes_dataset(fakes := dataset(agent, "fakes"), per_class=6)
    for n in range(3):
        (fakes / "circle" / f"fake-{n}.png").write_text("not a picture")
    shapes_dataset(dataset(agent, "few"), per_class=5)
    shapes_dataset(odd := dataset(agent, "odd"), per_class=6)
    (odd / "circle").rename(odd / "circle shape")
    with raw_client(agent, pair(agent)) as client:
        deploy_file(client, DIGITS)
        deploy_file(client, YOLO)
        assert "class name '../../models' is not allowed" in failed(
            client, {"model": "digits-cnn", "dataset": "csv"}
        )
        assert "only class 'circle'" in failed(client, {"model": "digits-cnn", "dataset": "one"})
        assert "3 of 21 files are not readable images" in failed(
            client, {"model": "digits-cnn", "dataset": "fakes"}
        )
        said = failed(client, {"model": "digits-cnn", "dataset": "few", "val_fraction": 0.1})
        assert "no validation images out of 5" in said
        assert "'circle shape' is not allowed" in failed(client, {"model": "digits-cnn", "dataset": "odd"})
        assert "no tensor 'nothing'" in failed(
            client, {"model": "digits-cnn", "dataset": "few", "embedding": "nothing"}
        )
        detector = client.post(
            "/v1/jobs", json={"kind": "fine-tune", "params": {"model": "shapes-yolo", "dataset": "few"}}
        )
        assert "fine-tune needs a classifier" in refused(detector, 422, "not_a_classifier")["message"]
        assert list(versions(client, "digits-cnn")) == ["1.0"]  # nothing half-installed


def test_fine_tune_skips_a_few_unreadable_files_and_says_so(start_agent: AgentFactory) -> None:
    agent = start_agent("skips", mdns=False)
    folder = agent.data_dir / "datasets" / "mostly"
    shapes_dataset(folder, per_class=10)
    (folder / "square" / "broken.png").write_bytes(b"\x89PNG not really")
    (folder / "square" / "notes.txt").write_text("a note, not an image")
    (folder / "README").write_text("outside any class")
    with raw_client(agent, pair(agent)) as client:
        deploy_file(client, DIGITS)
        done = wait(
            client, submit(client, "fine-tune", {"model": "digits-cnn", "dataset": "mostly"})["job_id"], 120
        )
        assert done["state"] == "done", done
        skipped = done["result"]["skipped"]
        assert skipped["not a readable image"] == 1
        assert skipped["outside any class folder"] == 1
        assert sum(skipped.values()) == 3
        assert done["result"]["train_count"] + done["result"]["val_count"] == 30
