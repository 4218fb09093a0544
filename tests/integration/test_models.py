"""Model packages against a real agent: deploy, resume, verify, activate, rollback, refuse."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from agent.wire import Manifest
from app.fleet.deploy import Progress, async_deploy, async_prepare
from app.fleet.errors import AgentError
from app.fleet.models import ModelPackageError, load_package
from app.fleet.service import Fleet
from tests.integration.conftest import AgentFactory
from tests.integration.helpers import kitfleet, pair, raw_client, small_tmpfs
from tests.onnx_models import classifier


def _upload_body(manifest: Manifest, activate: bool = False) -> dict[str, object]:
    return {"manifest": json.loads(manifest.model_dump_json()), "activate": activate}


def test_deploy_activate_rollback_delete(
    start_agent: AgentFactory, fleet: Fleet, adopt, tmp_path: Path
) -> None:
    agent = start_agent("models", mdns=False)
    kit = adopt(agent)
    v1 = tmp_path / "v1" / "tiny.onnx"
    v2 = tmp_path / "v2" / "tiny.onnx"
    v1.parent.mkdir()
    v2.parent.mkdir()
    classifier(v1, version="1", seed=1)
    classifier(v2, version="2", seed=2)
    seen: list[Progress] = []
    [one] = asyncio.run(async_deploy(fleet, v1, [kit], activate=True, progress=seen.append))
    assert one.ok, one.message
    assert one.info is not None
    assert one.info.active_version == "1"
    assert seen[-1].stage == "done"
    [two] = asyncio.run(async_deploy(fleet, v2, [kit], activate=True))
    assert two.info is not None
    assert (two.info.active_version, two.info.previous_version) == ("2", "1")

    with pytest.raises(AgentError, match="serving version"):
        asyncio.run(fleet.async_call(kit, lambda c: c.delete_version("tiny", "2")))
    info = asyncio.run(fleet.async_call(kit, lambda c: c.rollback("tiny")))
    assert (info.active_version, info.previous_version) == ("1", "2")
    asyncio.run(fleet.async_call(kit, lambda c: c.delete_version("tiny", "2")))
    [after] = asyncio.run(fleet.async_call(kit, lambda c: c.models()))
    assert [v.version for v in after.versions] == ["1"]
    assert after.active_version == "1"
    assert after.previous_version is None

    listed = kitfleet(fleet.settings.home, "models", "list", "models")
    assert listed.returncode == 0, listed.stderr
    assert "* tiny" in listed.stdout


def test_deploying_the_same_package_twice_is_one_install(
    start_agent: AgentFactory, fleet: Fleet, adopt, tmp_path: Path
) -> None:
    kit = adopt(start_agent("twice", mdns=False))
    model = tmp_path / "tiny.onnx"
    classifier(model)
    for _ in range(2):
        [outcome] = asyncio.run(async_deploy(fleet, model, [kit], activate=True))
        assert outcome.ok, outcome.message
    [info] = asyncio.run(fleet.async_call(kit, lambda c: c.models()))
    assert len(info.versions) == 1


def test_an_interrupted_upload_resumes_and_is_never_served(
    start_agent: AgentFactory, fleet: Fleet, adopt, tmp_path: Path
) -> None:
    agent = start_agent("resume", mdns=False)
    kit = adopt(agent)
    model = tmp_path / "big.onnx"
    manifest = classifier(model, size=64, classes=64, golden=False)
    data = model.read_bytes()
    half = len(data) // 2
    with raw_client(agent, kit.token) as client:
        upload = client.post("/v1/uploads", json=_upload_body(manifest, activate=True)).json()
        sent = client.patch(
            f"/v1/uploads/{upload['upload_id']}", content=data[:half], headers={"Upload-Offset": "0"}
        )
        assert sent.json()["offset"] == half
        early = client.post(f"/v1/uploads/{upload['upload_id']}/commit")
        assert early.status_code == 409
        assert early.json()["error"] == "upload_incomplete"
        wrong = client.patch(
            f"/v1/uploads/{upload['upload_id']}", content=b"x", headers={"Upload-Offset": "0"}
        )
        assert wrong.status_code == 409
        assert wrong.headers["upload-offset"] == str(half)
        assert client.get("/v1/models").json() == []
    agent.stop()  # the link and the agent go away mid-upload
    agent.start()
    seen: list[Progress] = []
    [outcome] = asyncio.run(
        async_deploy(fleet, model, [fleet.inventory.get(kit.device_id)], activate=True, progress=seen.append)
    )
    assert outcome.ok, outcome.message
    uploading = [p.sent for p in seen if p.stage == "uploading"]
    assert uploading[0] == half, "the resumed deploy starts where the link dropped"
    assert outcome.info is not None
    assert outcome.info.active_version == "1"
    stored = next((agent.data_dir / "models" / "tiny" / "versions").glob("1/model.onnx"))
    assert stored.read_bytes() == data
    assert not list((agent.data_dir / "models" / ".uploads").iterdir())


@pytest.mark.parametrize("defect", ["not-onnx", "sha256", "input-size", "labels", "golden"])
def test_a_bad_model_never_replaces_the_serving_one(
    start_agent: AgentFactory, fleet: Fleet, adopt, tmp_path: Path, defect: str
) -> None:
    agent = start_agent("defects", mdns=False)
    kit = adopt(agent)
    good = tmp_path / "good.onnx"
    classifier(good, version="1")
    assert asyncio.run(async_deploy(fleet, good, [kit], activate=True))[0].ok
    bad = tmp_path / "bad.onnx"
    manifest = classifier(bad, version="2", seed=5)
    if defect == "not-onnx":
        bad.write_bytes(b"this is not a model " * 100)
        manifest.size_bytes = bad.stat().st_size
        manifest.sha256 = __import__("hashlib").sha256(bad.read_bytes()).hexdigest()
    elif defect == "sha256":
        manifest.sha256 = "0" * 64
    elif defect == "input-size":
        manifest.input.height = 17
    elif defect == "labels":
        manifest.labels = ["only", "three", "labels"]
    elif defect == "golden":
        assert manifest.golden is not None
        manifest.golden.outputs = {"scores": [0.5, 0.5, 0.5, 0.5]}
    with raw_client(agent, kit.token) as client:
        upload = client.post("/v1/uploads", json=_upload_body(manifest, activate=True)).json()
        client.patch(
            f"/v1/uploads/{upload['upload_id']}", content=bad.read_bytes(), headers={"Upload-Offset": "0"}
        )
        refused = client.post(f"/v1/uploads/{upload['upload_id']}/commit")
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"] == "verification_failed"
        assert "serving version is unchanged" in refused.json()["hint"]
        [info] = client.get("/v1/models").json()
    assert info["active_version"] == "1"
    assert [v["version"] for v in info["versions"]] == ["1"]


def test_a_manifest_that_does_not_match_its_file_is_refused_on_the_laptop(tmp_path: Path) -> None:
    model = tmp_path / "tiny.onnx"
    classifier(model)
    model.write_bytes(model.read_bytes() + b"\0")
    with pytest.raises(ModelPackageError, match="changed after the manifest"):
        load_package(model)
    (tmp_path / "tiny.manifest.json").unlink()
    with pytest.raises(ModelPackageError, match="no manifest"):
        load_package(model)


def test_a_file_changed_after_its_manifest_is_sent_while_hashed_and_never_committed(
    start_agent: AgentFactory, fleet: Fleet, adopt, tmp_path: Path
) -> None:
    """The laptop hashes a model with its manifest while its bytes go out (issue 19): a file
    whose bytes are not the ones its manifest names is refused, its upload let go on the kit,
    and the serving version stays, by `kitfleet deploy` as by the window's path."""
    agent = start_agent("changed", mdns=False)
    kit = adopt(agent)
    good, changed = tmp_path / "good" / "big.onnx", tmp_path / "changed" / "big.onnx"
    for path, seed in ((good, 1), (changed, 2)):
        path.parent.mkdir()
        classifier(path, name="big", size=64, classes=400, seed=seed, golden=False)  # 19 MB
    [first] = asyncio.run(async_deploy(fleet, good, [kit], activate=True))
    assert first.ok, first.message
    manifest = Manifest.model_validate_json((good.parent / "big.manifest.json").read_bytes())
    (changed.parent / "big.manifest.json").write_text(
        manifest.model_copy(update={"version": "2"}).model_dump_json()
    )
    assert changed.stat().st_size == good.stat().st_size, "only the sha256 tells them apart"

    seen: list[Progress] = []
    with pytest.raises(ModelPackageError, match="changed after the manifest"):
        asyncio.run(async_deploy(fleet, changed, [kit], activate=True, progress=seen.append))
    assert seen[-1].stage == "failed"
    assert "changed after the manifest" in seen[-1].message
    done = kitfleet(fleet.settings.home, "deploy", str(changed), "--kit", kit.name, "--activate")
    assert done.returncode != 0, done.stderr
    assert "changed after the manifest" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr

    with raw_client(agent, kit.token) as client:
        [info] = client.get("/v1/models").json()
        actions = [entry["action"] for entry in client.get("/v1/audit").json()]
    assert info["active_version"] == "1"
    assert [v["version"] for v in info["versions"]] == ["1"]
    assert "model.upload_abort" in actions, actions
    assert actions.count("model.deploy") == 1, "only the good file was committed"
    assert not list((agent.data_dir / "models" / ".uploads").iterdir()), "the kit let the bytes go"


