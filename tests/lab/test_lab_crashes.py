"""Reliability lab, crash scenarios (issue 7: 5, 6, 7 and 9) with real agent processes on loopback.

5. kill -9 at random points of upload → verify → install → activate, >= 100 runs: after the
   restart exactly the old or the new version serves and no temp file is left.
6. A deploy while a batch-infer job runs: the job finishes on the version it started with.
7. kill -9 during jobs, round after round: every acknowledged job done exactly once or
   interrupted with a reason; `PRAGMA integrity_check` ok after every restart.
9. A damaged agent database is quarantined, the agent starts fresh with the same identity and
   says what was lost; the app keeps its own copy of the kit and asks for a new adoption.

A hundred restarts of `python -m agent run` cost ~1 s each of imports, so scenarios 5 and 7 start
their agents from a fork server: one process that imported the agent once and forks a child per
start, which runs the same `kitfleet-agent run` entry point (real server, real SQLite, real
ONNX Runtime, real job workers) and is killed with SIGKILL like any other process.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import hashlib
import io
import json
import operator
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import pytest

from agent.db import DB_FILE, Database
from agent.wire import Manifest
from app.fleet.errors import AgentError, Error
from app.fleet.localagent import LocalAgent
from app.fleet.service import Fleet
from tests import processes
from tests.integration.conftest import (  # noqa: F401 - fixtures used by name
    AgentFactory,
    adopt,
    fleet,
    settings,
    start_agent,
)
from tests.integration.helpers import pair, raw_client
from tests.integration.test_jobs_api import FINISHED, configure, deploy, images, submit
from tests.onnx_models import classifier

REPO = Path(__file__).resolve().parents[2]
KILL_RUNS = int(os.environ.get("KITFLEET_LAB_KILL_RUNS", "100"))

# The fork server: imports the agent once, then forks one `kitfleet-agent run` per line read.
# SIGCHLD is ignored so the kernel reaps killed children; each child restores it first, since
# the agent waits for its own children (model verification, job workers).
_ZYGOTE = """
import os, signal, sys
import agent.cli, agent.server, agent.api.app, agent.api.state, uvicorn, numpy, onnxruntime
signal.signal(signal.SIGCHLD, signal.SIG_IGN)
for line in sys.stdin:
    log, *argv = line.rstrip("\\n").split("\\t")
    pid = os.fork()
    if pid == 0:
        os.setsid()  # its own process group: one killpg takes it and its verifier, like a power cut
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        code = 1
        try:
            code = agent.cli.main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        finally:
            os._exit(code or 0)
    print(pid, flush=True)
