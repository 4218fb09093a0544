"""Attacks on job submission and stream sources (issue 15: 3, 7, 8 and 9), on real agents.

3.  An operator races its own idempotent resubmission of an admin's key against deleting that
    job, hoping for an unchecked `command` job; and a command job planted in the database with
    operator scope (or none: an old row) or queued by a since-revoked admin must not run.
7.  Stream sources aimed at the kit itself (loopback in every spelling, link-local metadata,
    the agent's own port) are refused at submit, nothing connects to a listening socket there,
    and connection failures all read the same.
8.  A camera password in a stream URL never reaches a viewer, an error, a log, the audit log or
    any file in the data dir, except the 0600 secrets store.
9.  A dataset's HLS playlist or ffconcat list cannot make FFmpeg read a video outside the roots.

Every socket here is on loopback (127.0.0.0/8 or ::1); every loop is bounded in count and time.
"""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import socket
import sqlite3
import stat
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import pytest

from app.fleet.localagent import LocalAgent
from tests.integration import conftest as integration
from tests.integration.conftest import AgentFactory, free_port
from tests.integration.helpers import device_id, pair_body, raw_client, tar_archive
from tests.integration.test_jobs_api import FINISHED, wait
from tests.integration.test_stream import DETECTOR, deploy_detector
from tests.videos import write_video

PY = sys.executable
start_agent = integration.start_agent  # the fixture, by name
ALLOWED_HOST = "127.0.0.2"  # a loopback address standing in for a LAN camera the admin allowed


def pair_as(agent: LocalAgent, scope: str) -> tuple[str, str]:
    """(token, token_id) for a new app paired with `scope`."""
    with raw_client(agent) as client:
        response = client.post("/v1/pair", json=pair_body(agent.pair_code(), device_id(agent), scope))
    response.raise_for_status()
    body = response.json()
    return str(body["token"]), str(body["token_id"])


def kit_settings(agent_dir: Path, **settings: Any) -> None:
    agent_dir.mkdir(parents=True, exist_ok=True)
    (agent_dir / "agent.json").write_text(json.dumps(settings))


@pytest.fixture
def allowed_host(monkeypatch: pytest.MonkeyPatch) -> str:
    """Agents started by the test allow ALLOWED_HOST as a stream source (given in the environment,
    which an agent that does not know the setting ignores)."""
    monkeypatch.setenv("KITFLEET_AGENT_ALLOWED_STREAM_HOSTS", ALLOWED_HOST)
    return ALLOWED_HOST


# --- 3. command jobs only from admins, checked where the job is made and where it starts -----


def _marker_command(folder: Path, name: str) -> list[str]:
    """A command that leaves `folder/name` behind if it ever runs."""
    return [PY, "-c", f"open({str(folder / name)!r}, 'w').close()"]


def test_an_operator_racing_a_key_against_its_deletion_never_gets_a_command_job(
    start_agent: AgentFactory, tmp_path: Path
) -> None:
    kit_settings(tmp_path / "agents" / "race", jobs_allowed_commands=[PY])
    agent = start_agent("race", mdns=False)
    ran = tmp_path / "ran"
    ran.mkdir()
    admin_token, _ = pair_as(agent, "admin")
    operator_token, _ = pair_as(agent, "operator")
    admin_jobs: set[str] = set()
    created: list[dict[str, Any]] = []
    clients = [raw_client(agent, operator_token) for _ in range(6)]
    stop = threading.Event()

    def lean_on_the_database() -> None:  # other readers make the submit wait between its steps
        with raw_client(agent, operator_token) as reader:
            while not stop.is_set():
                reader.get("/v1/jobs", params={"limit": 5})

    readers = [threading.Thread(target=lean_on_the_database, daemon=True) for _ in range(2)]
    for reader in readers:
        reader.start()
    deadline = time.monotonic() + 40
    rounds = 0
    try:
        with raw_client(agent, admin_token) as admin, ThreadPoolExecutor(len(clients) + 1) as pool:
            while rounds < 150 and time.monotonic() < deadline:
                rounds += 1
                key = f"nightly-{rounds}"
                first = admin.post(
                    "/v1/jobs",
                    json={
                        "kind": "command",
                        "params": {"argv": [PY, "-c", "pass"]},
                        "idempotency_key": key,
                        "not_before": time.time() + 3600,
                    },
                )
                assert first.status_code == 201, first.text
                job_id = first.json()["job_id"]
                admin_jobs.add(job_id)
                assert clients[0].post(f"/v1/jobs/{job_id}/cancel").status_code == 200
                body = {
                    "kind": "command",
                    "params": {"argv": _marker_command(ran, f"{rounds}")},
                    "idempotency_key": key,
                }
                submits = [pool.submit(c.post, "/v1/jobs", json=body) for c in clients[1:]]
                deleted = pool.submit(clients[0].delete, f"/v1/jobs/{job_id}")
                assert deleted.result().status_code == 204
                for answer in (s.result() for s in submits):
                    assert answer.status_code < 500, answer.text
                    if answer.status_code in (200, 201) and answer.json()["job_id"] not in admin_jobs:
                        created.append(answer.json())
            made = [
                j
                for j in admin.get("/v1/jobs", params={"kind": "command", "limit": 1000}).json()
                if j["job_id"] not in admin_jobs
            ]
    finally:
        stop.set()
        for reader in readers:
            reader.join(10)
        for client in clients:
            client.close()
    print(f"[lab] {rounds} races run")
    assert not created, f"an operator created command job(s): {created[:3]}"
    assert not made, f"command jobs the admin never submitted: {made[:3]}"
    time.sleep(1)  # one runner pass: anything queued would start now
    assert not list(ran.iterdir()), "a command queued by an operator ran"


