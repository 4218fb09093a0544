"""Attacks on models, uploads and datasets (issue 15: 1, 10, 16, 18 and 19), each from outside a
real agent process on loopback, or through the real `kitfleet` CLI.

1.  A model whose tensors name another file (ONNX external data) would have ONNX Runtime read
    that file: the kit's TLS key, or another operator's upload. Refused on the kit before ONNX
    Runtime sees the file, wherever the tensor sits, and by `kitfleet deploy` before any byte
    leaves the laptop.
10. A 0.3 MiB gzip that expands to 300 MiB under a 1 MiB limit, a tar of many empty files, one
    that would not fit the disk, and a header claiming 300 MiB (which tarfile reads into memory):
    refused from the members' headers, before anything is unpacked or held.
16. A dataset or model chunk declared (Content-Length) larger than allowed: 413 from the headers.
18. A client that drops the link mid-upload: a warning, and an audit outcome that is not a 5xx.
19. A slow disk (a sync-mounted loop device throttled by the block layer): uploads to it do not
    stall /v1/health.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import shutil
import socket
import ssl
import subprocess
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import onnx
import psutil
import pytest
from onnx import TensorProto, helper

from agent.wire import InputSpec, Manifest
from app.fleet.localagent import LOOPBACK, LocalAgent
from app.fleet.service import Fleet
from tests.integration import conftest as integration
from tests.integration.conftest import AgentFactory
from tests.integration.helpers import kitfleet, pair, raw_client, small_tmpfs, tar_archive
from tests.integration.test_jobs_api import configure
from tests.lab.test_lab_hostile import RssSampler
from tests.onnx_models import classifier

start_agent = integration.start_agent  # the fixtures, by name
fleet, settings, adopt = integration.fleet, integration.settings, integration.adopt


def _upload_body(manifest: Manifest, activate: bool = False) -> dict[str, object]:
    return {"manifest": json.loads(manifest.model_dump_json()), "activate": activate}


def _tls_socket(agent: LocalAgent) -> ssl.SSLSocket:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # our own loopback agent
    raw = socket.create_connection((LOOPBACK, agent.port), timeout=10)
    return ctx.wrap_socket(raw, server_hostname="kit")


# --- 1. a model that names another file ----------------------------------------------------

_IMAGE = [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 8, 8])]
WHERE = ("initializer", "constant", "sparse", "subgraph", "function")


def _external(name: str, location: str, length: int) -> onnx.TensorProto:
    """A uint8 tensor whose bytes ONNX Runtime would read from `location`."""
    tensor = onnx.TensorProto(
        name=name, data_type=TensorProto.UINT8, dims=[length], data_location=TensorProto.EXTERNAL
    )
    for key, value in (("location", location), ("offset", "0"), ("length", str(length))):
        tensor.external_data.add(key=key, value=value)
    return tensor


def _leaky_graph(where: str, location: str, length: int) -> tuple[onnx.GraphProto, list[onnx.FunctionProto]]:
    """A raw model's graph whose output `leak` is the bytes of `location`, the pointer put `where`."""
    out = [helper.make_tensor_value_info("leak", TensorProto.UINT8, [length])]
    tensor = _external("secret", location, length)
    functions: list[onnx.FunctionProto] = []
    if where == "initializer":
        return helper.make_graph(
            [helper.make_node("Identity", ["secret"], ["leak"])], "g", _IMAGE, out, [tensor]
        ), functions
    if where == "constant":
        nodes = [helper.make_node("Constant", [], ["leak"], value=tensor)]
    elif where == "sparse":
        indices = helper.make_tensor("secret_at", TensorProto.INT64, [length], list(range(length)))
        graph = helper.make_graph([helper.make_node("Identity", ["secret"], ["leak"])], "g", _IMAGE, out)
        graph.sparse_initializer.append(helper.make_sparse_tensor(tensor, indices, [length]))
        return graph, functions
    elif where == "subgraph":

        def branch(name: str) -> onnx.GraphProto:
            return helper.make_graph(
                [helper.make_node("Identity", [f"s{name}"], [f"o{name}"])],
                name,
                [],
                [helper.make_tensor_value_info(f"o{name}", TensorProto.UINT8, [length])],
                [_external(f"s{name}", location, length)],
            )

        nodes = [helper.make_node("If", ["yes"], ["leak"], then_branch=branch("a"), else_branch=branch("b"))]
        flag = helper.make_tensor("yes", TensorProto.BOOL, [], [True])
        return helper.make_graph(nodes, "g", _IMAGE, out, [flag]), functions
    else:
        body = [helper.make_node("Constant", [], ["y"], value=tensor)]
        functions = [helper.make_function("kf", "read", [], ["y"], body, [helper.make_opsetid("", 13)])]
        nodes = [helper.make_node("read", [], ["leak"], domain="kf")]
    return helper.make_graph(nodes, "g", _IMAGE, out), functions


