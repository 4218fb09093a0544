"""Where a kit's infer requests spend their time, per model, the way Triton reports it."""

from __future__ import annotations

from pydantic import Field

from agent.wire.base import WireModel

__all__ = ["INFER_STAGES", "InferCounts", "InferTimings"]

# In the order a request lives them; every stage is a field of InferTimings ending in `_s`.
INFER_STAGES = ("queue", "read", "decode", "prepare", "infer", "output", "write")


class InferTimings(WireModel):
    """One model's answered infer requests, summed since the agent started: divide a stage
    by `requests` for its mean. The stages add up to `total_s`. A request that took the full
    route (a token not seen in the last seconds) counts until its handler returned, without
    the encoding and writing that follow."""

    model: str
    requests: int = 0
    total_s: float = Field(default=0.0, description="from the request's headers read to its answer written")
    queue_s: float = Field(default=0.0, description="waiting for a worker thread, a batch, or the event loop")
    read_s: float = Field(default=0.0, description="reading the body from the network")
    decode_s: float = Field(default=0.0, description="decoding the image or the .npy tensor")
    prepare_s: float = Field(default=0.0, description="resizing, normalising and laying out the input")
    infer_s: float = Field(default=0.0, description="the model's run (a batch's whole run, when batched)")
    output_s: float = Field(default=0.0, description="turning outputs into the answer and encoding it")
    write_s: float = Field(default=0.0, description="handing the answer to the connection (TLS included)")


class InferCounts(WireModel):
    """One model version's infer requests since the agent started (`Metrics.infer_counts_since`),
    by outcome. `refused`: the request's own fault (a bad image, a tensor of the wrong shape, a
    body too large, a version not installed), answered 4xx. `failed`: the kit's fault (ONNX
    Runtime failing on the input, outputs that contradict the manifest, any error of the agent):
    what a rollout's soak counts against `--max-error-rate`."""

    model: str
    version: str = Field(description="the version that ran (the serving one when none was asked)")
    requests: int = Field(default=0, description="answered + refused + failed")
    answered: int = 0
    refused: int = 0
    failed: int = 0
