"""The two halves of issue 17 together: the manifest the laptop infers from a plain field export
(`kitfleet models inspect`) makes the kit's decoders answer as the exporter's own pipeline."""

from __future__ import annotations

import onnxruntime as ort
import pytest
from PIL import Image

from agent.models.infer import run_inference
from app.fleet.inspection import inspect_model
from tests.field_models import FAMILIES, FIELD, SCENES, Box, agreement, reference


@pytest.mark.parametrize("family", FAMILIES)
def test_an_inspected_manifest_decodes_as_the_exporters_pipeline(family: str) -> None:
    path = FIELD / f"{family}.onnx"
    manifest = inspect_model(path).manifest
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for scene in SCENES:
        result, _ = run_inference(session, manifest, (FIELD / scene).read_bytes(), "image/png", top_k=4)
        assert result is not None
        ours = [Box(d.index, d.score, d.box) for d in result.detections or []] or [
            Box(c.index, c.score, None) for c in result.classes or []
        ]
        image = Image.open(FIELD / scene).convert("RGB")
        expected = reference(family, session, image, top_k=4, thresholds=manifest)
        assert agreement(ours, expected) == 1.0, (family, scene, ours, expected)
