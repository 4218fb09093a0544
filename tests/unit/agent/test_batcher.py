"""Dynamic batching with real worker threads, a real event loop and the real bundled detector."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from functools import partial
from typing import Any, TypeVar

import numpy as np
import pytest
from PIL import Image

from agent.api.errors import status_of
from agent.errors import Refusal
from agent.models.batcher import Batcher, ImageBatcher, async_infer_image
from agent.models.infer import run_batch
from agent.toolkit.sessions import open_session
from agent.wire import InferResult, Manifest
from resources import images_dir, models_dir

T = TypeVar("T")


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


def together(
    calls: Sequence[Callable[[], Awaitable[T]]], batcher: Batcher[Any, Any, Any] | None = None, name: str = ""
) -> list[T | BaseException]:
    """Run the calls at once on one event loop; each call's answer or exception. With a batcher,
    each holds a ticket from the start, as a request whose body is being read does."""

    async def main() -> list[T | BaseException]:
        tickets = [batcher.coming(name) for _ in calls] if batcher else []
        try:
            return await asyncio.gather(*(call() for call in calls), return_exceptions=True)
        finally:
            for ticket in tickets:
                ticket.close()

    return asyncio.run(main())


def image_calls(
    batcher: ImageBatcher, detector: tuple[Manifest, Any], payloads: Sequence[bytes]
) -> list[Callable[[], Coroutine[Any, Any, InferResult | None]]]:
    manifest, session = detector

    def call(payload: bytes) -> Callable[[], Coroutine[Any, Any, InferResult | None]]:
        return lambda: async_infer_image(batcher, session, manifest, payload, "image/png", 5)

    return [call(payload) for payload in payloads]


def same(a: InferResult, b: InferResult) -> bool:
    pairs = zip(a.detections or [], b.detections or [], strict=False)
    return len(a.detections or []) == len(b.detections or []) and all(
        x.label == y.label and np.allclose(x.box, y.box, atol=0.05) for x, y in pairs
    )


def test_each_caller_gets_the_answer_to_its_own_image(detector: tuple[Manifest, Any]) -> None:
    manifest, session = detector
    payloads = pictures(16)
    alone = [run_batch(session, manifest, [Image.open(io.BytesIO(p))])[0] for p in payloads]
    batcher: ImageBatcher = Batcher(window_s=0.5)
    answers = together(image_calls(batcher, detector, payloads), batcher, manifest.name)
    assert all(isinstance(a, InferResult) for a in answers), answers
    assert all(same(a, b) for a, b in zip(answers, alone, strict=True))  # type: ignore[arg-type]
    assert any(a.detections for a in answers if isinstance(a, InferResult))  # the samples hold shapes
    assert batcher.items == 16
    assert batcher.batches < 16  # they were grouped


def test_a_bad_image_fails_alone(detector: tuple[Manifest, Any]) -> None:
    payloads = pictures(6)
    payloads[2] = b"\x89PNG but broken"
    batcher: ImageBatcher = Batcher(window_s=0.5)
    answers = together(image_calls(batcher, detector, payloads), batcher, detector[0].name)
    assert isinstance(answers[2], Refusal)
    assert status_of(answers[2]) == 400
    assert all(isinstance(a, InferResult) for i, a in enumerate(answers) if i != 2)


def doubled(items: Sequence[int]) -> list[int]:
    if 13 in items:
        raise ValueError("13 is unlucky")
    return [i * 2 for i in items]


def test_a_batch_that_fails_is_run_again_one_by_one() -> None:
    batcher: Batcher[int, int, int] = Batcher(window_s=0.5)
    calls = [partial(batcher.submit, ("k",), i, int, doubled) for i in range(10, 16)]
    answers = together(calls, batcher, "k")
    assert answers[:3] == [20, 22, 24]
    assert isinstance(answers[3], ValueError)
    assert answers[4:] == [28, 30]


def test_an_item_that_cannot_be_prepared_fails_alone() -> None:
    def prepare(text: str) -> int:
        return int(text)  # "x" raises ValueError

    batcher: Batcher[str, int, int] = Batcher(window_s=0.5)
    answers = together(
        [partial(batcher.submit, ("k",), t, prepare, doubled) for t in ["1", "x", "3"]], batcher, "k"
    )
    assert answers[0] == 2
    assert answers[2] == 6
    assert isinstance(answers[1], ValueError)


def test_a_lone_request_does_not_wait_for_the_window() -> None:
    batcher: Batcher[int, int, int] = Batcher(window_s=3600)  # waiting it out would time the test out

    async def main() -> list[int]:
        return [await batcher.submit(("k",), i, int, doubled) for i in (4, 5)]

    assert asyncio.run(main()) == [8, 10]


def test_a_request_on_its_way_is_waited_for_and_joins_the_batch() -> None:
    seen: list[list[int]] = []

    def run(items: Sequence[int]) -> list[int]:
        seen.append(list(items))
        return list(items)

    batcher: Batcher[int, int, int] = Batcher(window_s=3600, workers=1)

    async def main() -> list[int]:
        ticket = batcher.coming("k")
        first = asyncio.ensure_future(batcher.submit(("k",), 1, int, run))
        await asyncio.sleep(0.2)  # the worker holds the first one, waiting for the ticket
        assert not first.done()
        second = await batcher.submit(("k",), 2, int, run, ticket)
        return [await first, second]

    assert asyncio.run(main()) == [1, 2]
    assert seen == [[1, 2]]


def test_a_ticket_closed_without_a_request_ends_the_wait() -> None:
    batcher: Batcher[int, int, int] = Batcher(window_s=3600, workers=1)

    async def main() -> int:
        ticket = batcher.coming("k")
        first = asyncio.ensure_future(batcher.submit(("k",), 7, int, doubled))
        await asyncio.sleep(0.1)
        ticket.close()  # the body never came: the batch must not wait an hour
        ticket.close()  # twice is harmless
        return await first

    assert asyncio.run(main()) == 14


def test_requests_for_other_models_are_never_mixed() -> None:
    seen: list[tuple[str, ...]] = []

    def slowly(value: str) -> str:
        """A prepare step that takes a while, as decoding does: others queue while it runs."""
        time.sleep(0.01)
        return value

    def run(items: Sequence[str]) -> list[str]:
        seen.append(tuple(items))
        return [item.upper() for item in items]

    batcher: Batcher[str, str, str] = Batcher(window_s=0.5, max_batch=4)
    names = [f"{'ab'[n % 2]}{n}" for n in range(12)]
    answers = together([partial(batcher.submit, (v[0],), v, slowly, run) for v in names])
    assert answers == [name.upper() for name in names]
    assert all(len({item[0] for item in batch}) == 1 for batch in seen)
    assert all(len(batch) <= 4 for batch in seen)
    assert max(len(batch) for batch in seen) > 1


def test_a_cancelled_request_leaves_the_others_their_answers() -> None:
    started = threading.Event()

    def slow(value: int) -> int:
        started.set()
        time.sleep(0.2)
        return value

    batcher: Batcher[int, int, int] = Batcher(window_s=0.5, workers=1)

    async def main() -> list[Any]:
        gone = asyncio.ensure_future(batcher.submit(("k",), 1, slow, doubled))
        kept = asyncio.ensure_future(batcher.submit(("k",), 2, slow, doubled))
        await asyncio.sleep(0.05)
        gone.cancel()  # the client hung up while its image was being decoded
        return list(await asyncio.gather(gone, kept, return_exceptions=True))

    answers = asyncio.run(main())
    assert started.is_set()
    assert isinstance(answers[0], asyncio.CancelledError)
    assert answers[1] == 4


def test_workers_end_when_idle_and_come_back_for_new_work() -> None:
    def workers() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == "batch-idle"]

    batcher: Batcher[int, int, int] = Batcher(window_s=0.5, linger_s=0.2)

    async def ask(value: int) -> int:
        return await batcher.submit(("idle",), value, int, doubled)

    assert asyncio.run(ask(1)) == 2
    assert len(workers()) == 2
    deadline = time.monotonic() + 10
    while workers() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not workers()
    assert asyncio.run(ask(2)) == 4  # a new queue, new workers


def test_a_tensor_or_a_raw_model_is_not_batched(detector: tuple[Manifest, Any]) -> None:
    manifest, session = detector
    batcher: ImageBatcher = Batcher(window_s=0.5)
    out = io.BytesIO()
    np.save(out, np.zeros((1, 3, 96, 96), np.float32))
    raw = manifest.model_copy(update={"task": "raw"})

    async def main() -> list[InferResult | None]:
        return [
            await async_infer_image(batcher, session, manifest, out.getvalue(), "application/x-npy", 5),
            await async_infer_image(batcher, session, raw, pictures(1)[0], "image/png", 5),
        ]

    assert asyncio.run(main()) == [None, None]


def test_one_worker_prepares_the_next_batch_while_the_other_runs_its_own() -> None:
    spans: list[tuple[str, int, float, float]] = []  # (stage, thread, start, end)

    def timed(stage: str, seconds: float) -> Callable[[Any], Any]:
        def call(value: Any) -> Any:
            start = time.monotonic()
            time.sleep(seconds)  # as decoding and a model run: the GIL is free meanwhile
            spans.append((stage, threading.get_ident(), start, time.monotonic()))
            return value

        return call

    batcher: Batcher[int, int, int] = Batcher(window_s=0.5)
    running = threading.Event()
    timed_run = timed("run", 0.2)

    def run(items: Any) -> Any:
        running.set()
        return timed_run(items)

    async def main() -> list[int | BaseException]:
        def ask(i: int) -> asyncio.Future[int]:
            return asyncio.ensure_future(batcher.submit(("k",), i, timed("prepare", 0.01), run))

        first = [ask(i) for i in range(3)]
        await asyncio.to_thread(running.wait, 10)  # a batch is in the model: the rest queue now
        calls = first + [ask(i) for i in range(3, 6)]
        return list(await asyncio.gather(*calls, return_exceptions=True))

    assert asyncio.run(main()) == list(range(6))
    runs = [span for span in spans if span[0] == "run"]
    prepares = [span for span in spans if span[0] == "prepare"]
    assert len(runs) < 6  # grouped
    overlapping = [p for p in prepares for r in runs if p[1] != r[1] and r[2] < p[2] < r[3]]
    assert overlapping, "the second batch was prepared while the first ran, on the other worker"
