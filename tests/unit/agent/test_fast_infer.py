"""The infer service runs a lone small request on the event loop, everything else in a worker
thread or, with batching on and several clients, in a batch.

The real application on a real agent state and model, called in-process over ASGI; a spy on
`InferService.run_loaded` (the loop-side call), `InferService.run` (the threaded one) and
`InferService._batched` records which way each request went and on which thread, and the
answers are compared with each other.
"""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from agent.api.app import create_app
from agent.api.state import AgentState
from agent.config import Settings
from agent.identity import load_or_create
from agent.models import service
from agent.models.service import InferService
from agent.wire import INFER_STAGES
from tests.onnx_models import classifier


@pytest.fixture(params=[0], ids=["batching-off"])
def state(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[AgentState]:
    data = tmp_path / "kit"
    data.mkdir()
    settings = Settings.resolve(data, {"name": "kit", "infer_batch_window_ms": request.param})
    agent_state = AgentState.open(settings, load_or_create(data))
    model = tmp_path / "tiny.onnx"
    manifest = classifier(model)
    agent_state.models.install(manifest, model)
    agent_state.models.activate(manifest.name, manifest.version)
    yield agent_state
    agent_state.db.close()


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool]]:
    """(which path, on the event loop's thread) for every request. The budgets are widened so a
    busy test machine cannot turn a quick run into a slow one or stretch a burst apart."""
    monkeypatch.setattr(service, "INLINE_BUDGET_S", 0.5)
    monkeypatch.setattr(service, "SHARED_S", 5.0)
    seen: list[tuple[str, bool]] = []
    loop_side, threaded, batched = InferService.run_loaded, InferService.run, InferService._batched

    def spy(name: str, real: Any) -> Any:
        def call(*args: Any) -> Any:
            seen.append((name, threading.current_thread() is threading.main_thread()))
            return real(*args)

        return call

    async def batch_spy(*args: Any) -> Any:
        seen.append(("batch", threading.current_thread() is threading.main_thread()))
        return await batched(*args)

    monkeypatch.setattr(InferService, "run_loaded", spy("loop", loop_side))
    monkeypatch.setattr(InferService, "run", spy("thread", threaded))
    monkeypatch.setattr(InferService, "_batched", batch_spy)
    return seen


def _tensor(seed: int, size: int = 16) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.random.default_rng(seed).random((1, 3, size, size)).astype("float32"))
    return buffer.getvalue()


def _png(seed: int, size: int = 24) -> bytes:
    buffer = io.BytesIO()
    pixels = np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


async def _post(
    app: Any,
    bodies: list[bytes],
    clients: int = 1,
    at_once: bool = False,
    content_type: str = "application/x-npy",
) -> list[httpx.Response]:
    """Each body from one of `clients` connections in turn (each its own client address);
    `at_once`: all sent together instead of one after another."""
    state: AgentState = app.state  # FastInfer keeps the agent state as .state
    _, secret = state.tokens.issue("test", "operator")
    state.tokens.authenticate(secret)  # the short path serves tokens verified lately
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": content_type}
    connections = [
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 40000 + i)), base_url="https://kit"
        )
        for i in range(clients)
    ]
    calls = [
        partial(connections[i % clients].post, "/v1/models/tiny/infer", content=body, headers=headers)
        for i, body in enumerate(bodies)
    ]
    try:
        if at_once:
            return list(await asyncio.gather(*(call() for call in calls)))
        return [await call() for call in calls]
    finally:
        for connection in connections:
            await connection.aclose()


def test_a_lone_small_request_runs_on_the_loop_once_its_model_ran_quickly(
    state: AgentState, calls: list[tuple[str, bool]]
) -> None:
    answers = asyncio.run(_post(create_app(state), [_tensor(1)] * 3 + [_tensor(2)]))
    assert [a.status_code for a in answers] == [200] * 4
    # the first, with no run timed yet, loads the model in a thread; then its runs are known quick
    assert calls == [("thread", False)] + [("loop", True)] * 3
    _, first, again, other = (a.json() for a in answers)
    for answer in (first, again, other):
        answer.pop("latency_ms")
    assert first == again != other


