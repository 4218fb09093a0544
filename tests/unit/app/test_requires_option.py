"""`--requires KEY=VALUE` (deploy, models inspect): the hardware gates written into an inferred
manifest, and each bad item refused with what to write instead."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agent.wire import Manifest, Requirements
from app.fleet.inspection import Overrides, inspect_model
from app.fleet.inspection.overrides import parse_requires
from tests.onnx_models import classifier


def test_items_become_requirements() -> None:
    assert parse_requires([]) is None
    items = ["arch=x86_64, aarch64", "min-memory-mb=2048", "cpu_features=avx512_vnni", "min_onnxruntime=1.17"]
    wanted = Requirements(arch=["x86_64", "aarch64"], min_memory_mb=2048, cpu_features=["vnni"])
    assert parse_requires(items) == wanted.model_copy(update={"min_onnxruntime": "1.17"})


@pytest.mark.parametrize(
    ("item", "said"),
    [
        ("arch", "write KEY=VALUE with KEY one of arch, min_memory_mb"),
        ("ram=4", "write KEY=VALUE with KEY one of"),
        ("min_memory_mb=lots", "min_memory_mb: Input should be a valid integer"),
        ("cpu_features=sse9", "cpu_features.0: Input should be"),
    ],
)
def test_bad_items_say_what_to_write(item: str, said: str) -> None:
    with pytest.raises(ValueError, match="--requires") as caught:
        parse_requires([item])
    assert said in str(caught.value)


def test_an_inferred_manifest_carries_them(tmp_path: Path) -> None:
    model = tmp_path / "plain.onnx"
    classifier(model)
    model.with_name("plain.manifest.json").unlink()  # a plain .onnx: the manifest is inferred
    requires = Requirements(arch=["aarch64"], cpu_features=["dotprod"])
    inspection = inspect_model(model, Overrides(requires=requires))
    assert inspection.manifest.requires == requires

    written = subprocess.run(
        [
            sys.executable,
            "-m",
            "app",
            "--home",
            str(tmp_path / "home"),
            "models",
            "inspect",
            str(model),
            "--write-manifest",
            "--requires",
            "arch=aarch64",
            "--requires",
            "cpu_features=dotprod",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert written.returncode == 0, written.stderr
    manifest = Manifest.model_validate_json(model.with_name("plain.manifest.json").read_text())
    assert manifest.requires == requires
    refused = subprocess.run(
        [
            sys.executable,
            "-m",
            "app",
            "--home",
            str(tmp_path / "home"),
            "models",
            "inspect",
            str(model),
            "--requires",
            "arch",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert refused.returncode != 0
    assert "--requires 'arch': write KEY=VALUE" in refused.stderr
