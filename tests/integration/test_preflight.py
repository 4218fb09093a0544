"""`kitfleet preflight` on three real kits, each with its own injected faults, and only those flagged."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

from agent.wire import JobRequest, ScheduleRequest
from app.fleet.deploy import async_deploy
from app.fleet.service import Fleet
from tests.integration.conftest import AgentFactory
from tests.integration.helpers import kitfleet, small_tmpfs
from tests.onnx_models import classifier


def _not_passed(kit: dict[str, Any]) -> dict[str, str]:
    return {c["id"]: c["status"] for c in kit["checks"] if c["status"] != "pass"}


def _check(kit: dict[str, Any], check_id: str) -> dict[str, Any]:
    return next(c for c in kit["checks"] if c["id"] == check_id)


def _deploy(fleet: Fleet, model: Path, kit: Any) -> None:
    [outcome] = asyncio.run(async_deploy(fleet, model, [kit], activate=True))
    assert outcome.ok, outcome.message


def test_preflight_flags_exactly_the_injected_faults(
    start_agent: AgentFactory, fleet: Fleet, adopt, tmp_path: Path
) -> None:
    model = tmp_path / "pkg" / "tiny.onnx"
    model.parent.mkdir()
    classifier(model)
    # bravo's clock runs two minutes ahead (the agent's test-only offset, from its agent.json)
    bravo_dir = tmp_path / "agents" / "bravo"
    bravo_dir.mkdir(parents=True)
    (bravo_dir / "agent.json").write_text(json.dumps({"test_clock_offset_s": 120}))
    with small_tmpfs(tmp_path, 24) as small:  # charlie lives on a small filesystem
        (tmp_path / "agents" / "charlie").symlink_to(small)
        (small / "agent.json").write_text(json.dumps({"disk_reserve_bytes": 1 << 20}))
        kits = {name: adopt(start_agent(name, mdns=False)) for name in ("alpha", "bravo", "charlie")}
        for kit in kits.values():
            _deploy(fleet, model, kit)
        # bravo: its serving model's file altered on disk after install
        installed = bravo_dir / "models" / "tiny" / "versions" / "1" / "model.onnx"
        data = bytearray(installed.read_bytes())
        data[-8:] = bytes(b ^ 0xFF for b in data[-8:])
        installed.write_bytes(bytes(data))
        # charlie: a scheduled stream from a camera that is not there, and a full disk
        stream = JobRequest(kind="stream", params={"model": "tiny", "source": "/dev/video97"})
        schedule = ScheduleRequest(name="dawn watch", cron="0 5 * * *", job=stream)
        asyncio.run(fleet.async_call(kits["charlie"], lambda c: c.create_schedule(schedule)))
        (small / "filler").write_bytes(b"\0" * max(shutil.disk_usage(small).free - (256 << 10), 0))

        done = kitfleet(fleet.settings.home, "preflight", "alpha", "bravo", "charlie", "--json")
        table = kitfleet(fleet.settings.home, "preflight", "alpha", "bravo", "charlie")
    assert done.returncode == 1, done.stderr
    answer = {k["kit"]: k for k in json.loads(done.stdout)}
    assert _not_passed(answer["alpha"]) == {}, answer["alpha"]
    assert answer["alpha"]["ready"] is True
    assert _not_passed(answer["bravo"]) == {"clock": "fail", "model:tiny": "fail"}
    assert "ahead" in _check(answer["bravo"], "clock")["message"]
    assert "timedatectl set-time" in _check(answer["bravo"], "clock")["action"]
    assert "changed since install" in _check(answer["bravo"], "model:tiny")["message"]
    assert "kitfleet models rollback KIT tiny" in _check(answer["bravo"], "model:tiny")["action"]
    assert _not_passed(answer["charlie"]) == {"disk": "fail", "source:/dev/video97": "fail"}
    assert "kitfleet models delete" in _check(answer["charlie"], "disk")["action"]
    assert "plug the camera in" in _check(answer["charlie"], "source:/dev/video97")["action"]
    # the table a technician reads, and each verdict in the app's audit log
    assert "alpha: READY at" in table.stdout
    assert "bravo: NOT READY at" in table.stdout
    assert "-> set the kit's clock" in table.stdout
    entries = [e for e in fleet.audit.entries() if e.action == "fleet.preflight"]
    assert {e.target: e.outcome for e in entries[-3:]} == {
        "alpha": "ready",
        "bravo": "not ready",
        "charlie": "not ready",
    }


def test_preflight_planned_model_and_missing_provider(
    start_agent: AgentFactory, fleet: Fleet, adopt, tmp_path: Path
) -> None:
    kit = adopt(start_agent("delta", mdns=False))
    big = tmp_path / "huge.onnx"  # sparse: as large as planned, without using the disk
    with big.open("wb") as sparse:
        sparse.truncate(shutil.disk_usage(tmp_path).free + (1 << 30))
    done = kitfleet(
        fleet.settings.home, "preflight", kit.name, "--for-model", str(big),
        "--provider", "NoSuchExecutionProvider", "--json",
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    [answer] = json.loads(done.stdout)
    assert _not_passed(answer) == {"disk": "fail", "provider": "warn", "models": "warn"}
    assert "short" in _check(answer, "disk")["message"]
    assert "NoSuchExecutionProvider not available" in _check(answer, "provider")["message"]
    assert "kitfleet facts KIT" in _check(answer, "provider")["action"]
    # the kit's own log holds the run, with what did not pass
    [entry] = [
        e for e in asyncio.run(fleet.async_call(kit, lambda c: c.audit())) if e.action == "kit.preflight"
    ]
    assert entry.detail["ready"] is False
    assert "disk: fail" in entry.detail["not_passed"]
    # the field report says when each kit was checked, by whom, and what was not ready
    out = tmp_path / "report.html"
    assert kitfleet(fleet.settings.home, "report", "--out", str(out), "--offline").returncode == 0
    page = out.read_text()
    assert "Pre-flight" in page
    assert "<b>not ready</b> at " in page
    assert "(disk: fail), checked by kitfleet (" in page


def test_set_clock_moves_a_skewed_kit_and_both_logs_record_it(
    start_agent: AgentFactory, fleet: Fleet, adopt, tmp_path: Path
) -> None:
    # echo's clock runs five minutes behind; foxtrot forbids clock changes; golf holds an operator
    # token. The test-offset control moves the agent's own offset, never this machine's clock.
    settings = {
        "echo": {"test_clock_offset_s": -300, "clock_control": "test-offset"},
        "foxtrot": {"test_clock_offset_s": 90, "clock_control": "off"},
        "golf": {"clock_control": "test-offset"},
    }
    for name, values in settings.items():
        (tmp_path / "agents" / name).mkdir(parents=True)
        (tmp_path / "agents" / name / "agent.json").write_text(json.dumps(values))
    echo, foxtrot = (adopt(start_agent(name, mdns=False)) for name in ("echo", "foxtrot"))
    golf = adopt(start_agent("golf", mdns=False), "operator")

    moved = kitfleet(fleet.settings.home, "set-clock", "echo", "--json")
    assert moved.returncode == 0, moved.stderr
    [echo_said] = json.loads(moved.stdout)
    assert echo_said["set"] is True
    assert echo_said["via"] == "test-offset"
    assert 290 < echo_said["adjusted_s"] < 310  # five minutes forward, give or take the transit
    again = kitfleet(fleet.settings.home, "preflight", "echo", "--quick", "--json")
    assert _check(json.loads(again.stdout)[0], "clock")["status"] == "pass"

    refused = kitfleet(fleet.settings.home, "set-clock", "foxtrot", "golf")
    assert refused.returncode == 1
    assert "foxtrot: not set: " in refused.stdout
    assert "clock_control is off" in refused.stdout
    assert "golf: not set: " in refused.stdout
    assert "needs an admin token" in refused.stdout

    kit_log = asyncio.run(fleet.async_call(echo, lambda c: c.audit()))
    [entry] = [e for e in kit_log if e.action == "kit.clock"]
    assert 290 < entry.detail["adjusted_s"] < 310
    [forbidden] = [
        e for e in asyncio.run(fleet.async_call(foxtrot, lambda c: c.audit())) if e.action == "kit.clock"
    ]
    assert forbidden.outcome.startswith("403")
    # the app's log names the same action, through the client's call hook
    mine = [(e.detail.get("kit"), e.outcome) for e in fleet.audit.entries() if e.action == "kit.clock"]
    assert ("echo", "ok") in mine
    assert ("foxtrot", "403 clock_off") in mine
    assert golf.scope == "operator"
    assert ("golf", "ok") not in mine