def leaky_model(
    path: Path, where: str, location: str, length: int, name: str = "leak", version: str = "1"
) -> Manifest:
    """A `raw` model that answers the bytes of another file through /infer."""
    graph, functions = _leaky_graph(where, location, length)
    opsets = [helper.make_opsetid("", 13)] + ([helper.make_opsetid("kf", 1)] if functions else [])
    model = helper.make_model(graph, opset_imports=opsets, functions=functions or None)
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    data = path.read_bytes()
    return Manifest(
        name=name,
        version=version,
        task="raw",
        input=InputSpec(name="image", height=8, width=8),
        sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
    )


def _send_model(client: httpx.Client, manifest: Manifest, data: bytes) -> httpx.Response:
    upload = client.post("/v1/uploads", json=_upload_body(manifest, activate=True))
    assert upload.status_code == 201, upload.text
    upload_id = upload.json()["upload_id"]
    client.patch(f"/v1/uploads/{upload_id}", content=data, headers={"Upload-Offset": "0"}).raise_for_status()
    return client.post(f"/v1/uploads/{upload_id}/commit")


def test_a_model_naming_another_file_is_refused_before_onnx_runtime_reads_it(
    start_agent: AgentFactory, tmp_path: Path
) -> None:
    agent = start_agent("leak", mdns=False)
    key = (agent.data_dir / "identity.key").read_bytes()
    uploads = agent.data_dir / "models" / ".uploads"
    with raw_client(agent, pair(agent)) as client:
        # another operator's model, half sent: its bytes sit beside any upload being verified
        victim = tmp_path / "victim.onnx"
        victim_manifest = classifier(victim, name="victim")
        victim_id = client.post("/v1/uploads", json=_upload_body(victim_manifest)).json()["upload_id"]
        client.patch(
            f"/v1/uploads/{victim_id}", content=victim.read_bytes()[:400], headers={"Upload-Offset": "0"}
        ).raise_for_status()
        key_up = ("the kit's TLS key", "../../identity.key", len(key))
        beside = ("another operator's upload", f"{victim_id}.part", 400)  # inside the folder
        cases = [(where, target) for where in WHERE for target in (key_up, beside)]
        cases.append(
            (
                "initializer",
                ("the kit's TLS key by its full path", str(agent.data_dir / "identity.key"), len(key)),
            )
        )
        answers = {}
        for n, (where, (target, location, length)) in enumerate(cases):
            model = tmp_path / f"leak-{n}.onnx"
            manifest = leaky_model(model, where, location, length, version=str(n + 1))
            answers[f"{where}, {target}"] = _send_model(client, manifest, model.read_bytes())
        # each refused by the kit's own check, before ONNX Runtime read anything
        wrong = {
            case: f"{answer.status_code} {answer.text[:160]}"
            for case, answer in answers.items()
            if answer.status_code != 422 or "in another file" not in answer.json()["message"]
        }
        assert not wrong, "\n".join(f"{case}: {said}" for case, said in wrong.items())
        answer = next(iter(answers.values())).json()
        assert "one file" in answer["message"], answer
        assert "serving version is unchanged" in answer["hint"], answer
        assert client.get("/v1/models").json() == [], "nothing was installed"
        tensor = io.BytesIO()
        np.save(tensor, np.zeros((1, 3, 8, 8), np.float32))
        infer = client.post(
            "/v1/models/leak/infer", content=tensor.getvalue(), headers={"Content-Type": "application/x-npy"}
        )
        assert infer.status_code == 404, "nothing was installed, so nothing answers the key"
        assert key not in infer.content
        # the victim's half-sent upload is untouched and still resumable
        assert client.get(f"/v1/uploads/{victim_id}").json()["offset"] == 400
    assert sorted(p.name for p in uploads.iterdir()) == [f"{victim_id}.part"]


