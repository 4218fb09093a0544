"""A rollout's soak counts the canary's real infer requests (issue 21): a version that passes
the kit's install checks and benchmark but fails on real pictures trips `--max-error-rate` and
is rolled back, the rest never activated; pictures refused as the client's fault do not."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from app.fleet.errors import Error
from app.fleet.rollout import Event, Plan, RolloutStore, async_start
from app.fleet.rollout.infer_rate import INFER_AT_ACTIVATION
from app.fleet.rollout.record import Thresholds
from app.fleet.service import Fleet
from resources import datasets_dir
from tests.integration.conftest import AgentFactory
from tests.integration.rollout_fixtures import (
    BASE_VERSION,
    installed,
    serve_base,
    serving,
    version_failing_on_real_images,
    version_of_digits,
)

CORRUPT = b"\x89PNG\r\n\x1a\n" + b"not a picture" * 4


def _digits(count: int) -> list[bytes]:
    folders = sorted(p for p in (datasets_dir() / "digits-eval").iterdir() if p.is_dir())
    return [sorted(f.glob("*.png"))[0].read_bytes() for f in folders[:count]]


def _rollout(fleet: Fleet, model: Path, names: list[str], pictures: list[bytes]) -> tuple[Any, list[str]]:
    """Roll `model` out with the canary answering `pictures` once it serves the new version;
    returns the rollout and what each request got. The requests run in a thread of their own,
    with their own loop, and the engine waits for them: all are sent before the soak begins."""
    kits = {k.name: k for k in fleet.inventory.kits()}
    said: list[str] = []
    ran: list[bool] = []

    async def use_it() -> None:  # a client of the canary, sending real pictures
        async with fleet.client(kits[names[0]]) as client:
            for picture in pictures:
                try:
                    await client.infer("digits-cnn", picture, "image/png")
                    said.append("ok")
                except Error as exc:
                    said.append(str(exc))

    def follow(event: Event) -> None:  # on the engine's loop
        if event.kit == names[0] and event.text.startswith("serving "):
            client = threading.Thread(target=lambda: asyncio.run(use_it()))
            client.start()
            client.join()
            ran.append(True)

    plan = Plan(
        model=model,
        kits=[kits[n] for n in names],
        canaries=[names[0]],
        soak_s=1,
        thresholds=Thresholds(max_error_rate=0.1, max_latency_ratio=50.0, latency_slack_ms=500.0),
    )
    rollout = asyncio.run(async_start(fleet, plan, follow))
    assert ran == [True]
    return rollout, said


def test_a_canary_failing_on_real_pictures_trips_the_infer_error_rate_and_is_rolled_back(
    start_agent: AgentFactory, fleet: Fleet, adopt: Any, tmp_path: Path
) -> None:
    kits = [adopt(start_agent(name, mdns=False)) for name in ("canary", "later")]
    serve_base(fleet, kits)
    bad = version_failing_on_real_images(tmp_path / "models", "1.5")
    rollout, said = _rollout(fleet, bad, ["canary", "later"], _digits(4))
    assert len(said) == 4, said
    assert all(s != "ok" for s in said), said  # ONNX Runtime failed on each picture
    assert rollout.phase == "failed", rollout.reason
    states = {k.name: k.state for k in rollout.kits}
    assert states == {"canary": "rolled-back", "later": "uploaded"}
    canary = rollout.kit(kits[0].device_id)
    assert "4 of 4 infer requests failed on digits-cnn 1.5" in canary.detail, canary.detail
    assert "allowed 10%" in canary.detail
    assert INFER_AT_ACTIVATION in canary.checks
    assert serving(fleet, kits[0]) == BASE_VERSION
    assert serving(fleet, kits[1]) == BASE_VERSION
    assert "1.5" in installed(fleet, kits[1])
    [stored] = RolloutStore(fleet.inventory).all()
    assert stored.phase == "failed"


def test_pictures_refused_as_the_clients_fault_do_not_fail_a_good_canary(
    start_agent: AgentFactory, fleet: Fleet, adopt: Any, tmp_path: Path
) -> None:
    kits = [adopt(start_agent("solo", mdns=False))]
    serve_base(fleet, kits)
    good = version_of_digits(tmp_path / "models", "1.6")
    rollout, said = _rollout(fleet, good, ["solo"], [*_digits(2), CORRUPT, CORRUPT])
    assert said[:2] == ["ok", "ok"], said
    assert all(s != "ok" for s in said[2:]), said
    assert rollout.phase == "done", rollout.reason
    [solo] = rollout.kits
    assert solo.state == "passed"
    assert "0 of 2 infer requests failed (2 refused as the client's fault)" in solo.detail, solo.detail
    assert serving(fleet, kits[0]) == "1.6"