"""


class ForkServer:
    def __init__(self, folder: Path) -> None:
        script = folder / "zygote.py"
        script.write_text(_ZYGOTE)
        env = dict(os.environ, PYTHONPATH=str(REPO), OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
        self.process = subprocess.Popen(
            [sys.executable, str(script)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=REPO,
        )

    def fork(self, log: Path, argv: list[str]) -> int:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write("\t".join([str(log), *argv]) + "\n")
        self.process.stdin.flush()
        return int(self.process.stdout.readline())

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@dataclass
class ForkedAgent(LocalAgent):
    """A LocalAgent whose process comes from the fork server (same entry point, no import cost)."""

    server: ForkServer | None = None
    pid: int | None = None
    starts: int = 0
    peak_rss: int = 0
    rss_samples: list[int] = field(default_factory=list)

    def start(self, timeout: float = 30.0) -> ForkedAgent:
        assert self.server is not None
        self.data_dir.mkdir(parents=True, exist_ok=True)
        port_file = self.data_dir / "agent.port"
        port_file.unlink(missing_ok=True)
        self.pid = self.server.fork(self.data_dir / "stderr.log", self.command()[3:])
        self.starts += 1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise Error(f"agent {self.name} exited: {self.log_tail()}")
            if port_file.exists() and self._healthy(port_file):
                return self
            time.sleep(0.01)
        self.kill()
        raise Error(f"agent {self.name} not ready within {timeout:g} s: {self.log_tail()}")

    def alive(self) -> bool:
        return self.pid is not None and processes.alive(self.pid)

    def sample_rss(self) -> None:
        try:
            rss = int(psutil.Process(self.pid).memory_info().rss) if self.pid else 0
        except psutil.NoSuchProcess:
            return
        self.peak_rss = max(self.peak_rss, rss)

    def kill(self) -> None:
        """SIGKILL the agent's process group: the agent and its model verifier. Job workers run in
        sessions of their own and must notice by themselves that their agent is gone."""
        if self.pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self._wait_gone(self.pid)
        self.pid = None

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.pid is not None and self.alive():
            os.kill(self.pid, signal.SIGTERM)
            if not self._wait_gone(self.pid, timeout):
                self.kill()
        self.pid = None
        return 0

    @staticmethod
    def _wait_gone(pid: int, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                    time.sleep(0.002)
                    continue
            except psutil.NoSuchProcess:
                return True
            time.sleep(0.002)
        return False


@pytest.fixture
def forked(tmp_path: Path) -> Iterator[Callable[..., ForkedAgent]]:
    server = ForkServer(tmp_path)
    made: list[ForkedAgent] = []

    def make(name: str, **kwargs: Any) -> ForkedAgent:
        agent = ForkedAgent(tmp_path / "agents" / name, name, mdns=False, server=server, **kwargs)
        made.append(agent)
        return agent

    try:
        yield make
    finally:
        for agent in made:
            agent.kill()
        server.close()


def _integrity(data_dir: Path) -> str:
    with sqlite3.connect(data_dir / DB_FILE) as db:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])


def _npy(size: int) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.random.default_rng(3).random((1, 3, size, size)).astype("float32"))
    return buffer.getvalue()


# --- scenario 5: kill -9 across upload → verify → install → activate ---------------------------

PHASES = ("upload", "verify", "install", "activate", "done")
_WEIGHTS = (30, 25, 20, 20, 5)
_SIZE = 32  # a 3×32×32 → 16 classifier: ~200 kB, so the upload takes a few chunks


@dataclass
class _Version:
    version: str
    manifest: Manifest
    data: bytes


class _Killer(threading.Thread):
    """Kills the agent when `trigger()` becomes true, after `delay` seconds."""

    def __init__(self, agent: ForkedAgent, trigger: Callable[[], bool], delay: float) -> None:
        super().__init__(daemon=True)
        self.agent, self.trigger, self.delay = agent, trigger, delay
        self.triggered = threading.Event()
        self.fired = threading.Event()
        self.cancelled = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + 20
        while not self.cancelled.is_set() and time.monotonic() < deadline:
            if self.trigger():
                self.triggered.set()
                if self.delay:
                    time.sleep(self.delay)
                self.agent.kill()
                self.fired.set()
                return
            time.sleep(0.0002)


def _observe(data_dir: Path, version: str, upload_id: str | None) -> str:
    """Which phase the kill interrupted, read from what the dead agent left on disk."""
    models = data_dir / "models" / "tiny"
    state = json.loads((models / "state.json").read_text())
    if state["active"] == version:
        return "done"
    if (models / "versions" / version).exists() or list(models.glob(".state.json.*.tmp")):
        return "activate"
    if (models / "versions" / f".staging-{version}").exists():
        return "install"
    if upload_id:
        with sqlite3.connect(data_dir / DB_FILE) as db:
            row = db.execute("SELECT state FROM uploads WHERE id = ?", (upload_id,)).fetchone()
        if row and row[0] == "verifying":
            return "verify"
    return "upload"


def _leftovers(data_dir: Path, client: httpx.Client) -> list[str]:
    """Temp and partial files in the models folder, beyond a resumable upload's own `.part`."""
    root = data_dir / "models"
    found = [
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.name.startswith((".staging-", ".trash-")) or p.name.endswith(".tmp")
    ]
    for part in (root / ".uploads").iterdir():
        status = client.get(f"/v1/uploads/{part.stem}")
        if part.suffix != ".part" or status.status_code != 200 or status.json()["state"] != "receiving":
            found.append(f"{part.relative_to(root)} ({status.status_code} {status.text[:80]})")
    return found


