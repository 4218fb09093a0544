"""Hardware gates (issue 21) against a real agent: the app refuses a kit whose facts miss the
manifest's `requires` before a byte is sent, `--force` installs and both audit logs say so, and
the kit refuses a gated model sent straight to its API, by its own live facts."""

from __future__ import annotations

import asyncio
import json
import platform
from collections.abc import Callable
from pathlib import Path

from agent.wire import Manifest, Requirements
from app.fleet.deploy import async_deploy
from app.fleet.inventory import Kit
from app.fleet.localagent import LocalAgent
from app.fleet.ops import FleetOps
from app.fleet.service import Fleet
from tests.integration.conftest import AgentFactory
from tests.integration.helpers import kitfleet, raw_client
from tests.onnx_models import classifier

# An architecture this machine is not: the gate cannot be met here, whatever the CPU.
ELSEWHERE = "riscv64" if platform.machine() != "riscv64" else "s390x"


def gated(tmp_path: Path, version: str = "1") -> tuple[Path, Manifest]:
    """A classifier whose manifest (beside it) requires another architecture and much RAM."""
    model = tmp_path / version / "tiny.onnx"
    model.parent.mkdir(parents=True)
    manifest = classifier(model, version=version)
    manifest.requires = Requirements(arch=[ELSEWHERE], min_memory_mb=1 << 30)
    model.with_name("tiny.manifest.json").write_text(manifest.model_dump_json(indent=2))
    return model, manifest


def test_deploy_refuses_a_kit_that_misses_the_gates_and_force_is_audited_on_both_sides(
    start_agent: AgentFactory, fleet: Fleet, adopt: Callable[[LocalAgent], Kit], tmp_path: Path
) -> None:
    kit = adopt(start_agent("gated", mdns=False))
    model, _ = gated(tmp_path)

    [refused] = asyncio.run(async_deploy(fleet, model, [kit], activate=True))
    assert not refused.ok
    assert refused.message.startswith("refused: tiny 1 needs what gated lacks")
    assert f"architecture: needs {ELSEWHERE}, the kit is {platform.machine()}" in refused.message
    assert any(g.startswith("memory: needs 1073741824 MiB of RAM") for g in refused.gates)
    assert asyncio.run(fleet.async_call(kit, lambda c: c.models())) == []  # nothing was sent
    [entry] = [e for e in fleet.audit.entries(kit.device_id) if e.action == "model.gates"]
    assert (entry.outcome, entry.target) == ("refused", "tiny 1")
    assert entry.detail["unmet"] == list(refused.gates)

    said = kitfleet(fleet.settings.home, "deploy", str(model), "--kit", "gated", "--activate")
    assert said.returncode == 1
    refusal = f"REFUSED gated: refused: tiny 1 needs what gated lacks: architecture: needs {ELSEWHERE}"
    assert refusal in said.stdout

    forced = kitfleet(fleet.settings.home, "deploy", str(model), "--kit", "gated", "--activate", "--force")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert "FORCED gated: tiny 1 active (forced past its gates)" in forced.stdout
    [info] = asyncio.run(fleet.async_call(kit, lambda c: c.models()))
    assert info.active_version == "1"

    app_log = fleet.audit.entries(kit.device_id)
    assert [e.outcome for e in app_log if e.action == "model.gates"] == ["refused", "refused", "forced"]
    [upload] = [e for e in app_log if e.action == "model.upload"]
    assert upload.detail["force"] is True
    assert upload.detail["gates_overridden"][0].startswith(f"architecture: needs {ELSEWHERE}")

    asyncio.run(FleetOps(fleet).async_poll())
    [on_kit] = [e for e in fleet.audit.kit_entries(kit.device_id) if e.action == "model.upload"]
    assert on_kit.outcome == "ok"
    assert on_kit.detail["force"] is True
    overridden = str(on_kit.detail["gates_overridden"])  # the kit keeps long values as clipped text
    assert f"architecture: needs {ELSEWHERE}, the kit is {platform.machine()}" in overridden
    assert "memory: needs 1073741824 MiB of RAM, the kit has" in overridden  # its own live reading


def test_the_kit_refuses_a_gated_model_sent_straight_to_its_api(
    start_agent: AgentFactory, fleet: Fleet, adopt: Callable[[LocalAgent], Kit], tmp_path: Path
) -> None:
    agent = start_agent("direct", mdns=False)
    kit = adopt(agent)
    _, manifest = gated(tmp_path)
    body = {"manifest": json.loads(manifest.model_dump_json()), "activate": True}
    with raw_client(agent, kit.token) as client:
        answer = client.post("/v1/uploads", json=body)
        assert answer.status_code == 409, answer.text
        refusal = answer.json()
        assert refusal["error"] == "requirements_not_met"
        assert f"architecture: needs {ELSEWHERE}, the kit is {platform.machine()}" in refusal["message"]
        assert "--force" in refusal["hint"]

        met = manifest.model_copy(update={"requires": Requirements(arch=[platform.machine()])})
        started = client.post("/v1/uploads", json={"manifest": json.loads(met.model_dump_json())})
        assert started.status_code == 201, started.text
        assert started.json()["gates_overridden"] == []

        forced = client.post("/v1/uploads", json={**body, "force": True})
        assert forced.status_code == 201, forced.text
        assert len(forced.json()["gates_overridden"]) == 2
