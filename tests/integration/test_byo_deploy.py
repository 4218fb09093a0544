"""A plain .onnx from the field (no manifest) deploys with one command to a real agent, and
bad models are refused before anything changes on the kit."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import external_data_helper, helper
from PIL import Image

from app.fleet.service import Fleet
from tests import inspection_models as im
from tests.field_models import FIELD, SCENES, Box, agreement, reference
from tests.integration.conftest import AgentFactory
from tests.integration.helpers import kitfleet

IMAGENET = (np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225]))


def cli(fleet: Fleet, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    done = kitfleet(fleet.settings.home, *args)
    assert (done.returncode == 0) == ok, (done.returncode, done.stdout, done.stderr)
    return done


def picture(path: Path) -> Path:
    """A picture whose channels differ, so the classes score apart."""
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    pixels[..., 0] = 230  # red-heavy
    Image.fromarray(pixels).save(path)
    return path


def reference_top(model: Path, image: Path, labels: list[str]) -> tuple[str, float]:
    """The exporter's own pipeline, written here: resize, /255, ImageNet mean/std, softmax."""
    resized = Image.open(image).convert("RGB").resize((16, 16), Image.Resampling.BILINEAR)
    x = (np.asarray(resized, np.float32) / 255 - IMAGENET[0]) / IMAGENET[1]
    x = x.transpose(2, 0, 1)[np.newaxis].astype(np.float32)
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    [logits] = session.run(None, {"images": x})
    probabilities = np.exp(logits[0] - logits[0].max())
    probabilities /= probabilities.sum()
    best = int(probabilities.argmax())
    return labels[best], float(probabilities[best])


def models_on(fleet: Fleet, kit: str) -> list[dict[str, Any]]:
    return json.loads(cli(fleet, "models", "list", kit, "--json").stdout)  # type: ignore[no-any-return]


def test_a_plain_classifier_deploys_with_one_command_and_answers(
    start_agent: AgentFactory, fleet: Fleet, adopt: Any, tmp_path: Path
) -> None:
    kit = adopt(start_agent("field-kit", mdns=False))
    model = im.classifier(tmp_path / "mynet_v2.0.onnx", classes=4)
    labels = ["cat", "dog", "bird", "fish"]
    (tmp_path / "labels.txt").write_text("\n".join(labels) + "\n")
    done = cli(fleet, "deploy", str(model), "--kit", kit.name, "--activate")
    assert "has no manifest: deploying it as mynet_v2-0" in done.stderr
    assert "ok" in done.stdout
    assert not (tmp_path / "mynet_v2.0.manifest.json").exists()  # nothing written beside the model
    [info] = models_on(fleet, kit.name)
    assert info["name"] == "mynet_v2-0"
    assert info["task"] == "classification"
    image = picture(tmp_path / "photo.png")
    answer = json.loads(cli(fleet, "infer", kit.name, "mynet_v2-0", str(image), "--json").stdout)
    label, score = reference_top(model, image, labels)
    assert answer["classes"][0]["label"] == label
    assert abs(answer["classes"][0]["score"] - score) < 1e-3


def test_plain_field_exports_deploy_with_one_command_and_answer_as_their_pipelines(
    start_agent: AgentFactory, fleet: Fleet, adopt: Any, tmp_path: Path
) -> None:
    """The torch-exported YOLOv8 detector (dynamic sizes, Ultralytics metadata) and torchvision-style
    classifier, copied without a manifest: one `deploy` each, then `infer` gives the reference's
    boxes and classes."""
    kit = adopt(start_agent("exports", mdns=False))
    for family in ("yolov8-det", "classifier-tv"):
        model = tmp_path / f"{family}.onnx"
        shutil.copy(FIELD / model.name, model)
        done = cli(fleet, "deploy", str(model), "--kit", kit.name, "--activate")
        assert f"deploying it as {family} " in done.stderr
        session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        for scene in SCENES:
            answer = json.loads(
                cli(fleet, "infer", kit.name, family, str(FIELD / scene), "--json", "--top-k", "4").stdout
            )
            ours = [Box(d["index"], d["score"], tuple(d["box"])) for d in answer.get("detections") or []]
            ours += [Box(c["index"], c["score"], None) for c in answer.get("classes") or []]
            expected = reference(family, session, Image.open(FIELD / scene).convert("RGB"), top_k=4)
            assert expected
            assert agreement(ours, expected) == 1.0, (family, scene, ours, expected)
        if family == "yolov8-det":
            assert {d["label"] for d in answer["detections"]} <= {"red", "green", "blue"}  # from its metadata