def test_kill_9_at_random_points_of_a_deploy_leaves_old_or_new_serving(
    forked: Callable[..., ForkedAgent], tmp_path: Path
) -> None:
    rng = random.Random(5)
    agent = forked("deploys")
    agent.start()
    token = pair(agent)
    headers = {"Authorization": f"Bearer {token}"}
    tensor = _npy(_SIZE)

    def make(n: int) -> _Version:
        path = tmp_path / "models" / f"v{n}.onnx"
        path.parent.mkdir(exist_ok=True)
        manifest = classifier(path, version=str(n), seed=n, size=_SIZE, classes=16)
        return _Version(str(n), manifest, path.read_bytes())

    def connect() -> httpx.Client:
        return httpx.Client(base_url=f"https://{agent.address}", verify=False, headers=headers, timeout=30)

    def send(client: httpx.Client, upload_id: str, offset: int, data: bytes) -> None:
        def body() -> Iterator[bytes]:
            for start in range(offset, len(data), 16384):
                yield data[start : start + 16384]
                time.sleep(0.001)  # a field link: the upload phase lasts long enough to be hit

        client.patch(
            f"/v1/uploads/{upload_id}", content=body(), headers={"Upload-Offset": str(offset)}
        ).raise_for_status()

    def deploy_once(client: httpx.Client, pending: _Version, seen: dict[str, Any]) -> None:
        """The app's deploy: create (or resume), send from the agent's offset, commit."""
        made = client.post(
            "/v1/uploads", json={"manifest": json.loads(pending.manifest.model_dump_json()), "activate": True}
        )
        made.raise_for_status()
        status = made.json()
        if status["state"] == "installed":  # installed by a run killed before activation
            seen["committing"] = True
            client.post("/v1/models/tiny/activate", json={"version": pending.version}).raise_for_status()
            return
        seen["upload_id"] = status["upload_id"]
        if status["offset"] < status["size"]:
            seen["uploading"] = True
            send(client, status["upload_id"], status["offset"], pending.data)
        seen["committing"] = True
        client.post(f"/v1/uploads/{status['upload_id']}/commit").raise_for_status()

    # Version 1 serves before the first kill; a clean deploy of 2 measures the phases.
    with connect() as client:
        deploy_once(client, make(1), {})
        started = time.monotonic()
        deploy_once(client, make(2), {})
        clean_deploy_s = time.monotonic() - started
    active = make(2)
    versions = {"1": make(1), "2": active}
    pending = make(3)
    versions[pending.version] = pending
    vdir = agent.data_dir / "models" / "tiny" / "versions"
    uploads = agent.data_dir / "models" / ".uploads"
    planned: collections.Counter[str] = collections.Counter()
    observed: collections.Counter[str] = collections.Counter()
    resumed_uploads = 0
    wall = time.monotonic()
    for run in range(KILL_RUNS):
        target = rng.choices(PHASES, _WEIGHTS)[0]
        planned[target] += 1
        seen: dict[str, Any] = {}
        new_dir = vdir / pending.version

        def moved_to_staging(seen: dict[str, Any] = seen, uploads: Path = uploads) -> bool:
            # install begins when the verified .part is moved into a staging folder
            return (
                "upload_id" in seen
                and "committing" in seen
                and not (uploads / f"{seen['upload_id']}.part").exists()
            )

        triggers: dict[str, tuple[Callable[[], bool], float]] = {
            "upload": (functools.partial(operator.contains, seen, "uploading"), rng.uniform(0, 0.03)),
            "verify": (
                functools.partial(operator.contains, seen, "committing"),
                rng.uniform(0, clean_deploy_s),
            ),
            "install": (moved_to_staging, 0.0),
            "activate": (new_dir.exists, rng.uniform(0, 0.003)),
            "done": (functools.partial(operator.contains, seen, "finished"), 0.0),
        }
        killer = _Killer(agent, *triggers[target])
        killer.start()
        with connect() as client:
            try:
                deploy_once(client, pending, seen)
                seen["finished"] = True
            except httpx.TransportError:
                pass  # the agent died under the request; any HTTP error status fails the test
        if not killer.triggered.is_set():
            killer.cancelled.set()
        killer.join(timeout=10)
        if not killer.fired.is_set():
            agent.kill()  # the moment passed unseen (e.g. nothing left to upload): kill now
        old = active.version
        phase = _observe(agent.data_dir, pending.version, seen.get("upload_id"))
        observed[phase] += 1
        resumed_uploads += bool(seen.get("uploading") and phase == "upload")

        agent.start()
        agent.sample_rss()
        with connect() as client:
            info = client.get("/v1/models/tiny").json()
            expected = pending.version if phase == "done" else old
            assert info["active_version"] == expected, (run, target, phase, info)
            answer = client.post(
                "/v1/models/tiny/infer", content=tensor, headers={"Content-Type": "application/x-npy"}
            )
            assert answer.status_code == 200, (run, answer.text)
            serving = versions[expected]
            assert (answer.json()["version"], answer.json()["sha256"]) == (
                serving.version,
                serving.manifest.sha256,
            ), (run, phase)
            served_file = vdir / expected / "model.onnx"
            assert hashlib.sha256(served_file.read_bytes()).hexdigest() == serving.manifest.sha256
            assert _leftovers(agent.data_dir, client) == [], (run, target, phase)
        if phase == "done":
            active = pending
            pending = make(int(pending.version) + 1)
            versions[pending.version] = pending
    wall = time.monotonic() - wall
    # The last pending version still deploys cleanly: nothing a crash left blocks it.
    with connect() as client:
        deploy_once(client, pending, {})
        assert client.get("/v1/models/tiny").json()["active_version"] == pending.version
    agent.stop()
    assert _integrity(agent.data_dir) == "ok"
    print(
        f"\nscenario 5: {KILL_RUNS} kill -9 runs in {wall:.1f} s ({agent.starts} agent starts); "
        f"planned {dict(planned)}; observed {dict(observed)}; versions activated "
        f"{int(pending.version) - 3}; peak agent RSS {agent.peak_rss >> 20} MiB"
    )
    assert sum(observed.values()) == KILL_RUNS
    for phase in PHASES:  # every phase was really hit, not just planned
        assert observed[phase] > 0, (phase, dict(observed))