def _external_export(folder: Path) -> Path:
    """A real export with its weights in a side file, as large models are saved, plus a manifest."""
    folder.mkdir()
    classifier(folder / "plain.onnx", name="side", golden=False)
    model = onnx.load(str(folder / "plain.onnx"))
    target = folder / "side.onnx"
    onnx.save_model(model, str(target), save_as_external_data=True, location="side.weights", size_threshold=0)
    data = target.read_bytes()
    manifest = Manifest.model_validate_json((folder / "plain.manifest.json").read_bytes())
    manifest.sha256, manifest.size_bytes = hashlib.sha256(data).hexdigest(), len(data)
    (folder / "side.manifest.json").write_text(manifest.model_dump_json())
    return target


def test_kitfleet_deploy_refuses_a_model_with_external_data_before_sending_it(
    start_agent: AgentFactory, fleet: Fleet, adopt, tmp_path: Path
) -> None:
    agent = start_agent("deploy-side", mdns=False)
    kit = adopt(agent)
    model = _external_export(tmp_path / "export")
    done = kitfleet(fleet.settings.home, "deploy", str(model), "--kit", kit.name, "--activate")
    assert done.returncode != 0, done.stdout
    said = done.stdout + done.stderr
    assert "side.weights" in said, said
    assert "another file" in said, said
    assert "onnx.save" in said or "one file" in said, f"says how to fix it: {said}"
    with raw_client(agent, kit.token) as client:
        actions = [entry["action"] for entry in client.get("/v1/audit").json()]
    assert "model.upload" not in actions, "nothing was sent to the kit"
    assert not list((agent.data_dir / "models" / ".uploads").iterdir())


# --- 10. archives that expand past the limits ----------------------------------------------


def _gzip_tar(members: dict[str, int]) -> bytes:
    """A gzipped tar of files of zeros (name → size), built without holding them in memory."""
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=9) as packed,
        tarfile.open(fileobj=packed, mode="w|") as tar,
    ):
        for name, size in members.items():
            info = tarfile.TarInfo(name)
            info.size = size
            tar.addfile(info, _Zeros(size))
    return buffer.getvalue()


class _Zeros(io.RawIOBase):
    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
        n = min(len(buffer), self.left)
        buffer[:n] = bytes(n)
        self.left -= n
        return n


def _header_bomb(size: int) -> bytes:
    """A gzipped tar whose first header is an extended (PAX) one claiming `size` bytes of records,
    which tarfile reads into memory whole before it can tell they are junk."""
    header = tarfile.TarInfo("././@PaxHeader")
    header.type, header.size = tarfile.XHDTYPE, size
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=9) as packed:
        packed.write(header.tobuf(tarfile.USTAR_FORMAT))
        for _ in range(size >> 20):
            packed.write(bytes(1 << 20))
    return buffer.getvalue()


