"""Run a request's image or tensor through a model session and shape the answer."""

from __future__ import annotations

import time
import weakref
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
from PIL import Image

from agent.errors import Invalid, Unsupported
from agent.metrics import timings
from agent.models import decode
from agent.models.preprocess import NPY_MAGIC, check_tensor, load_npy
from agent.toolkit.images import Placement, decode_image, media_type, to_tensor
from agent.wire import InferResult, Manifest

__all__ = [
    "MAX_BATCH",
    "NPY_TYPES",
    "dynamic_batch",
    "is_tensor",
    "model_input",
    "run_batch",
    "run_inference",
    "run_prepared",
]

NPY_TYPES = {"application/x-npy", "application/npy"}
MAX_BATCH = 32  # images per session.run in a batch job: bounds the kit's peak memory
Tensors = dict[str, np.ndarray]


def run_inference(
    session: Any, manifest: Manifest, payload: bytes, content_type: str | None, top_k: int = 5
) -> tuple[InferResult | None, Tensors | None]:
    """One request: (answer, None) for classification/detection, (None, outputs) for a raw model.

    An image (JPEG/PNG/BMP/WebP) is decoded, resized and normalised as the manifest says; a
    .npy tensor (application/x-npy, or octet-stream starting with the NPY magic) goes in as is.
    """
    if is_tensor(payload, content_type):
        tensor = load_npy(payload)
        timings.lap(timings.DECODE)
        return _infer_tensor(session, manifest, tensor, top_k)
    if manifest.task == "raw":
        raise _image_for_raw(manifest)
    image = decode_image(payload, content_type)
    timings.lap(timings.DECODE)
    return _infer_images(session, manifest, [image], top_k)[0], None


def run_batch(
    session: Any, manifest: Manifest, images: Sequence[Image.Image], top_k: int = 5
) -> list[InferResult]:
    """Results for many images; batched runs when the model's batch dimension is dynamic.

    In a batched run each result's latency is its share of the run's time.
    """
    if manifest.task == "raw":
        raise _image_for_raw(manifest)
    step = MAX_BATCH if dynamic_batch(session, manifest) else 1
    return [
        result
        for start in range(0, len(images), step)
        for result in _infer_images(session, manifest, images[start : start + step], top_k)
    ]


def is_tensor(payload: bytes, content_type: str | None) -> bool:
    """True for a .npy body: declared so, or undeclared and starting with the NPY magic."""
    declared = media_type(content_type)
    undeclared = declared in (None, "application/octet-stream")
    return declared in NPY_TYPES or (undeclared and payload.startswith(NPY_MAGIC))


def _image_for_raw(manifest: Manifest) -> Unsupported:
    return Unsupported(
        "unsupported_media_type",
        f"{manifest.name} is a raw model: it takes tensors, not images",
        "send a .npy tensor (numpy.save()) with Content-Type application/x-npy",
    )


class _Signature(NamedTuple):
    inputs: dict[str, Any]  # ONNX Runtime's NodeArg by input name
    outputs: list[str]


# A session's inputs and outputs never change, but asking ONNX Runtime builds new NodeArg
# objects each time: ~20 µs per request, kept here for as long as the session lives.
_signatures: weakref.WeakKeyDictionary[Any, _Signature] = weakref.WeakKeyDictionary()


def _signature(session: Any) -> _Signature:
    found = _signatures.get(session)
    if found is None:
        found = _signatures[session] = _Signature(
            {i.name: i for i in session.get_inputs()}, [o.name for o in session.get_outputs()]
        )
    return found


def model_input(session: Any, manifest: Manifest) -> Any:
    """The session's NodeArg for the manifest's input (verify.py checked that it exists)."""
    return _signature(session).inputs[manifest.input.name]


def dynamic_batch(session: Any, manifest: Manifest) -> bool:
    """True when the model input's batch dimension is symbolic, so any batch size runs."""
    shape = model_input(session, manifest).shape
    first = shape[0] if shape else None
    return not (isinstance(first, int) and first > 0)


def _infer_images(
    session: Any, manifest: Manifest, images: Sequence[Image.Image], top_k: int
) -> list[InferResult]:
    batch, placements = to_tensor(images, manifest.input, manifest.normalisation)
    return run_prepared(session, manifest, batch, placements, top_k)


def run_prepared(
    session: Any, manifest: Manifest, batch: np.ndarray, placements: Sequence[Placement], top_k: int = 5
) -> list[InferResult]:
    """Results for a batch already made by `images.to_tensor` (or `to_input` + `stack`), in
    one session.run; batch jobs and the batcher prepare images on their own threads and come in
    here. Each placement maps its image's boxes back to its pixels."""
    check_tensor(batch, model_input(session, manifest))
    outputs, latency_ms = _run(session, manifest.input.name, batch)
    return _results(manifest, outputs, placements, latency_ms / len(placements), top_k)


def _infer_tensor(
    session: Any, manifest: Manifest, tensor: np.ndarray, top_k: int
) -> tuple[InferResult | None, Tensors | None]:
    check_tensor(tensor, model_input(session, manifest))
    if manifest.task != "raw" and tensor.shape[0] != 1:
        raise Invalid(
            "wrong_shape",
            f"the tensor holds a batch of {tensor.shape[0]}; one answer needs one input",
            "send one input per request (batch dimension 1)",
        )
    outputs, latency_ms = _run(session, manifest.input.name, tensor)
    if manifest.task == "raw":
        return None, outputs
    placement = Placement.identity(manifest.input.width, manifest.input.height)  # boxes in input pixels
    return _results(manifest, outputs, [placement], latency_ms, top_k)[0], None


def _run(session: Any, input_name: str, tensor: np.ndarray) -> tuple[Tensors, float]:
    """Outputs by name, and the time session.run took in milliseconds."""
    timings.lap(timings.PREPARE)  # a request's stages, when one is being timed (metrics/timings.py)
    started = time.perf_counter()
    values = session.run(None, {input_name: tensor})
    latency_ms = (time.perf_counter() - started) * 1000
    timings.lap(timings.INFER)
    names = _signature(session).outputs
    return {name: np.asarray(value) for name, value in zip(names, values, strict=True)}, latency_ms


def _results(
    manifest: Manifest, outputs: Tensors, placements: Sequence[Placement], latency_ms: float, top_k: int
) -> list[InferResult]:
    """The answer for each item of the batch, decoded as the manifest's task and family say."""
    results = [
        InferResult(
            model=manifest.name,
            version=manifest.version,
            sha256=manifest.sha256,
            task=manifest.task,
            latency_ms=latency_ms,
        )
        for _ in placements
    ]
    if manifest.task == "classification":
        for result, classes in zip(
            results, decode.classes(manifest, outputs, len(placements), top_k), strict=True
        ):
            result.classes = classes
    else:
        for result, detections in zip(results, decode.detections(manifest, outputs, placements), strict=True):
            result.detections = detections
    return results