# --- scenario 9: a damaged database is quarantined, the kit starts fresh -----------------------


def _damage(path: Path, where: str) -> None:
    data = bytearray(path.read_bytes())
    noise = random.Random(9)
    if where == "header":  # "SQLite format 3\0", page size, counters: no longer a database
        data[:100] = bytes(noise.randrange(256) for _ in range(100))
    else:  # the middle third of the pages: b-tree pages of tokens, audit, metrics…
        start, end = len(data) // 3, 2 * len(data) // 3
        data[start:end] = bytes(noise.randrange(256) for _ in range(end - start))
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("where", ["header", "middle"])
def test_a_damaged_database_is_quarantined_and_the_kit_starts_fresh(
    start_agent: AgentFactory,  # noqa: F811
    fleet: Fleet,  # noqa: F811
    adopt: Callable[[LocalAgent], Any],  # noqa: F811
    tmp_path: Path,
    where: str,
) -> None:
    import asyncio

    agent = start_agent("damaged", mdns=False)
    kit = adopt(agent)
    known = asyncio.run(fleet.async_facts(kit))
    assert known.live
    with raw_client(agent, kit.token) as client:
        deploy(client, tmp_path)
    identity = {p.name: p.read_bytes() for p in agent.data_dir.glob("identity.*")}
    assert identity, "the kit's TLS key and certificate are files in its data dir"
    device_id = agent.health()["device_id"]
    agent.stop()  # a clean stop folds the WAL into agent.db
    db_file = agent.data_dir / DB_FILE
    _damage(db_file, where)
    damaged = hashlib.sha256(db_file.read_bytes()).hexdigest()
    with pytest.raises(Error, match="database is damaged"):  # the CLI says so and leaves it be
        agent.pair_code()
    assert not list(agent.data_dir.glob("agent.db.corrupt-*"))

    agent.start()
    health = agent.health()
    recovered: Any = health["recovered"]
    assert recovered is not None, health
    assert health["device_id"] == device_id, "same key and certificate: same device ID"
    assert {p.name: p.read_bytes() for p in agent.data_dir.glob("identity.*")} == identity
    kept = agent.data_dir / recovered["quarantined"]
    assert kept.name.startswith("agent.db.corrupt-"), recovered
    assert hashlib.sha256(kept.read_bytes()).hexdigest() == damaged, "kept as it was found"
    assert any("tokens" in item for item in recovered["lost"])
    assert "damaged" in agent.log_tail(40)
    assert kept.name in agent.log_tail(40)
    assert _integrity(agent.data_dir) == "ok"
    assert (agent.data_dir / "models" / "tiny" / "state.json").exists(), "models live outside the db"

    # The app still has its copy of the kit; its token is gone, and it is told why.
    assert fleet.inventory.get(kit.device_id).name == "damaged"
    last = fleet.inventory.last_facts(kit.device_id)
    assert last is not None
    assert last[0] == known.families
    with pytest.raises(AgentError) as refused:
        asyncio.run(fleet.async_facts(kit))
    assert refused.value.status == 401
    assert "lost its tokens" in str(refused.value)
    assert "adopt the kit again" in str(refused.value)
    assert kept.name in str(refused.value)

    # Adopting again works, and the fresh audit log starts with what happened.
    again = adopt(agent)
    assert again.device_id == kit.device_id
    entries = asyncio.run(fleet.async_call(again, lambda c: c.audit()))
    assert entries[0].action == "agent.db_recovered"
    assert entries[0].target == kept.name
    assert "tokens" in entries[0].detail["lost"]
    agent.stop()
    agent.start()  # a sound database is not quarantined again
    assert agent.health()["recovered"] is None
    quarantined = {p.name for p in agent.data_dir.glob("agent.db.corrupt-*")}
    assert kept.name in quarantined
    assert quarantined <= {kept.name + suffix for suffix in ("", "-wal", "-shm")}, quarantined