def _unpacked_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def test_compressed_archives_are_measured_unpacked(start_agent: AgentFactory, tmp_path: Path) -> None:
    configure(tmp_path, "bomb", max_dataset_bytes=1 << 20, max_dataset_files=1000)
    agent = start_agent("bomb", mdns=False)
    datasets = agent.data_dir / "datasets"
    bomb = _gzip_tar({"zeros.png": 300 << 20})
    many = _gzip_tar({f"f/{n:05d}.png": 0 for n in range(5000)})
    header = _header_bomb(300 << 20)
    for archive in (bomb, many, header):
        assert len(archive) < 1 << 20, "each passes the archive limit as sent"
    assert agent.process is not None
    with raw_client(agent, pair(agent)) as client:
        big = client.put("/v1/datasets/bomb", content=bomb, timeout=60)
        files = client.put("/v1/datasets/many", content=many, timeout=60)
        before = psutil.Process(agent.process.pid).memory_info().rss
        with RssSampler(agent.process.pid) as rss:
            headers = client.put("/v1/datasets/header", content=header, timeout=60)
        fine = client.put("/v1/datasets/fine", content=_gzip_tar({"a.png": 600 << 10, "b/c.png": 10}))
        listed = [d["name"] for d in client.get("/v1/datasets").json()]
    assert big.status_code == 413, big.text[:300]
    assert big.json()["error"] == "dataset_too_large"
    assert "unpacks to" in big.json()["message"], big.json()
    assert files.status_code == 413, files.text[:300]
    assert "1000 files" in files.json()["message"], files.json()
    assert headers.status_code == 422, headers.text[:300]
    assert rss.peak - before < 64 << 20, f"a 300 MiB header grew the agent by {(rss.peak - before) >> 20} MiB"
    assert fine.status_code == 201, fine.text
    assert listed == ["fine"]
    assert _unpacked_bytes(datasets) == (600 << 10) + 10, "nothing of the refused archives is left"


def test_an_archive_that_would_not_fit_the_disk_is_refused_before_unpacking(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path, 16) as mount:
        agent = LocalAgent(mount / "kit", "tight", mdns=False)
        (mount / "kit").mkdir()
        (mount / "kit" / "agent.json").write_text(json.dumps({"disk_reserve_bytes": 1 << 20}))
        agent.start()
        try:
            with raw_client(agent, pair(agent)) as client:
                answer = client.put(
                    "/v1/datasets/huge", content=_gzip_tar({"zeros.png": 40 << 20}), timeout=60
                )
            assert answer.status_code == 507, answer.text[:300]
            assert answer.json()["error"] == "insufficient_storage", "refused before unpacking"
            assert not list((mount / "kit" / "datasets").iterdir())
            assert agent.health()["status"] == "ok"
        finally:
            agent.stop()


# --- 16. declared sizes refused from the headers -------------------------------------------


def _headers_only(agent: LocalAgent, head: str) -> bytes:
    """Send only a request's headers; what the agent answers within 5 s (b'' if nothing)."""
    with _tls_socket(agent) as sock:
        sock.sendall(head.encode())
        sock.settimeout(5)
        try:
            return sock.recv(64)
        except TimeoutError:
            return b""


def test_declared_sizes_over_the_limit_are_refused_from_the_headers(
    start_agent: AgentFactory, tmp_path: Path
) -> None:
    agent = start_agent("declared", mdns=False)
    token = pair(agent)
    manifest = classifier(tmp_path / "tiny.onnx")
    with raw_client(agent, token) as client:
        upload_id = client.post("/v1/uploads", json=_upload_body(manifest)).json()["upload_id"]
    auth = f"Host: kit\r\nAuthorization: Bearer {token}\r\n"
    dataset = _headers_only(
        agent,
        f"PUT /v1/datasets/huge HTTP/1.1\r\n{auth}"
        f"Content-Type: application/x-tar\r\nContent-Length: {2 << 30}\r\n\r\n",
    )
    assert dataset.startswith(b"HTTP/1.1 413"), f"2 GB dataset under a 1 GiB limit: {dataset!r}"
    chunk = _headers_only(
        agent,
        f"PATCH /v1/uploads/{upload_id} HTTP/1.1\r\n{auth}Upload-Offset: 0\r\n"
        f"Content-Length: {5 << 30}\r\n\r\n",
    )
    assert chunk.startswith(b"HTTP/1.1 413"), f"5 GiB for a {manifest.size_bytes}-byte model: {chunk!r}"
    assert not list((agent.data_dir / "datasets").iterdir())
    with raw_client(agent, token) as client:
        assert client.get(f"/v1/uploads/{upload_id}").json()["offset"] == 0
        sent = client.patch(
            f"/v1/uploads/{upload_id}",
            content=(tmp_path / "tiny.onnx").read_bytes(),
            headers={"Upload-Offset": "0"},
        )
        assert sent.status_code == 200, "an honest chunk still goes through"


