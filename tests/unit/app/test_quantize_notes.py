"""What `kitfleet quantize` tells a technician whose model came without a manifest (issue 20 item 6)."""

from __future__ import annotations

from pathlib import Path

from app.fleet.inspection import inspect_model, write_manifest
from app.fleet.quantize import quantize_model
from tests.onnx_models import conv_classifier


def test_a_source_without_manifest_is_told_how_deploy_would_infer_one(tmp_path: Path) -> None:
    """The note used to ask for the manifest to be edited by hand before deploying; since issue 17
    a plain model's task and labels are inferred, so the note says how, and following it gives the
    quantized model a real task."""
    source = conv_classifier(tmp_path / "tiny.onnx")

    bare = quantize_model(source, tmp_path / "bare.onnx", "dynamic", runs=3)
    [note] = [n for n in bare.notes if "has no manifest" in n]
    assert "`kitfleet models inspect tiny.onnx --write-manifest`" in note
    assert "edit" not in note
    assert bare.manifest is not None
    assert bare.manifest.task == "raw"

    write_manifest(source, inspect_model(source, golden=True).manifest)  # what that command does
    inferred = quantize_model(source, tmp_path / "inferred.onnx", "dynamic", runs=3)

    assert inferred.manifest is not None
    assert inferred.manifest.task == "classification"
    assert not any("has no manifest" in n for n in inferred.notes)