def test_a_locked_or_read_only_database_is_never_quarantined(tmp_path: Path) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    Database.open(folder).close()
    holder = sqlite3.connect(folder / DB_FILE, isolation_level=None)
    try:
        holder.execute("PRAGMA locking_mode=EXCLUSIVE")
        holder.execute("BEGIN EXCLUSIVE")
        holder.execute("UPDATE pairing_lock SET failures = failures + 1")  # holds the write lock
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            Database.open(folder, recover=True, timeout=0.2)
    finally:
        holder.close()
    assert sorted(p.name for p in folder.iterdir() if "corrupt" in p.name) == []
    assert _integrity(folder) == "ok"

    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a read-only filesystem needs root to mount (CI runs as root)")
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(readonly)], check=True)
    try:
        Database.open(readonly).close()
        before = sorted(p.name for p in readonly.iterdir())
        subprocess.run(["mount", "-o", "remount,ro", str(readonly)], check=True)
        with pytest.raises(sqlite3.OperationalError):
            Database.open(readonly, recover=True, timeout=0.2)
        assert sorted(p.name for p in readonly.iterdir()) == before
    finally:
        subprocess.run(["umount", "-l", str(readonly)], check=False)


# --- scenario 6: a deploy while a batch job runs ------------------------------------------------


def test_a_deploy_during_a_batch_job_leaves_the_job_on_its_version(
    start_agent: AgentFactory,  # noqa: F811
    tmp_path: Path,
) -> None:
    configure(tmp_path, "busy", jobs_threads=2)
    folder = tmp_path / "agents" / "busy" / "datasets" / "street"
    # 400 camera-sized pictures (hard links to one noisy 640×480 PNG): seconds of decoding
    [picture] = images(tmp_path / "one", 1)
    from PIL import Image

    Image.fromarray(np.random.default_rng(6).integers(0, 255, (480, 640, 3), dtype=np.uint8)).save(picture)
    folder.mkdir(parents=True)
    for n in range(400):
        os.link(picture, folder / f"img-{n:03d}.png")
    agent = start_agent("busy", mdns=False)
    with raw_client(agent, pair(agent)) as client:
        old = deploy(client, tmp_path, version="1", seed=1)
        job = submit(
            client,
            "batch-infer",
            {"model": "tiny", "folder": "street", "top_k": 1},
            resources={"threads": 1},
            idempotency_key="street-during-deploy",
        )
        deadline = time.monotonic() + 30
        while client.get(f"/v1/jobs/{job['job_id']}").json()["progress"]["done"] == 0:
            assert time.monotonic() < deadline, "the job never started"
            time.sleep(0.02)
        new = deploy(client, tmp_path, version="2", seed=2)  # upload, verify, install, activate
        during = client.get(f"/v1/jobs/{job['job_id']}").json()
        assert during["state"] == "running", ("the deploy must land mid-job to prove anything", during)
        assert client.get("/v1/models/tiny").json()["active_version"] == "2"
        while (done := client.get(f"/v1/jobs/{job['job_id']}").json())["state"] not in FINISHED:
            assert time.monotonic() < deadline + 60, done
            time.sleep(0.05)
        assert done["state"] == "done", done
        rows = [
            json.loads(line)
            for line in client.get(f"/v1/jobs/{job['job_id']}/results/results.jsonl").text.splitlines()
        ]
        assert len(rows) == 400
        assert {(r["version"], r["sha256"]) for r in rows} == {("1", old.sha256)}, (
            "every row names the version the job started with"
        )
        answer = client.post(
            "/v1/models/tiny/infer", content=_npy(16), headers={"Content-Type": "application/x-npy"}
        )
        assert (answer.json()["version"], answer.json()["sha256"]) == ("2", new.sha256)
    print(f"\nscenario 6: the deploy landed at image {during['progress']['done']} of 400")


