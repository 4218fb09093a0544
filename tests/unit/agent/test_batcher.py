"""Dynamic batching with real threads and the real bundled detector."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import numpy as np
import pytest
from PIL import Image

from agent.api.schemas import InferResult, Manifest
from agent.errors import ApiError
from agent.models.batcher import Batcher, infer_image
from agent.models.infer import run_batch
from agent.models.sessions import open_session
from resources import images_dir, models_dir


@pytest.fixture(scope="module")
def detector() -> tuple[Manifest, Any]:
    manifest = Manifest.model_validate_json((models_dir() / "shapes-yolo-fp32.manifest.json").read_text())
    session, _ = open_session(models_dir() / "shapes-yolo-fp32.onnx", 1)
    return manifest, session


def pictures(count: int) -> list[bytes]:
    """Different scenes: the bundled samples, then noise of different sizes."""
    found = [p.read_bytes() for p in sorted(images_dir().glob("shapes-*.png"))]
    rng = np.random.default_rng(3)
    while len(found) < count:
        out = io.BytesIO()
        side = int(rng.integers(40, 200))
        Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)).save(out, "PNG")
        found.append(out.getvalue())
    return found[:count]


def together(calls: Sequence[Callable[[], Any]]) -> list[Any]:
    """Run the calls on as many threads, released at once; each call's answer or exception."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], Any]) -> Any:
        barrier.wait()
        try:
            return call()
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def same(a: InferResult, b: InferResult) -> bool:
    pairs = zip(a.detections or [], b.detections or [], strict=False)
    return (len(a.detections or []) == len(b.detections or [])
            and all(x.label == y.label and np.allclose(x.box, y.box, atol=0.05) for x, y in pairs))


def test_each_caller_gets_the_answer_to_its_own_image(detector: tuple[Manifest, Any]) -> None:
    manifest, session = detector
    payloads = pictures(16)
    alone = [run_batch(session, manifest, [Image.open(io.BytesIO(p))])[0] for p in payloads]
    batcher: Batcher[Any, InferResult] = Batcher(window_s=0.5)
    answers = together([partial(infer_image, batcher, session, manifest, p, "image/png", 5)
                        for p in payloads])
    assert all(isinstance(a, InferResult) for a in answers), answers
    assert all(same(a, b) for a, b in zip(answers, alone, strict=True))
    assert any(a.detections for a in answers)  # the samples do hold shapes
    assert batcher.items == 16
    assert batcher.batches < 16  # they were grouped


def test_a_bad_image_fails_alone(detector: tuple[Manifest, Any]) -> None:
    manifest, session = detector
    payloads = pictures(6)
    payloads[2] = b"\x89PNG but broken"
    batcher: Batcher[Any, InferResult] = Batcher(window_s=0.5)
    answers = together([partial(infer_image, batcher, session, manifest, p, "image/png", 5)
                        for p in payloads])
    assert isinstance(answers[2], ApiError)
    assert answers[2].status == 400
    assert all(isinstance(a, InferResult) for i, a in enumerate(answers) if i != 2)


def test_a_batch_that_fails_is_run_again_one_by_one() -> None:
    def run(items: Sequence[int]) -> list[int]:
        if 13 in items:
            raise ValueError("13 is unlucky")
        return [i * 2 for i in items]

    batcher: Batcher[int, int] = Batcher(window_s=0.5)
    answers = together([partial(batcher.submit, "k", partial(int, i), run) for i in range(10, 16)])
    assert answers[:3] == [20, 22, 24]
    assert isinstance(answers[3], ValueError)
    assert answers[4:] == [28, 30]


def test_a_lone_request_does_not_wait_for_the_window() -> None:
    batcher: Batcher[int, int] = Batcher(window_s=3600)  # waiting it out would time the test out
    assert batcher.submit("k", lambda: 4, lambda items: [i + 1 for i in items]) == 5
    assert batcher.submit("k", lambda: 5, lambda items: [i + 1 for i in items]) == 6


def test_requests_for_other_models_are_never_mixed() -> None:
    seen: list[tuple[str, ...]] = []

    def run(items: Sequence[str]) -> list[str]:
        seen.append(tuple(items))
        return [item.upper() for item in items]

    batcher: Batcher[str, str] = Batcher(window_s=0.5, max_batch=4)
    calls = [partial(batcher.submit, n % 2, partial(slowly, f"{'ab'[n % 2]}{n}"), run) for n in range(12)]
    answers = together(calls)
    assert answers == [f"{'AB'[n % 2]}{n}" for n in range(12)]
    assert all(len({item[0] for item in batch}) == 1 for batch in seen)
    assert all(len(batch) <= 4 for batch in seen)
    assert max(len(batch) for batch in seen) > 1


def slowly(value: str) -> str:
    """A prepare step that takes a while, as decoding does: others join while it runs."""
    time.sleep(0.01)
    return value


def test_a_tensor_or_a_raw_model_is_not_batched(detector: tuple[Manifest, Any]) -> None:
    manifest, session = detector
    batcher: Batcher[Any, InferResult] = Batcher(window_s=0.5)
    out = io.BytesIO()
    np.save(out, np.zeros((1, 3, 96, 96), np.float32))
    assert infer_image(batcher, session, manifest, out.getvalue(), "application/x-npy", 5) is None
    raw = manifest.model_copy(update={"task": "raw"})
    assert infer_image(batcher, session, raw, pictures(1)[0], "image/png", 5) is None
