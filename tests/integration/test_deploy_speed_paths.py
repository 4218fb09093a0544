"""The deploy's quick paths keep the deploy's guarantees: the sha256 summed as bytes arrive,
read again when the agent restarted mid-upload, and the checker process kept ready, which a
crash takes down alone and which never outlives its agent or idles on a kit."""

from __future__ import annotations

import asyncio
import io
import json
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import psutil

from agent.db import DB_FILE
from agent.wire import Manifest
from app.fleet.deploy import async_deploy
from app.fleet.localagent import LocalAgent
from app.fleet.service import Fleet
from tests.integration.conftest import AgentFactory
from tests.integration.helpers import pair, raw_client
from tests.onnx_models import classifier


def _upload_body(manifest: Manifest, activate: bool = True) -> dict[str, object]:
    return {"manifest": json.loads(manifest.model_dump_json()), "activate": activate}


def _checkers(agent: LocalAgent) -> list[psutil.Process]:
    """The agent's checker processes (`agent.models.verify`), waiting or checking."""
    assert agent.process is not None
    found = []
    for child in psutil.Process(agent.process.pid).children():
        try:
            if "agent.models.verify" in child.cmdline():
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


def _installed_line(agent: LocalAgent, version: str) -> str:
    [line] = [
        x for x in (agent.data_dir / "stderr.log").read_text().splitlines() if f" {version} installed" in x
    ]
    return line


def test_a_resumed_upload_is_summed_as_it_arrives_and_read_again_after_a_restart(
    start_agent: AgentFactory, fleet: Fleet, adopt, tmp_path: Path
) -> None:
    """Within one agent's life the sum covers the bytes as written, across PATCHes; after a
    kill -9 mid-upload the commit reads the file again, so a byte changed on the kit's disk
    while the agent was down is caught, and an intact resumed upload installs."""
    agent = start_agent("sums", mdns=False)
    kit = adopt(agent)
    model = tmp_path / "big.onnx"
    manifest = classifier(model, size=32, classes=64, version="1")
    data = model.read_bytes()
    half = len(data) // 2
    with raw_client(agent, kit.token) as client:
        upload = client.post("/v1/uploads", json=_upload_body(manifest)).json()
        for start, end in ((0, half), (half, len(data))):  # two requests, one running sum
            client.patch(
                f"/v1/uploads/{upload['upload_id']}",
                content=data[start:end],
                headers={"Upload-Offset": str(start)},
            ).raise_for_status()
        client.post(f"/v1/uploads/{upload['upload_id']}/commit").raise_for_status()
    assert "(sha256 as it arrived)" in _installed_line(agent, "1")

    for version, damage in (("2", True), ("3", False)):
        later = manifest.model_copy(update={"version": version})
        with raw_client(agent, kit.token) as client:
            upload = client.post("/v1/uploads", json=_upload_body(later)).json()
            client.patch(
                f"/v1/uploads/{upload['upload_id']}", content=data[:half], headers={"Upload-Offset": "0"}
            ).raise_for_status()
        agent.kill()  # kill -9 mid-upload: what the agent had summed is gone with it
        part = agent.data_dir / "models" / ".uploads" / f"{upload['upload_id']}.part"
        if damage:
            flipped = bytearray(part.read_bytes())
            flipped[100] ^= 0xFF
            part.write_bytes(bytes(flipped))
        agent.start()
        with raw_client(agent, kit.token) as client:
            resumed = client.patch(
                f"/v1/uploads/{upload['upload_id']}",
                content=data[half:],
                headers={"Upload-Offset": str(half)},
            )
            assert resumed.json()["offset"] == len(data), resumed.text
            committed = client.post(f"/v1/uploads/{upload['upload_id']}/commit")
        if damage:
            assert committed.status_code == 422, committed.text
            assert "sha256 mismatch" in committed.json()["message"]
            continue
        assert committed.status_code == 200, committed.text
        assert committed.json()["active_version"] == "3"
        assert "(sha256 read again)" in _installed_line(agent, "3")
    stored = agent.data_dir / "models" / "tiny" / "versions" / "3" / "model.onnx"
    assert stored.read_bytes() == data
    assert not (agent.data_dir / "models" / "tiny" / "versions" / "2").exists()