# --- scenario 7: kill -9 during jobs, round after round -----------------------------------------

_JOB = """
import os, sys, time
markers, tag, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
open(os.path.join(markers, tag + ".starts"), "a").write(f"{os.getpid()}\\n")
time.sleep(seconds)
with open(os.path.join(markers, tag + ".runs"), "a") as runs:
    runs.write(f"{os.getpid()}\\n")
"""


def _lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def test_repeated_kill_9_during_jobs_loses_none_and_duplicates_none(
    forked: Callable[..., ForkedAgent], tmp_path: Path
) -> None:
    from tests.integration.test_jobs_reliability import _workers_of

    script, markers = tmp_path / "job.py", tmp_path / "markers"
    script.write_text(_JOB)
    markers.mkdir()
    configure(tmp_path, "crashy", jobs_allowed_commands=[sys.executable], jobs_max_running=4, jobs_threads=4)
    agent = forked("crashy")
    agent.start()
    token = pair(agent)
    rng = random.Random(7)
    asks = [(f"job-{n:02d}", rng.choice([0, 3]), round(rng.uniform(0.1, 0.6), 3)) for n in range(30)]
    acknowledged: dict[str, str] = {}  # idempotency key → job id
    rounds, integrity = 10, []
    for round_ in range(rounds):
        if round_:
            agent.start()
        integrity.append(_integrity(agent.data_dir))
        with raw_client(agent, token) as client:
            # every round sends the whole queue again: the same key is the same job
            for key, retries, seconds in asks[: 3 * (round_ + 1)]:
                response = client.post(
                    "/v1/jobs",
                    json={
                        "kind": "command",
                        "label": key,
                        "idempotency_key": key,
                        "max_retries": retries,
                        "retry_backoff_s": 0,
                        "params": {"argv": [sys.executable, str(script), str(markers), key, str(seconds)]},
                    },
                )
                assert response.status_code == (200 if key in acknowledged else 201), response.text
                assert acknowledged.setdefault(key, response.json()["job_id"]) == response.json()["job_id"]
        agent.sample_rss()
        time.sleep(rng.uniform(0.2, 0.8))
        agent.kill()
        time.sleep(0.3)  # orphaned workers notice their agent is gone
        assert _workers_of(agent.data_dir) == [], "workers die with their agent"
    agent.start()
    integrity.append(_integrity(agent.data_dir))
    with raw_client(agent, token) as client:
        deadline = time.monotonic() + 60
        while True:
            jobs = {j["job_id"]: j for j in client.get("/v1/jobs", params={"limit": 1000}).json()}
            if all(jobs[i]["state"] in FINISHED for i in acknowledged.values()):
                break
            assert time.monotonic() < deadline, "the queue drains after the last restart"
            time.sleep(0.1)
    agent.stop()
    assert integrity == ["ok"] * (rounds + 1)
    assert len(jobs) == len(acknowledged) == 30, "one job per idempotency key, none lost"
    states: collections.Counter[str] = collections.Counter()
    twice = 0
    for key, retries, _ in asks:
        job = jobs[acknowledged[key]]
        states[job["state"]] += 1
        runs, starts = (_lines(markers / f"{key}.{kind}") for kind in ("runs", "starts"))
        assert job["state"] in ("done", "interrupted"), job
        assert len(starts) <= job["attempts"], ("every start was an attempt the agent counted", job)
        if job["state"] == "done":
            assert len(runs) >= 1, ("done means it ran to the end", job)
            # a finished attempt keeps its outcome before the agent hears of it, and recovery
            # records it done; a second completion is possible only when the kill fell between
            # the command's exit and that outcome reaching the disk, and then it is a counted retry
            assert len(runs) == 1 or job["attempts"] > 1, (job, runs)
            twice += len(runs) > 1
        else:
            assert "stopped unexpectedly" in str(job["error"]), job
            assert job["attempts"] > retries, job
    print(
        f"\nscenario 7: {rounds} kill -9 rounds, {len(jobs)} jobs: {dict(states)}; "
        f"{sum(j['attempts'] for j in jobs.values())} attempts; completed twice {twice}; "
        f"integrity_check ok x{len(integrity)}; peak agent RSS {agent.peak_rss >> 20} MiB"
    )