# --- 18. a dropped upload is the resumable case, not a server error ------------------------


def _drop_after(agent: LocalAgent, head: str, sent: bytes) -> None:
    """Send the headers and part of the body, then vanish as a dropped link does."""
    sock = _tls_socket(agent)
    sock.sendall(head.encode() + sent)
    time.sleep(0.3)
    sock.close()


def test_a_dropped_upload_is_a_warning_not_a_server_error(start_agent: AgentFactory, tmp_path: Path) -> None:
    agent = start_agent("dropped", mdns=False)
    token = pair(agent)
    model = tmp_path / "big.onnx"
    manifest = classifier(model, size=64, classes=64, golden=False)
    with raw_client(agent, token) as client:
        upload_id = client.post("/v1/uploads", json=_upload_body(manifest)).json()["upload_id"]
    auth = f"Host: kit\r\nAuthorization: Bearer {token}\r\n"
    _drop_after(
        agent,
        f"PATCH /v1/uploads/{upload_id} HTTP/1.1\r\n{auth}Upload-Offset: 0\r\n"
        f"Content-Length: {manifest.size_bytes}\r\n\r\n",
        model.read_bytes()[:100_000],
    )
    archive = tar_archive({"a.png": b"x" * 200_000})
    _drop_after(
        agent,
        f"PUT /v1/datasets/cut HTTP/1.1\r\n{auth}Content-Length: {len(archive)}\r\n\r\n",
        archive[:100_000],
    )
    with raw_client(agent, token) as client:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            entries = [e for e in client.get("/v1/audit").json() if e["action"] == "dataset.upload"]
            if entries:
                break
            time.sleep(0.1)
        offset = client.get(f"/v1/uploads/{upload_id}").json()["offset"]
    assert entries, "the dropped dataset upload is audited"
    assert not entries[0]["outcome"].startswith("5"), f"not a server error: {entries[0]['outcome']}"
    assert 0 < offset <= 100_000, "the bytes that arrived are kept: the deploy resumes from there"
    log = (agent.data_dir / "stderr.log").read_text()
    assert "Traceback" not in log, log[-3000:]
    assert "Exception in ASGI application" not in log, log[-3000:]
    warnings = [line for line in log.splitlines() if " WARNING " in line and "dropped after" in line]
    assert len(warnings) == 2, log[-3000:]
    assert not list((agent.data_dir / "datasets").iterdir()), "no half dataset is left"


# --- 19. a slow disk does not stall the event loop -----------------------------------------

_THROTTLE_BPS = 64 << 10  # the slow disk's write bandwidth, bytes per second


