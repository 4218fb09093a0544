"""The app's signing key over its life (issue 22): rotated and pushed to the kits it can reach,
the old key kept for a kit not reached so bundles for it still verify, and dropped once no kit
trusts it; and the watched folder, which imports a bundle that appears in it (once)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from app.fleet.service import Fleet
from app.fleet.signing import load_or_create
from tests.integration.conftest import AgentFactory
from tests.integration.helpers import kitfleet, raw_client
from tests.integration.test_bundles_in import _active, _create, _db, _import, _model


def _signers(agent: Any) -> dict[str, str]:
    listed = json.loads(agent.run_cli("signers", "list", "--json"))
    return {s["key_id"]: ("revoked" if s["revoked_at"] else s["source"]) for s in listed}


def test_a_rotation_reaches_the_kits_it_can_and_keeps_the_old_key_for_the_others(
    start_agent: AgentFactory, adopt: Any, fleet: Fleet, tmp_path: Path
) -> None:
    near, far = start_agent("near", mdns=False), start_agent("far", mdns=False)
    near_kit, far_kit = adopt(near), adopt(far)
    first = load_or_create(fleet.settings.home).current.key_id
    far.stop()

    done = kitfleet(fleet.settings.home, "signer", "rotate", "--json")
    assert done.returncode == 1, "a kit was not reached: the command says so"
    rotation = json.loads(done.stdout)
    assert rotation["reached"] == ["near"]
    assert list(rotation["missed"]) == ["far"]
    second = rotation["key_id"]
    assert _signers(near) == {first: "revoked", second: "rotation"}
    with _db(near.data_dir) as conn:
        actions = [r[0] for r in conn.execute("SELECT action FROM audit WHERE action LIKE 'signer.%'")]
    assert actions == ["signer.trust", "signer.trust", "signer.revoke"]
    app_actions = [e.action for e in fleet.audit.entries()]
    assert "signer.rotate" in app_actions
    assert "signer.push" in app_actions

    work = tmp_path / "w"
    to_near = _create(fleet.settings.home, tmp_path / "n.kfb", near_kit.name, "--model", str(_model(work)))
    to_far = _create(fleet.settings.home, tmp_path / "f.kfb", far_kit.name, "--model", str(_model(work)))
    assert (to_near["signer"], to_far["signer"]) == (second, first)
    assert _import(near.data_dir, tmp_path / "n.kfb").returncode == 0
    assert _import(far.data_dir, tmp_path / "f.kfb").returncode == 0
    both = kitfleet(
        fleet.settings.home,
        "bundle",
        "create",
        "--out",
        str(tmp_path / "b.kfb"),
        "--kit",
        "near",
        "--kit",
        "far",
        "--rollback-to",
        "tiny",
        "1",
    )
    assert both.returncode == 1
    assert "different signing keys" in both.stderr

    far.start()
    again = json.loads(kitfleet(fleet.settings.home, "signer", "rotate", "--json").stdout)
    assert sorted(again["reached"]) == ["far", "near"]
    assert first not in [k.key_id for k in load_or_create(fleet.settings.home).retired], "no kit needs it"
    old = _import(far.data_dir, tmp_path / "f.kfb")
    assert old.returncode == 1, "a bundle signed by a revoked key is refused (and was imported already)"


def test_a_bundle_dropped_in_the_watched_folder_is_imported_once(
    start_agent: AgentFactory, adopt: Any, fleet: Fleet, tmp_path: Path
) -> None:
    stick = tmp_path / "stick"
    stick.mkdir()
    folder = tmp_path / "agents" / "kit"
    folder.mkdir(parents=True)
    (folder / "agent.json").write_text(json.dumps({"bundle_dir": str(stick), "bundle_poll_s": 0.2}))
    agent = start_agent("kit", mdns=False)
    kit = adopt(agent)
    _create(fleet.settings.home, stick / "work.kfb", kit.name, "--model", str(_model(tmp_path / "w")))
    deadline = time.monotonic() + 60
    while _active(agent.data_dir) != "1" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _active(agent.data_dir) == "1", agent.log_tail()
    time.sleep(1.0)  # several more looks at the folder
    with _db(agent.data_dir) as conn:
        assert [r[0] for r in conn.execute("SELECT outcome FROM bundle_imports")] == ["applied"]
    assert (stick / "work.kfb").exists(), "a watched folder's files are left where they are"
    with raw_client(agent, kit.token) as client:
        assert client.get("/v1/models/tiny").json()["versions"][0]["active"]


def test_enrolling_over_ssh_trusts_the_apps_key_as_provisioning_does(tmp_path: Path) -> None:
    from app.fleet.localagent import LocalAgent

    (tmp_path / "home").mkdir()
    key = load_or_create(tmp_path / "home").current
    agent = LocalAgent(tmp_path / "kit", "kit", mdns=False)
    agent.data_dir.mkdir(parents=True)
    enrolled = json.loads(agent.run_cli("enroll", "--app-id", "app-laptop", "--signer-key", key.public_b64))
    assert enrolled["signer_key_id"] == key.key_id  # what the provisioner checks before it records it
    assert _signers(agent) == {key.key_id: "provision"}
    with _db(agent.data_dir) as conn:
        actions = [r[0] for r in conn.execute("SELECT action FROM audit")]
    assert actions == ["kit.adopt", "signer.trust"]