def test_a_crash_image_with_a_wal_is_quarantined_whole(tmp_path: Path) -> None:
    """A kit that lost power leaves agent.db plus its -wal: both are kept, under one name."""
    live, crashed = tmp_path / "live", tmp_path / "crashed"
    live.mkdir()
    crashed.mkdir()
    db = Database.open(live)
    try:
        with db.transaction() as conn:
            conn.executemany(
                "INSERT INTO metrics (slot, seq, ts, cpu_percent, memory_percent, "
                "disk_percent) VALUES (?, ?, 0, 1, 2, 3)",
                [(n, n) for n in range(2000)],
            )
        db.query("PRAGMA wal_checkpoint(PASSIVE)")
        with db.transaction() as conn:  # these pages live only in the -wal
            conn.execute("UPDATE metrics SET cpu_percent = 9 WHERE slot < 100")
        for name in (DB_FILE, f"{DB_FILE}-wal"):  # the files as the power cut left them
            shutil.copyfile(live / name, crashed / name)
    finally:
        db.close()
    assert (crashed / f"{DB_FILE}-wal").stat().st_size > 0
    _damage(crashed / DB_FILE, "middle")
    wal = (crashed / f"{DB_FILE}-wal").read_bytes()
    fresh = Database.open(crashed, recover=True)
    try:
        assert fresh.recovery is not None
        kept = crashed / fresh.recovery.quarantined
        assert (kept.with_name(kept.name + "-wal")).read_bytes() == wal
        assert fresh.query("SELECT COUNT(*) FROM metrics")[0][0] == 0
        assert fresh.query("PRAGMA integrity_check")[0][0] == "ok"
    finally:
        fresh.close()