def _plant_command_job(data_dir: Path, argv: list[str], **columns: Any) -> str:
    """A queued command job written straight into the stopped agent's database, as an old agent
    (no submitter recorded) or someone with write access to the file would leave it."""
    job_id = secrets.token_hex(12)
    request = {"kind": "command", "params": {"argv": argv}}
    now = time.time()
    row = {
        "id": job_id,
        "kind": "command",
        "request": json.dumps(request),
        "priority": 0,
        "threads": 1,
        "memory_mb": 256,
        "gpu": 0,
        "state": "queued",
        "max_retries": 0,
        "not_before": 0,
        "queued_at": now,
        "created_at": now,
        "updated_at": now,
        **columns,
    }
    with contextlib.closing(sqlite3.connect(data_dir / "agent.db")) as db, db:
        names, marks = ", ".join(row), ", ".join("?" * len(row))  # the test's own column names
        db.execute(f"INSERT INTO jobs ({names}) VALUES ({marks})", tuple(row.values()))
    return job_id


def test_command_jobs_without_a_live_admin_behind_them_are_refused_at_start(
    start_agent: AgentFactory, tmp_path: Path
) -> None:
    kit_settings(tmp_path / "agents" / "planted", jobs_allowed_commands=[PY])
    agent = start_agent("planted", mdns=False)
    ran = tmp_path / "ran"
    ran.mkdir()
    admin_token, _ = pair_as(agent, "admin")
    _, operator_id = pair_as(agent, "operator")
    other_admin, other_admin_id = pair_as(agent, "admin")
    with raw_client(agent, other_admin) as client:  # queued by an admin whose token is revoked next
        revoked = client.post(
            "/v1/jobs",
            json={
                "kind": "command",
                "params": {"argv": _marker_command(ran, "revoked")},
                "not_before": time.time() + 4,
            },
        )
        assert revoked.status_code == 201, revoked.text
    with raw_client(agent, admin_token) as admin:
        assert admin.delete(f"/v1/tokens/{other_admin_id}").status_code == 204
    agent.stop()

    old = _plant_command_job(agent.data_dir, _marker_command(ran, "old"))
    _refused_at_start(
        agent,
        admin_token,
        {"old row, submitter unknown": old, "admin scope, revoked token": revoked.json()["job_id"]},
    )
    agent.stop()
    columns = {r[1] for r in sqlite3.connect(agent.data_dir / "agent.db").execute("PRAGMA table_info(jobs)")}
    assert {"submitted_by", "submitter_scope"} <= columns, "the agent records who submitted each job"
    tampered = _plant_command_job(
        agent.data_dir, _marker_command(ran, "operator"), submitted_by=operator_id, submitter_scope="operator"
    )
    _refused_at_start(agent, admin_token, {"operator scope": tampered})
    with raw_client(agent, admin_token) as admin:
        fine = admin.post(
            "/v1/jobs", json={"kind": "command", "params": {"argv": _marker_command(ran, "fine")}}
        )
        assert wait(admin, fine.json()["job_id"])["state"] == "done", "an admin's own job still runs"
    assert sorted(p.name for p in ran.iterdir()) == ["fine"], "only the live admin's command ran"


