"""The kit's `quantize` job on the bundled Conv classifier: its unsigned Conv weights run on the kit's
own ONNX Runtime, whichever that is (CI runs this under Python 3.10's onnxruntime 1.23 too)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from agent.jobs.kinds import quantize
from agent.jobs.report import Reporter
from agent.toolkit.quantize import UNSIGNED_NOTE
from agent.wire import Manifest
from resources import models_dir


def test_the_kit_quantizes_a_conv_model_into_one_its_runtime_runs(tmp_path: Path) -> None:
    source = models_dir() / "digits-cnn-fp32.onnx"
    manifest = Manifest.model_validate_json(source.with_name("digits-cnn-fp32.manifest.json").read_bytes())
    results = tmp_path / "results"
    results.mkdir()
    spec = {
        "kind": "quantize",
        "params": {"per_channel": True},
        "threads": 1,
        "max_result_bytes": 1 << 30,
        "model": {"manifest": manifest.model_dump(mode="json"), "path": str(source)},
    }

    summary = quantize.run(spec, Reporter(io.StringIO(), results, 1 << 30))

    out = results / quantize.MODEL
    model = onnx.load(str(out))
    stored = {tensor.name: tensor.data_type for tensor in model.graph.initializer}
    conv_weights = {stored[n.input[1]] for n in model.graph.node if n.op_type == "ConvInteger"}
    assert conv_weights == {onnx.TensorProto.UINT8}  # faster than signed, and every runtime runs them
    assert summary["kept_float"] == []
    assert UNSIGNED_NOTE in summary["notes"]
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])  # as /infer opens it
    shape = (1, manifest.input.channels, manifest.input.height, manifest.input.width)
    picture = np.random.default_rng(1).random(shape, dtype=np.float32)
    assert session.run(None, {manifest.input.name: picture})[0].shape == (1, 10)
    assert summary["agreement"] >= 0.5  # top-1 on 20 seeded inputs, FP32 against INT8 on this kit