@contextlib.contextmanager
def slow_disk(mount: Path, tmp_path: Path) -> Iterator[Path]:
    """An ext4 on a loop device, mounted `sync` at `mount`, so each write(2) reaches the device;
    yields the blkio cgroup whose members write to that device at _THROTTLE_BPS.

    Needs root, losetup, mkfs.ext4 and the cgroup-v1 blkio controller (this machine has it)."""
    blkio = Path("/sys/fs/cgroup/blkio")
    if os.geteuid() != 0 or not all(map(shutil.which, ("losetup", "mkfs.ext4", "mount"))):
        pytest.skip("a throttled loop device needs root, losetup, mkfs.ext4 and mount")
    if not (blkio / "blkio.throttle.write_bps_device").exists():
        pytest.skip("no cgroup-v1 blkio controller to throttle a device with")
    image = tmp_path / "slow.img"
    with image.open("wb") as handle:
        handle.truncate(64 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True, capture_output=True)
    loop = subprocess.run(
        ["losetup", "-f", "--show", str(image)], check=True, capture_output=True, text=True
    ).stdout.strip()
    group = blkio / f"kitfleet-slow-{os.getpid()}-{time.monotonic_ns()}"
    try:
        mount.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-o", "sync", loop, str(mount)], check=True)
        device = os.stat(loop).st_rdev
        group.mkdir()
        (group / "blkio.throttle.write_bps_device").write_text(
            f"{os.major(device)}:{os.minor(device)} {_THROTTLE_BPS}"
        )
        yield group
    finally:
        with contextlib.suppress(OSError):  # whoever is still throttled goes back, then the group
            for pid in (group / "cgroup.procs").read_text().split():
                (blkio / "cgroup.procs").write_text(pid)
            group.rmdir()
        subprocess.run(["umount", "-l", str(mount)], check=False)
        subprocess.run(["losetup", "-d", loop], check=False)


def _health_delays(agent: LocalAgent, stop: threading.Event, delays: list[float]) -> None:
    while not stop.is_set():
        start = time.monotonic()
        try:
            agent.health()
        except OSError:
            delays.append(float("inf"))
        else:
            delays.append(time.monotonic() - start)
        time.sleep(0.05)


@pytest.mark.parametrize("route", ["model", "dataset"])
def test_a_slow_disk_does_not_stall_other_requests(
    start_agent: AgentFactory, tmp_path: Path, route: str
) -> None:
    folder = "models" if route == "model" else "datasets"
    configure(tmp_path, "slow", disk_reserve_bytes=1 << 20)  # the slow disk is small
    data_dir = tmp_path / "agents" / "slow"
    with slow_disk(data_dir / folder, tmp_path) as group:
        agent = start_agent("slow", mdns=False)
        token = pair(agent)
        payload = os.urandom(384 << 10)  # six seconds of writing at the throttled rate
        with raw_client(agent, token) as client:
            if route == "model":
                manifest = Manifest(
                    name="blob",
                    version="1",
                    task="raw",
                    input=InputSpec(name="image", height=8, width=8),
                    sha256=hashlib.sha256(payload).hexdigest(),
                    size_bytes=len(payload),
                )
                upload_id = client.post("/v1/uploads", json=_upload_body(manifest)).json()["upload_id"]
            assert agent.process is not None
            (group / "cgroup.procs").write_text(str(agent.process.pid))  # the agent's disk is slow now
            stop, delays = threading.Event(), list[float]()
            prober = threading.Thread(target=_health_delays, args=(agent, stop, delays))
            prober.start()
            began = time.monotonic()
            try:
                if route == "model":
                    answer = client.patch(
                        f"/v1/uploads/{upload_id}",
                        content=payload,
                        headers={"Upload-Offset": "0"},
                        timeout=60,
                    )
                else:
                    answer = client.put(
                        "/v1/datasets/slow", content=tar_archive({"x.png": payload}), timeout=60
                    )
            finally:
                stop.set()
                prober.join()
            took = time.monotonic() - began
            assert answer.status_code in (200, 201), answer.text
        agent.stop()
    print(
        f"[lab] {route} upload to the slow disk: {took:.1f} s; /v1/health meanwhile: "
        f"{len(delays)} answers, median {sorted(delays)[len(delays) // 2]:.3f} s, "
        f"slowest {max(delays):.3f} s"
    )
    assert took > 3, f"the disk really was slow ({took:.1f} s for {len(payload) >> 10} KiB)"
    assert len(delays) >= 10, delays
    # before the writes left the event loop, health requests timed out (2 s) while the disk wrote;
    # a new TLS connection each time takes ~0.15 s here, more when the machine is busy
    assert max(delays) < 1.5, f"/v1/health stalled {max(delays):.2f} s while the upload wrote"