def _refused_at_start(agent: LocalAgent, admin_token: str, jobs: dict[str, str]) -> None:
    agent.start()
    with raw_client(agent, admin_token) as admin:
        for what, job_id in jobs.items():
            job = wait(admin, job_id, timeout=30)
            assert job["state"] == "failed", (what, job)
            assert "admin" in job["error"], (what, job["error"])


# --- 7. stream sources cannot reach the kit itself -------------------------------------------


L = TypeVar("L", bound="Listener")


class Listener:
    """A TCP socket on loopback that counts who connects (and answers nothing useful)."""

    def __init__(self, host: str = "127.0.0.1", reply: bytes = b"") -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.reply = reply
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            with conn, contextlib.suppress(OSError):
                conn.settimeout(1)
                conn.recv(4096)
                conn.sendall(self.reply)

    def __enter__(self: L) -> L:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


class AuthCamera(Listener):
    """An RTSP server on loopback that asks for Basic credentials and records every request."""

    def __init__(self, host: str) -> None:
        super().__init__(host)
        self.requests: list[str] = []

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            with conn, contextlib.suppress(OSError):
                conn.settimeout(2)
                while request := conn.recv(8192).decode("latin-1"):
                    self.requests.append(request)
                    cseq = next(
                        (line for line in request.split("\r\n") if line.lower().startswith("cseq")), "CSeq: 1"
                    )
                    conn.sendall(
                        f"RTSP/1.0 401 Unauthorized\r\n{cseq}\r\n"
                        'WWW-Authenticate: Basic realm="cam"\r\n\r\n'.encode()
                    )

    def saw(self, user: str, password: str) -> int:
        """How many requests carried exactly these credentials."""
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        return sum(f"Authorization: Basic {token}" in r for r in self.requests)


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def _stream(client: httpx.Client, source: str, **params: Any) -> httpx.Response:
    return client.post(
        "/v1/jobs", json={"kind": "stream", "params": {"model": DETECTOR, "source": source, **params}}
    )


def _outcome(client: httpx.Client, answer: httpx.Response) -> str:
    """What the submitter learns: the refusal's words, or the job's error once it ended."""
    if answer.status_code >= 400:
        body = answer.json()
        return f"{answer.status_code} {body['error']}: {body['message']} ({body.get('hint')})"
    return f"job: {wait(client, answer.json()['job_id'], timeout=40)['error']}"


@pytest.fixture
def stream_kit(start_agent: AgentFactory, tmp_path: Path) -> tuple[LocalAgent, str]:
    """An agent with the bundled detector deployed, and an operator's token."""
    kit_settings(tmp_path / "agents" / "cams", jobs_threads=4)
    agent = start_agent("cams", mdns=False)
    admin, _ = pair_as(agent, "admin")
    with raw_client(agent, admin) as client:
        deploy_detector(client)
    operator, _ = pair_as(agent, "operator")
    return agent, operator  # start_agent stops it


def test_stream_sources_aimed_at_the_kit_itself_are_refused(stream_kit: tuple[LocalAgent, str]) -> None:
    agent, operator = stream_kit
    closed = free_port()
    with Listener() as target, contextlib.ExitStack() as stack, raw_client(agent, operator) as client:
        # the cloud metadata address is off this machine: a job for it must never start, even
        # if a regression lets it in, so it is queued for an hour from now and cancelled at once
        metadata = client.post(
            "/v1/jobs",
            json={
                "kind": "stream",
                "not_before": time.time() + 3600,
                "params": {"model": DETECTOR, "source": "http://169.254.169.254/latest/"},
            },
        )
        if metadata.status_code < 400:
            client.post(f"/v1/jobs/{metadata.json()['job_id']}/cancel")
        assert metadata.status_code == 422, metadata.text
        sources = [
            f"rtsp://127.0.0.1:{target.port}/x",
            f"http://127.0.0.1:{target.port}/cam.mjpg",
            f"rtsp://localhost:{target.port}/x",
            f"rtsp://0.0.0.0:{target.port}/x",
            f"rtsp://127.9.8.7:{target.port}/x",
            f"http://2130706433:{target.port}/",
            f"rtsp://[::ffff:127.0.0.1]:{target.port}/x",
            f"https://127.0.0.1:{agent.port}/v1/health",
            f"https://localhost:{agent.port}/v1/health",
        ]
        if _ipv6_loopback():
            six = stack.enter_context(Listener("::1"))
            sources.append(f"http://[::1]:{six.port}/cam.mjpg")
        else:
            six = None
        answers = {source: _stream(client, source) for source in sources}
        outcomes = {source: _outcome(client, answer) for source, answer in answers.items()}
        for source, answer in answers.items():
            assert answer.status_code == 422, (source, outcomes[source])
            assert answer.json()["hint"], source
        open_port = _outcome(client, _stream(client, f"rtsp://127.0.0.1:{target.port}/x"))
        closed_port = _outcome(client, _stream(client, f"rtsp://127.0.0.1:{closed}/x"))
        assert open_port == closed_port, "an open and a closed port must read the same"
        time.sleep(0.5)  # a worker that was let through would have connected by now
        assert target.connections == 0, f"{target.connections} connection(s) reached the kit's loopback"
        assert six is None or six.connections == 0, "a connection reached the kit's ::1"
        assert all(j["state"] in FINISHED for j in client.get("/v1/jobs").json())


