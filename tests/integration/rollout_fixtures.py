"""Packages for rollout tests: new versions of the bundled digits model, good and bad.

A "bad" version is the same network with its labels shifted by one: it loads, passes its golden
check (the outputs are the same tensors) and is fast, but it calls every digit by the wrong
name, so evaluation on a labelled set finds it out. Each version gets a different file (the
model's doc string), so the kit stores it as a new version with its own sha256."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
from pathlib import Path

import onnx

from agent.wire import Manifest
from app.fleet.deploy import async_deploy
from app.fleet.inventory import Kit
from app.fleet.models import manifest_path
from app.fleet.service import Fleet
from resources import datasets_dir, models_dir

MODEL = models_dir() / "digits-cnn-fp32.onnx"
BASE_VERSION = "1.0"


def version_of_digits(
    folder: Path, version: str, wrong_labels: bool = False, wrong_golden: bool = False
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    model = onnx.load(str(MODEL))
    model.doc_string = f"digits-cnn {version} for a rollout test"
    path = folder / f"digits-cnn-{version}.onnx"
    onnx.save(model, str(path))
    manifest = json.loads(manifest_path(MODEL).read_text())
    data = path.read_bytes()
    manifest.update(version=version, sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data))
    if wrong_labels:
        labels = manifest["labels"]
        manifest["labels"] = labels[1:] + labels[:1]
    if wrong_golden:  # what a model exported wrongly looks like to the kit's install check
        outputs = manifest["golden"]["outputs"]
        outputs["logits"] = [v + 3.0 for v in outputs["logits"]]
    Manifest.model_validate(manifest)
    manifest_path(path).write_text(json.dumps(manifest, indent=2))
    return path


def eval_set(folder: Path, per_label: int = 2) -> Path:
    """A small labelled copy of the bundled eval set: <label>/<n>.png."""
    for label_dir in sorted(p for p in (datasets_dir() / "digits-eval").iterdir() if p.is_dir()):
        (folder / label_dir.name).mkdir(parents=True)
        for image in sorted(label_dir.glob("*.png"))[:per_label]:
            shutil.copy(image, folder / label_dir.name / image.name)
    return folder


def serve_base(fleet: Fleet, kits: list[Kit]) -> None:
    """Every kit serves the bundled version: what a rollout replaces and rolls back to."""
    outcomes = asyncio.run(async_deploy(fleet, MODEL, kits, activate=True))
    assert all(o.ok for o in outcomes), [o.message for o in outcomes]


def serving(fleet: Fleet, kit: Kit) -> str | None:
    models = asyncio.run(fleet.async_call(kit, lambda c: c.models()))
    return next((m.active_version for m in models if m.name == "digits-cnn"), None)


def installed(fleet: Fleet, kit: Kit) -> list[str]:
    models = asyncio.run(fleet.async_call(kit, lambda c: c.models()))
    return [v.version for m in models if m.name == "digits-cnn" for v in m.versions]


def version_failing_on_real_images(folder: Path, version: str) -> Path:
    """The digits network with a Reshape of its logits to [N, 10 + k], k = 1 when the input's
    mean is far from 0.5: the seeded uniform inputs of the kit's golden check and benchmark
    (mean ~0.5) pass, a real digit picture (mostly background, normalised to -1 or 1) makes
    ONNX Runtime fail at run time (10 values do not fill rows of 11)."""
    from onnx import TensorProto, helper

    path = version_of_digits(folder, version)
    model = onnx.load(str(path))
    graph = model.graph
    logits = graph.output[0].name
    raw = f"{logits}_raw"
    for node in graph.node:
        node.output[:] = [raw if o == logits else o for o in node.output]
    source = graph.input[0].name
    consts = {"fail_half": 0.5, "fail_band": 0.15}
    for name, value in consts.items():
        graph.initializer.append(helper.make_tensor(name, TensorProto.FLOAT, [], [value]))
    graph.initializer.append(helper.make_tensor("fail_ten", TensorProto.INT64, [1], [10]))
    graph.initializer.append(helper.make_tensor("fail_any_rows", TensorProto.INT64, [1], [-1]))
    graph.node.extend(
        [
            helper.make_node("ReduceMean", [source], ["fail_mean"], keepdims=0),
            helper.make_node("Sub", ["fail_mean", "fail_half"], ["fail_off"]),
            helper.make_node("Abs", ["fail_off"], ["fail_far"]),
            helper.make_node("Greater", ["fail_far", "fail_band"], ["fail_real"]),
            helper.make_node("Cast", ["fail_real"], ["fail_k"], to=TensorProto.INT64),
            helper.make_node("Add", ["fail_ten", "fail_k"], ["fail_width"]),
            helper.make_node("Concat", ["fail_any_rows", "fail_width"], ["fail_shape"], axis=0),
            helper.make_node("Reshape", [raw, "fail_shape"], [logits]),
        ]
    )
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    manifest = json.loads(manifest_path(path).read_text())
    data = path.read_bytes()
    manifest.update(sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data))
    manifest_path(path).write_text(json.dumps(manifest, indent=2))
    return path