def test_a_large_body_and_a_model_not_loaded_go_to_a_thread(
    state: AgentState, calls: list[tuple[str, bool]], monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(state)
    asyncio.run(_post(app, [_tensor(1)] * 3))
    monkeypatch.setattr(service, "INLINE_MAX_BYTES", len(_tensor(1)) - 1)
    calls.clear()
    asyncio.run(_post(app, [_tensor(1)] * 2))
    assert calls == [("thread", False), ("thread", False)]
    monkeypatch.setattr(service, "INLINE_MAX_BYTES", len(_tensor(1)))
    calls.clear()
    state.infer.sessions.clear()  # evicted: the loop must not wait for it to load
    answers = asyncio.run(_post(app, [_tensor(1)] * 3))
    assert [a.status_code for a in answers] == [200] * 3
    # not loaded: the loop gets None and a thread loads it; then the loop again
    assert calls == [("loop", True), ("thread", False), ("loop", True), ("loop", True)]


def test_requests_from_several_connections_go_to_threads(
    state: AgentState, calls: list[tuple[str, bool]]
) -> None:
    """Several clients at once: the loop keeps serving them while models run in threads."""
    app = create_app(state)
    asyncio.run(_post(app, [_tensor(1)] * 3))
    calls.clear()
    answers = asyncio.run(_post(app, [_tensor(i) for i in range(6)], clients=3))
    assert all(a.status_code == 200 for a in answers)
    # the first comes from the connection that asked last; from the second on, three take turns
    assert calls == [("loop", True)] + [("thread", False)] * 5


@pytest.mark.parametrize("state", [50], ids=["batching-on"], indirect=True)
def test_with_batching_on_requests_from_several_connections_are_batched(
    state: AgentState, calls: list[tuple[str, bool]]
) -> None:
    app = create_app(state)
    alone = asyncio.run(_post(app, [_png(i) for i in range(6)], content_type="image/png"))
    calls.clear()
    batcher = state.infer.batcher
    assert batcher is not None
    straggler = batcher.coming("tiny")  # a body still on its way: the batch waits for it
    threading.Timer(0.03, straggler.close).start()  # (within the 50 ms window) however the threads run
    answers = asyncio.run(
        _post(app, [_png(i) for i in range(6)], clients=3, at_once=True, content_type="image/png")
    )
    assert [a.status_code for a in answers] == [200] * 6
    # the first comes from the connection that asked last; the others were queued from the loop
    # and the batcher's workers ran them
    assert calls == [("loop", True)] + [("batch", True)] * 5
    assert batcher.items == 5
    assert batcher.batches < 5
    for a, b in zip(answers, alone, strict=True):
        assert a.json()["classes"][0]["label"] == b.json()["classes"][0]["label"]
    # every request counted, a batched one with its queue, decoding and its batch's run
    [row] = state.infer.times.snapshot()
    assert row.requests == 12
    stages = [getattr(row, f"{stage}_s") for stage in INFER_STAGES]
    assert min(stages) >= 0
    assert row.queue_s > 0
    assert row.infer_s > 0
    assert sum(stages) == pytest.approx(row.total_s, rel=1e-6)


@pytest.mark.parametrize("state", [50], ids=["batching-on"], indirect=True)
def test_with_batching_on_a_lone_client_is_not_batched_and_gets_to_the_loop_after_a_slow_run(
    state: AgentState, calls: list[tuple[str, bool]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nobody to share a batch with: a lone client's requests run alone, so after a slow run
    (the first loads the model) the next is timed alone and the loop takes over again."""
    monkeypatch.setattr(service, "INLINE_BUDGET_S", 0.2)
    threaded = vars(InferService)["run"]  # the spy the calls fixture put there
    runs = iter(range(100))

    def slow_once(*args: Any) -> Any:
        if next(runs) == 0:
            time.sleep(0.25)  # over the budget: as a model load on a slow kit
        return threaded(*args)

    monkeypatch.setattr(InferService, "run", slow_once)
    answers = asyncio.run(_post(create_app(state), [_png(1)] * 4, content_type="image/png"))
    assert [a.status_code for a in answers] == [200] * 4
    assert calls == [("thread", False), ("thread", False), ("loop", True), ("loop", True)]


def test_one_slow_run_on_a_busy_kit_keeps_a_lone_client_on_the_loop(
    state: AgentState, calls: list[tuple[str, bool]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run slowed by other work on the kit (here: past the budget once) does not send the
    next requests to a thread, where each would pay two wake-ups; a model that stays slow does."""
    monkeypatch.setattr(service, "INLINE_BUDGET_S", 0.2)
    loop_side = vars(InferService)["run_loaded"]  # the spy the calls fixture put there
    slow_runs = {1} | set(range(3, 100))  # the second loop run, then every one from the fourth

    def slowed(*args: Any) -> Any:
        answer = loop_side(*args)
        if len([c for c in calls if c[0] == "loop"]) - 1 in slow_runs:
            time.sleep(0.3)
        return answer

    monkeypatch.setattr(InferService, "run_loaded", slowed)
    answers = asyncio.run(_post(create_app(state), [_tensor(1)] * 14))
    assert [a.status_code for a in answers] == [200] * 14
    paths = [path for path, _ in calls]
    # loads in a thread; the loop's second run is slow, and the loop keeps the next ones
    assert paths[:5] == ["thread", "loop", "loop", "loop", "loop"]
    # slow ever after: the estimate climbs past the budget and a thread takes over
    assert "thread" in paths[5:]