def _redirector(host: str, location: str) -> Listener:
    reply = f"HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n".encode()
    return Listener(host, reply)


def test_an_allowed_camera_host_cannot_redirect_the_kit_and_failures_read_alike(
    allowed_host: str, stream_kit: tuple[LocalAgent, str]
) -> None:
    agent, operator = stream_kit
    garbage = b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\ngarbage"
    with (
        Listener() as target,
        Listener(allowed_host, garbage) as talker,
        _redirector(allowed_host, f"http://127.0.0.1:{target.port}/cam.mjpg") as redirect,
        raw_client(agent, operator) as client,
    ):
        moved = _stream(client, f"http://{allowed_host}:{redirect.port}/cam.mjpg")
        assert moved.status_code == 201, moved.text
        assert wait(client, moved.json()["job_id"], timeout=40)["state"] == "failed"
        assert redirect.connections >= 1, "the allowed camera host was reached"
        assert target.connections == 0, "a redirect took the kit to its own loopback"

        closed = _outcome(client, _stream(client, f"rtsp://{allowed_host}:{free_port()}/live"))
        answering = _outcome(client, _stream(client, f"rtsp://{allowed_host}:{talker.port}/live"))
        assert talker.connections >= 1
        assert closed.startswith("job: "), closed
        assert closed == answering, "a closed port and one that answers must read the same"


# --- 8. camera passwords stay on the kit, in one 0600 store --------------------------------


def _sse_until_end(client: httpx.Client, job_id: str) -> str:
    seen = []
    with client.stream("GET", f"/v1/jobs/{job_id}/live") as response:
        for line in response.iter_lines():
            seen.append(line)
            if line.startswith("event: end") or len(seen) > 200:
                break
    return "\n".join(seen)


