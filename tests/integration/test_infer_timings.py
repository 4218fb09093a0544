"""Where a real agent's infer requests spend their time: per model, per stage, in /v1/metrics
and /metrics, counted for every answered request and adding up to the requests' totals."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from agent.wire import INFER_STAGES, MAX_INT64, InferTimings
from app.fleet.deploy import async_deploy
from app.fleet.inventory import Kit
from app.fleet.service import Fleet
from tests.integration.conftest import AgentFactory
from tests.integration.helpers import kitfleet, raw_client
from tests.onnx_models import classifier


@pytest.fixture
def served(start_agent: AgentFactory, fleet: Fleet, adopt, tmp_path: Path):
    agent = start_agent("timed", mdns=False)
    kit = adopt(agent)
    [outcome] = asyncio.run(async_deploy(fleet, _model(tmp_path), [kit], activate=True))
    assert outcome.ok, outcome.message
    return agent, kit


def _model(tmp_path: Path) -> Path:
    model = tmp_path / "tiny.onnx"
    classifier(model, version="1")
    return model


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 40), (200, 30, 30)).save(buffer, "PNG")
    return buffer.getvalue()


def _npy() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.random.default_rng(3).random((1, 3, 16, 16)).astype("float32"))
    return buffer.getvalue()


async def _infer_then_timings(fleet: Fleet, kit: Kit, images: int, tensors: int) -> list[InferTimings]:
    async with fleet.client(kit) as client:
        for _ in range(images):
            await client.infer("tiny", _png(), "image/png")
        for _ in range(tensors):
            await client.infer("tiny", _npy(), "application/x-npy")
        return (await client.metrics(since_seq=MAX_INT64, limit=1)).infer


def _stages(row: InferTimings) -> dict[str, float]:
    return {stage: getattr(row, f"{stage}_s") for stage in INFER_STAGES}


def test_every_answered_request_is_counted_by_stage_and_the_stages_add_up(served, fleet: Fleet) -> None:
    _, kit = served
    [before] = asyncio.run(_infer_then_timings(fleet, kit, 1, 0)) or [InferTimings(model="tiny")]
    [row] = asyncio.run(_infer_then_timings(fleet, kit, 6, 4))
    assert row.model == "tiny"
    assert row.requests == before.requests + 10
    stages = _stages(row)
    assert all(seconds >= 0 for seconds in stages.values())
    # the work each request does is seen: its body read, decoded, prepared, run, answered, written
    for stage in ("read", "decode", "prepare", "infer", "output", "write"):
        assert stages[stage] > _stages(before)[stage], stage
    assert sum(stages.values()) == pytest.approx(row.total_s, rel=1e-6)
    assert row.total_s > before.total_s


def test_prometheus_metrics_name_each_model_and_stage(served, fleet: Fleet) -> None:
    agent, kit = served
    [row] = asyncio.run(_infer_then_timings(fleet, kit, 2, 1))
    with raw_client(agent, kit.token) as client:
        text = client.get("/metrics").text
    lines = text.splitlines()
    [requests] = [line for line in lines if line.startswith("kitfleet_infer_requests_total{")]
    assert 'model="tiny"' in requests
    assert int(requests.rsplit(" ", 1)[1]) >= row.requests
    for stage in ("total", *INFER_STAGES):
        [line] = [
            x for x in lines if x.startswith("kitfleet_infer_seconds_total{") and f'stage="{stage}"' in x
        ]
        assert float(line.rsplit(" ", 1)[1]) >= 0


def test_kitfleet_models_list_shows_where_requests_spent_their_time(served, fleet: Fleet, settings) -> None:
    _, kit = served
    asyncio.run(_infer_then_timings(fleet, kit, 3, 0))
    done = kitfleet(settings.home, "models", "list", kit.name, "--timings")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    header = next(i for i, x in enumerate(lines) if x.split()[:2] == ["model", "requests"])
    assert lines[header].split()[2:] == ["total", *INFER_STAGES]
    row = lines[header + 1].split()
    assert row[0] == "tiny"
    assert int(row[1]) >= 3  # requests
    total, *stages = (float(x) for x in row[2:])
    assert total > 0
    assert sum(stages) == pytest.approx(total, abs=0.01)  # means shown to the microsecond