def test_inspect_then_deploy_the_written_manifest(fleet: Fleet, tmp_path: Path) -> None:
    model = im.yolov8(tmp_path / "yolov8n.onnx", metadata=im.ultralytics_metadata())
    shown = json.loads(cli(fleet, "models", "inspect", str(model), "--json").stdout)
    assert shown["family"] == "yolov8"
    assert shown["manifest"]["labels"] == ["person", "bicycle", "car"]
    assert shown["manifest"]["input"]["letterbox"] is True
    assert "Ultralytics" in shown["why"]["letterbox"]
    text = cli(fleet, "models", "inspect", str(model), "--write-manifest").stdout
    assert "manifest written to" in text
    again = cli(fleet, "models", "inspect", str(model), "--write-manifest", ok=False)
    assert "--force" in again.stderr
    cli(fleet, "models", "inspect", str(model), "--write-manifest", "--force", "--score-threshold", "0.5")
    written = json.loads((tmp_path / "yolov8n.manifest.json").read_text())
    assert written["detection"]["score_threshold"] == 0.5
    assert written["golden"] is not None


def test_bad_models_are_refused_and_the_serving_version_stays(
    start_agent: AgentFactory, fleet: Fleet, adopt: Any, tmp_path: Path
) -> None:
    kit = adopt(start_agent("steady", mdns=False))
    good = im.classifier(_folder(tmp_path / "good") / "net.onnx")
    cli(fleet, "deploy", str(good), "--kit", kit.name, "--activate", "--version", "1")
    refusals = {
        "external data": (_external(tmp_path / "ext" / "net.onnx"), [], "another file"),
        "several image inputs": (_stereo(tmp_path / "two" / "net.onnx"), [], "give --task raw"),
        "forced family": (
            im.classifier(_folder(tmp_path / "forced") / "net.onnx"),
            ["--task", "detection"],
            "expected a detector's outputs",
        ),
        "not onnx": (_not_onnx(tmp_path / "text" / "net.onnx"), [], "is not an ONNX model"),
    }
    for what, (model, flags, message) in refusals.items():
        done = cli(
            fleet, "deploy", str(model), "--kit", kit.name, "--activate", "--version", "2", *flags, ok=False
        )
        assert message in done.stderr, (what, done.stderr)
        assert "Traceback" not in done.stderr, what
    [info] = models_on(fleet, kit.name)
    assert info["active_version"] == "1"
    assert [v["version"] for v in info["versions"]] == ["1"]


def test_a_labels_count_mismatch_warns_and_still_deploys(
    start_agent: AgentFactory, fleet: Fleet, adopt: Any, tmp_path: Path
) -> None:
    kit = adopt(start_agent("labels", mdns=False))
    model = im.classifier(tmp_path / "net.onnx", classes=4)
    (tmp_path / "labels.txt").write_text("cat\ndog\nbird\n")
    done = cli(fleet, "deploy", str(model), "--kit", kit.name, "--activate")
    assert "warning: labels.txt beside the model names 3 classes but the model scores 4" in done.stderr
    answer = json.loads(
        cli(fleet, "infer", kit.name, "net", str(picture(tmp_path / "p.png")), "--json").stdout
    )
    assert {c["label"] for c in answer["classes"]} <= {"0", "1", "2", "3"}


def _folder(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


def _external(path: Path) -> Path:
    model = im.classifier(_folder(path.parent) / path.name)
    proto = onnx.load(str(model))
    external_data_helper.convert_model_to_external_data(proto, location="weights.bin", size_threshold=0)
    onnx.save(proto, str(model))
    return model


def _stereo(path: Path) -> Path:
    dims = [1, 3, 8, 8]
    nodes = [helper.make_node("Add", ["left", "right"], ["sum"])]
    return im.save(
        _folder(path.parent) / path.name, nodes, [("left", dims), ("right", dims)], [("sum", dims)]
    )


def _not_onnx(path: Path) -> Path:
    _folder(path.parent)
    path.write_text("this is a README saved as .onnx\n")
    return path