def test_a_model_deleted_as_it_is_deployed_is_a_clear_refusal(
    start_agent: AgentFactory, fleet: Fleet, adopt, tmp_path: Path
) -> None:
    kit = adopt(start_agent("deleted", mdns=False))
    model = tmp_path / "gone.onnx"
    classifier(model, name="gone")

    async def deploy() -> None:
        package = await async_prepare(model)  # the manifest read, the file about to be sent
        model.unlink()
        await async_deploy(fleet, model, [kit], activate=True, package=package)

    with pytest.raises(ModelPackageError, match=r"gone\.onnx could not be read"):
        asyncio.run(deploy())
    assert asyncio.run(fleet.async_call(kit, lambda c: c.models())) == []


@pytest.mark.parametrize(
    "name", ["../etc", "..%2F..%2Fetc", "%2e%2e", "/abs", "a\\b", "a%00b", "UPPER", "x" * 65]
)
def test_path_traversal_in_model_names_is_refused(start_agent: AgentFactory, name: str) -> None:
    agent = start_agent("traversal", mdns=False)
    token = pair(agent)
    with raw_client(agent, token) as client:
        for method, path in (
            ("GET", f"/v1/models/{name}"),
            ("POST", f"/v1/models/{name}/rollback"),
            ("DELETE", f"/v1/models/{name}/versions/1"),
            ("DELETE", f"/v1/models/tiny/versions/{name}"),
        ):
            response = client.request(method, path)
            assert 400 <= response.status_code < 500, (method, path, response.status_code)
        manifest = {
            "name": name,
            "version": "1",
            "task": "raw",
            "sha256": "0" * 64,
            "size_bytes": 10,
            "input": {"name": "x", "height": 1, "width": 1},
        }
        assert client.post("/v1/uploads", json={"manifest": manifest}).status_code == 422
    outside = {p.name for p in agent.data_dir.parent.iterdir()}
    assert outside == {"traversal"}