def test_a_camera_password_reaches_no_viewer_log_error_or_file(
    allowed_host: str, stream_kit: tuple[LocalAgent, str]
) -> None:
    agent, operator = stream_kit
    password = "Pw-" + secrets.token_hex(8)
    forms = {password, quote(password), base64.b64encode(f"cam:{password}".encode()).decode()}
    viewer, _ = pair_as(agent, "viewer")
    admin, _ = pair_as(agent, "admin")
    with (
        AuthCamera(allowed_host) as cam,
        raw_client(agent, operator) as op,
        raw_client(agent, viewer) as view,
        raw_client(agent, admin) as adm,
    ):
        camera = f"rtsp://cam:{password}@{allowed_host}:{cam.port}/live"
        made = _stream(op, camera)
        assert made.status_code == 201, made.text
        job_id = made.json()["job_id"]
        refused = _stream(op, f"rtsp://cam:{password}@127.0.0.1:{free_port()}/live")  # a 422
        schedule = op.post(
            "/v1/schedules",
            json={
                "name": "night cam",
                "cron": "* * * * * *",
                "job": {"kind": "stream", "params": {"model": DETECTOR, "source": camera}},
            },
        )
        assert schedule.status_code == 201, schedule.text
        schedule_id = schedule.json()["schedule_id"]
        job = wait(view, job_id, timeout=40)
        assert job["state"] == "failed"
        fired = _first_scheduled_job(view, schedule_id)
        op.patch(f"/v1/schedules/{schedule_id}", json={"enabled": False}).raise_for_status()
        assert fired["state"] == "failed"
        assert fired["error"] == job["error"], "the scheduled job found the password too"
        assert cam.saw("cam", password) >= 2, "the worker sent the real password, for both jobs"
        seen = {
            "POST /v1/jobs answer": made.text,
            "refused submit": refused.text,
            "POST /v1/schedules answer": schedule.text,
            "GET /v1/jobs": view.get("/v1/jobs").text,
            "GET /v1/jobs/{id}": view.get(f"/v1/jobs/{job_id}").text,
            "job error": str(job["error"]),
            "GET /v1/jobs/{id}/logs": view.get(f"/v1/jobs/{job_id}/logs").text,
            "GET /v1/jobs/{id}/results": view.get(f"/v1/jobs/{job_id}/results").text,
            "GET /v1/jobs/{id}/live": _sse_until_end(view, job_id),
            "scheduled job's log": view.get(f"/v1/jobs/{fired['job_id']}/logs").text,
            "GET /v1/schedules": view.get("/v1/schedules").text,
            "GET /v1/audit": adm.get("/v1/audit").text,
        }
        assert "cam:***@" in seen["GET /v1/jobs/{id}"], "the source is shown masked"
    for where, text in seen.items():
        leaked = [f for f in forms if f in text]
        assert not leaked, f"the password is in {where}: {text[:300]}"
    agent.stop()  # its files as they rest on disk, the database's -wal folded in
    holders = []
    for path in sorted(p for p in agent.data_dir.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if any(f.encode() in data for f in forms):
            holders.append(path)
    assert all("secret" in p.name for p in holders), f"the password is stored in {holders}"
    assert len(holders) <= 1, holders
    for path in holders:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, f"{path} is readable by others"


def _first_scheduled_job(client: httpx.Client, schedule_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        jobs = client.get("/v1/jobs", params={"schedule_id": schedule_id}).json()
        if jobs:
            return wait(client, jobs[-1]["job_id"], timeout=40)
        time.sleep(0.2)
    raise AssertionError("the schedule queued no job")


# --- 9. playlists and concat lists in a dataset cannot open files outside the roots ----------


def test_a_dataset_playlist_cannot_read_a_video_outside_the_roots(
    stream_kit: tuple[LocalAgent, str], tmp_path: Path
) -> None:
    agent, operator = stream_kit
    outside = write_video(tmp_path / "private" / "outside.ts", seconds=1, fps=10, size=96)
    inside = write_video(tmp_path / "inside.mp4", seconds=1, fps=10, size=96)
    playlist = f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:1.0,\n{outside}\n#EXT-X-ENDLIST\n"
    members = {
        "list.m3u8": playlist.encode(),
        "feed.M3U8": playlist.encode(),
        "list.ffconcat": f"ffconcat version 1.0\nfile '{outside}'\n".encode(),
        "clip.mp4": inside.read_bytes(),
    }
    with raw_client(agent, operator) as client:
        client.put("/v1/datasets/pl", content=tar_archive(members)).raise_for_status()
        answers = {
            name: _stream(client, f"pl/{name}", realtime=False)
            for name in ("list.m3u8", "feed.M3U8", "list.ffconcat")
        }
        # a file that is a video when the job is queued and a link to the playlist when it starts
        later = client.post(
            "/v1/jobs",
            json={
                "kind": "stream",
                "not_before": time.time() + 2,
                "params": {"model": DETECTOR, "source": "pl/clip.mp4", "realtime": False},
            },
        )
        assert later.status_code == 201, later.text
        clip = agent.data_dir / "datasets" / "pl" / "clip.mp4"
        clip.unlink()
        clip.symlink_to(agent.data_dir / "datasets" / "pl" / "list.m3u8")
        answers["clip.mp4, swapped for a link to the playlist"] = later
        for name, answer in answers.items():
            if answer.status_code >= 400:
                body = answer.json()
                assert answer.status_code == 422, (name, body)
                assert "playlist" in body["message"] or "list" in body["message"], (name, body)
                continue
            job = wait(client, answer.json()["job_id"], timeout=40)
            assert job["state"] == "failed", (name, job)
            assert not (job["result"] or {}).get("processed"), (name, job["result"])
            assert job["progress"]["done"] == 0, (name, job)
            assert "playlist" in job["error"] or "list" in job["error"], (name, job["error"])
