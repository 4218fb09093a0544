"""A real agent counts its infer requests per model version by outcome: answered, refused (the
request's fault: a corrupt picture) and failed (the kit's: ONNX Runtime failing on a real
picture), through both the full route and the short path, in /v1/metrics and /metrics; a model
that is not installed is never counted."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

from PIL import Image

from agent.wire import MAX_INT64, InferCounts
from app.fleet.deploy import async_deploy
from app.fleet.errors import Error
from app.fleet.inventory import Kit
from app.fleet.service import Fleet
from resources import datasets_dir
from tests.integration.conftest import AgentFactory
from tests.integration.helpers import raw_client
from tests.integration.rollout_fixtures import MODEL, version_failing_on_real_images


def _digit() -> bytes:
    picture = sorted((datasets_dir() / "digits-eval" / "3").glob("*.png"))[0]
    return picture.read_bytes()


def _grey_picture() -> bytes:
    """A picture whose normalised pixels average 0.5, as the kit's own seeded checks do: the
    failing version answers it."""
    buffer = io.BytesIO()
    Image.new("L", (32, 32), 191).save(buffer, "PNG")
    return buffer.getvalue()


async def _send(fleet: Fleet, kit: Kit, version: str, pictures: list[bytes]) -> list[str]:
    said = []
    async with fleet.client(kit) as client:
        for picture in pictures:
            try:
                await client.infer("digits-cnn", picture, "image/png", version=version)
                said.append("ok")
            except Error as exc:
                said.append(str(exc))
    return said


async def _counts(fleet: Fleet, kit: Kit) -> tuple[dict[str, InferCounts], float]:
    async with fleet.client(kit) as client:
        metrics = await client.metrics(since_seq=MAX_INT64, limit=1)
    return {c.version: c for c in metrics.infer_counts}, metrics.infer_counts_since


def test_requests_are_counted_per_version_as_answered_refused_or_failed(
    start_agent: AgentFactory, fleet: Fleet, adopt: Any, tmp_path: Path
) -> None:
    agent = start_agent("counted", mdns=False)
    kit = adopt(agent)
    bad = version_failing_on_real_images(tmp_path / "models", "1.5")
    for path, activate in ((MODEL, True), (bad, False)):
        [outcome] = asyncio.run(async_deploy(fleet, path, [kit], activate=activate))
        assert outcome.ok, outcome.message
    digit, corrupt = _digit(), b"\x89PNG\r\n\x1a\n" + b"not a picture" * 4
    said = asyncio.run(_send(fleet, kit, "1.0", [digit, digit, corrupt]))
    assert said[:2] == ["ok", "ok"], said
    said = asyncio.run(_send(fleet, kit, "1.5", [digit, digit, digit, corrupt, _grey_picture()]))
    assert said[4] == "ok", said  # the kit's own checks passed it: an input near theirs runs
    assert all(s != "ok" for s in said[:4]), said
    counts, since = asyncio.run(_counts(fleet, kit))
    base, failing = counts["1.0"], counts["1.5"]
    assert (base.answered, base.refused, base.failed, base.requests) == (2, 1, 0, 3)
    assert (failing.answered, failing.refused, failing.failed, failing.requests) == (1, 1, 3, 5)
    assert since > 0
    # a model that is not installed is refused and not counted (hostile names never grow the counts)
    with raw_client(agent, kit.token) as client:
        missing = client.post(
            "/v1/models/no-such-model/infer", content=digit, headers={"content-type": "image/png"}
        )
        assert missing.status_code == 404
        text = client.get("/metrics").text
    assert set(asyncio.run(_counts(fleet, kit))[0]) == {"1.0", "1.5"}
    lines = [x for x in text.splitlines() if x.startswith("kitfleet_infer_outcomes_total{")]
    labels = f'device_id="{kit.device_id}",model="digits-cnn",version="1.5",outcome="failed"'
    assert f"kitfleet_infer_outcomes_total{{{labels}}} 3" in lines, lines
    assert any('version="1.0",outcome="answered"} 2' in x for x in lines), lines
    assert any('version="1.5",outcome="refused"} 1' in x for x in lines), lines