def test_oversized_model_is_refused_before_any_byte(
    start_agent: AgentFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KITFLEET_AGENT_MAX_MODEL_BYTES", "10000")
    agent = start_agent("oversized", mdns=False)
    manifest = classifier(tmp_path / "tiny.onnx")
    with raw_client(agent, pair(agent)) as client:
        refused = client.post("/v1/uploads", json=_upload_body(manifest))
    assert refused.status_code == 413
    assert "at most 10000" in refused.json()["message"]


def test_viewer_cannot_deploy(start_agent: AgentFactory, tmp_path: Path) -> None:
    agent = start_agent("viewer", mdns=False)
    manifest = classifier(tmp_path / "tiny.onnx")
    with raw_client(agent, pair(agent, "viewer")) as client:
        assert client.post("/v1/uploads", json=_upload_body(manifest)).status_code == 403
        assert client.get("/v1/models").status_code == 200


def test_deploy_to_an_offline_kit_reports_it_and_others_continue(
    start_agent: AgentFactory, fleet: Fleet, adopt, tmp_path: Path
) -> None:
    online = adopt(start_agent("online", mdns=False))
    gone_agent = start_agent("gone", mdns=False)
    gone = adopt(gone_agent)
    gone_agent.stop()
    model = tmp_path / "tiny.onnx"
    classifier(model)
    outcomes = {o.kit.name: o for o in asyncio.run(async_deploy(fleet, model, [online, gone], True))}
    assert outcomes["online"].ok
    assert not outcomes["gone"].ok
    assert "unreachable" in outcomes["gone"].message
    assert "run deploy again to resume" in outcomes["gone"].message


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 16 MiB tmpfs made by the test (needs root)."""
    with small_tmpfs(tmp_path, 16) as mount:
        yield mount


def test_disk_full_during_upload_is_clear_and_resumes_after_space_is_freed(
    small_disk: Path, fleet: Fleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.fleet.localagent import LocalAgent

    monkeypatch.setenv("KITFLEET_AGENT_DISK_RESERVE_BYTES", str(256 << 10))
    agent = LocalAgent(small_disk / "kit", "full", mdns=False).start()
    try:
        kit = asyncio.run(fleet.async_adopt(agent.address, agent.pair_code()))
        small = tmp_path / "v1" / "tiny.onnx"
        small.parent.mkdir()
        classifier(small, version="1")
        assert asyncio.run(async_deploy(fleet, small, [kit], activate=True))[0].ok
        big = tmp_path / "big.onnx"
        manifest = classifier(big, version="2", size=64, classes=64, golden=False)
        with raw_client(agent, kit.token) as client:
            upload = client.post("/v1/uploads", json=_upload_body(manifest, activate=True)).json()
            filler = small_disk / "filler"
            free = __import__("shutil").disk_usage(small_disk).free
            filler.write_bytes(b"\0" * (free - manifest.size_bytes // 2))
            full = client.patch(
                f"/v1/uploads/{upload['upload_id']}", content=big.read_bytes(), headers={"Upload-Offset": "0"}
            )
            assert full.status_code == 507, full.text
            assert "disk is full" in full.json()["message"]
            assert client.get("/v1/models/tiny").json()["active_version"] == "1"
        filler.unlink()
        [outcome] = asyncio.run(async_deploy(fleet, big, [kit], activate=True))
        assert outcome.ok, outcome.message
        assert outcome.info is not None
        assert outcome.info.active_version == "2"
    finally:
        agent.stop()
