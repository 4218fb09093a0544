"""A quantize job on a real agent takes its weight range from the kit's own CPU facts."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from tests.integration.conftest import AgentFactory
from tests.integration.helpers import pair, raw_client
from tests.integration.test_jobs_api import deploy, submit, wait

X86 = {"x86_64", "amd64", "i386", "i686"}


def largest_weight_code(model: bytes) -> int:
    graph = onnx.load(io.BytesIO(model)).graph
    codes = [numpy_helper.to_array(i) for i in graph.initializer if i.data_type == TensorProto.INT8]
    assert codes, "the quantized model stores no int8 weights"
    return max(int(np.abs(c.astype(np.int16)).max()) for c in codes)


def test_a_quantize_job_uses_seven_bit_weights_on_x86_without_vnni(
    start_agent: AgentFactory, tmp_path: Path
) -> None:
    agent = start_agent("int8-range", mdns=False)
    with raw_client(agent, pair(agent)) as client:
        deploy(client, tmp_path, size=32, classes=8)
        cpu = client.get("/v1/facts").json()["families"]["cpu"]
        job = wait(client, submit(client, "quantize", {"model": "tiny"})["job_id"])
        assert job["state"] == "done", job
        model = client.get(f"/v1/jobs/{job['job_id']}/results/model.onnx")
        model.raise_for_status()
        manifest = client.get(f"/v1/jobs/{job['job_id']}/results/manifest.json").json()

    # a MatMul-only model keeps signed weights (u8×s8 MatMulInteger measured faster), whose products
    # added in pairs saturate int16 on x86 without VNNI/AMX, so there the kit keeps 7 bits
    reduced = cpu["arch"].lower() in X86 and cpu["int8"]["via"] is None
    bits = 7 if reduced else 8
    assert job["result"]["weight_bits"] == bits
    assert largest_weight_code(model.content) == (64 if reduced else 127)
    assert manifest["source_model"].endswith(f"dynamic INT8, {bits}-bit weights")