def _kill_the_checker_when_it_checks(agent: LocalAgent, upload_id: str, done: threading.Event) -> list[int]:
    """SIGSEGV to the checker once the commit has handed it the model, as a model that crashes
    ONNX Runtime would end it. Returns the pids it killed."""
    killed: list[int] = []
    while not done.is_set():
        with sqlite3.connect(agent.data_dir / DB_FILE) as db:
            row = db.execute("SELECT state FROM uploads WHERE id = ?", (upload_id,)).fetchone()
        if row and row[0] == "verifying":
            for checker in _checkers(agent):
                checker.send_signal(signal.SIGSEGV)
                killed.append(checker.pid)
            if killed:
                return killed
        time.sleep(0.002)
    return killed


def test_a_checker_that_crashes_leaves_the_agent_serving_and_the_next_deploy_works(
    start_agent: AgentFactory, fleet: Fleet, adopt, tmp_path: Path
) -> None:
    agent = start_agent("crash", mdns=False)
    kit = adopt(agent)
    good = tmp_path / "good" / "tiny.onnx"
    good.parent.mkdir()
    classifier(good, version="1")
    assert asyncio.run(async_deploy(fleet, good, [kit], activate=True))[0].ok
    assert not _checkers(agent), "each checker checks one model and exits; none idles after"
    big = tmp_path / "big.onnx"
    manifest = classifier(big, size=64, classes=800, version="2", golden=False)  # ~39 MB: seconds to load
    with raw_client(agent, kit.token) as client:
        upload_id = client.post("/v1/uploads", json=_upload_body(manifest)).json()["upload_id"]
        client.patch(
            f"/v1/uploads/{upload_id}", content=big.read_bytes(), headers={"Upload-Offset": "0"}
        ).raise_for_status()
        done = threading.Event()
        killed: list[int] = []
        killer = threading.Thread(
            target=lambda: killed.extend(_kill_the_checker_when_it_checks(agent, upload_id, done))
        )
        killer.start()
        try:
            refused = client.post(f"/v1/uploads/{upload_id}/commit")
        finally:
            done.set()
            killer.join()
        assert killed, "the checker was seen checking"
        assert refused.status_code == 422, refused.text
        assert "the checker died (signal SIGSEGV)" in refused.json()["message"]
        assert "serving version is unchanged" in refused.json()["hint"]
        [info] = client.get("/v1/models").json()
        assert info["active_version"] == "1"
        tensor = io.BytesIO()
        np.save(tensor, np.zeros((1, 3, 16, 16), np.float32))
        answer = client.post(
            "/v1/models/tiny/infer", content=tensor.getvalue(), headers={"Content-Type": "application/x-npy"}
        )
        assert answer.status_code == 200, answer.text
    assert agent.process is not None
    assert agent.process.poll() is None, "the agent lived through its checker's crash"
    [again] = asyncio.run(async_deploy(fleet, big, [fleet.inventory.get(kit.device_id)], activate=True))
    assert again.ok, again.message
    assert again.info is not None
    assert again.info.active_version == "2"
    assert not _checkers(agent)


def _held_upload(
    agent: LocalAgent,
    token: str,
    manifest: Manifest,
    data: bytes,
    sent: threading.Event,
    release: threading.Event,
) -> None:
    """PATCH half the model and hold the request open until `release` (or the agent dies)."""

    def body() -> Iterator[bytes]:
        yield data[: len(data) // 2]
        sent.set()
        release.wait(60)

    with raw_client(agent, token) as client:
        upload_id = client.post("/v1/uploads", json=_upload_body(manifest)).json()["upload_id"]
        try:
            client.patch(f"/v1/uploads/{upload_id}", content=body(), headers={"Upload-Offset": "0"})
        except httpx.TransportError:  # the agent is killed under the request
            return


def test_the_checker_kept_ready_starts_with_an_upload_and_dies_with_its_agent(
    start_agent: AgentFactory, tmp_path: Path
) -> None:
    agent = start_agent("lifeline", mdns=False)
    token = pair(agent)
    assert not _checkers(agent), "an idle kit keeps no checker"
    model = tmp_path / "tiny.onnx"
    manifest = classifier(model, size=32, classes=16)
    sent, release = threading.Event(), threading.Event()
    sender = threading.Thread(
        target=_held_upload, args=(agent, token, manifest, model.read_bytes(), sent, release)
    )
    sender.start()
    try:
        assert sent.wait(30)
        deadline = time.monotonic() + 30
        while not (checkers := _checkers(agent)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(checkers) == 1, "one checker is started while the model arrives"
        agent.kill()
        _gone, alive = psutil.wait_procs(checkers, timeout=30)
        assert not alive, "the checker kept ready dies with its agent (its life line ends)"
    finally:
        release.set()
        sender.join(30)
