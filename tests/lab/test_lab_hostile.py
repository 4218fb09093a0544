"""Reliability lab, hostile conditions (issue 7: 8, 10, 11 and 13) with real agents on loopback.

8.  The kit's disk fills while a job writes its output: the job fails saying the disk is full,
    the serving model and the queue (SQLite) stay intact, and work resumes once space is freed.
    (A full disk during a model upload is covered by tests/integration/test_models.py.)
10. Path traversal in every name or path the API accepts, route list taken from the agent's own
    OpenAPI so new routes are covered: 4xx, and nothing outside the data dir changes.
11. Oversized bodies, slowloris, 500 concurrent TLS connections, an mDNS announcement flood:
    413 / closed / answered-or-503, bounded memory, and a running job finishes done.
13. Nobody collects for a while: the metrics ring and the job log stay within their bounds, what
    the ring overwrote shows as the first sequence number, and collection later is complete
    and in order.

Every load here is bounded in count and time, and every socket goes to 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import socket
import sqlite3
import ssl
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import psutil
import pytest

from app.fleet.discovery import MAX_KITS
from app.fleet.localagent import LOOPBACK, LocalAgent
from tests.integration import conftest as integration
from tests.integration.conftest import AgentFactory
from tests.integration.helpers import pair, raw_client, small_tmpfs, tar_archive
from tests.integration.test_jobs_api import configure, deploy, images, submit, wait

PY = sys.executable
start_agent = integration.start_agent  # the fixture, by name


def _tls() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # probing our own loopback agent; no token is sent
    return ctx


def _rss(pid: int) -> int:
    return int(psutil.Process(pid).memory_info().rss)


class RssSampler:
    """Samples a process's RSS in a thread until stopped; `peak` is the largest seen."""

    def __init__(self, pid: int, every_s: float = 0.05) -> None:
        self.pid, self.every_s, self.peak = pid, every_s, _rss(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            with contextlib.suppress(psutil.Error):
                self.peak = max(self.peak, _rss(self.pid))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(2)


def _integrity(data_dir: Path) -> str:
    with contextlib.closing(sqlite3.connect(f"file:{data_dir / 'agent.db'}?mode=ro", uri=True)) as db:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])


def _figure(name: str, value: Any) -> None:
    """Figures for the closing note: printed (pytest -s) and kept in KITFLEET_LAB_FIGURES."""
    print(f"[lab] {name}: {value}")
    target = os.environ.get("KITFLEET_LAB_FIGURES")
    if target:
        with open(target, "a") as out:
            out.write(json.dumps({name: value}) + "\n")


# --- 8. the disk fills while a job writes its output ---------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 24 MiB tmpfs made by the test, unmounted even when the test fails."""
    with small_tmpfs(tmp_path, 24) as mount:
        yield mount


_FILL = (
    "import itertools\n"
    "with open('results.jsonl', 'w') as out:\n"
    "    for n in itertools.count():\n"
    '        out.write(\'{"row": %d, "pad": "%s"}\\n\' % (n, \'x\' * 4000))\n'
)


def test_disk_full_during_job_output_fails_clearly_and_work_resumes(small_disk: Path, tmp_path: Path) -> None:
    data = small_disk / "kit"
    data.mkdir()
    (data / "agent.json").write_text(
        json.dumps(
            {"disk_reserve_bytes": 256 << 10, "jobs_allowed_commands": [PY], "metrics_interval_s": 0.5}
        )
    )
    agent = LocalAgent(data, "full", mdns=False).start()
    try:
        images(data / "datasets" / "shots", 6)
        with raw_client(agent, pair(agent)) as client:
            manifest = deploy(client, tmp_path)
            before = wait(
                client, submit(client, "batch-infer", {"model": "tiny", "folder": "shots"})["job_id"]
            )
            assert before["state"] == "done", before
            waiting = submit(
                client, "batch-infer", {"model": "tiny", "folder": "shots"}, not_before=time.time() + 3600
            )  # queued through the whole fault

            # other files hold part of the disk; then the job's own output fills the rest
            ballast = data / "old-recordings.bin"
            ballast.write_bytes(b"\0" * (4 << 20))
            filling = submit(client, "command", {"argv": [PY, "-c", _FILL]})
            deadline = time.monotonic() + 20
            while shutil.disk_usage(small_disk).free > 64 << 10 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert shutil.disk_usage(small_disk).free <= 64 << 10, "the job filled the disk"

            # while it is full: a clear refusal or an accepted job, never a 5xx; nothing served broken
            during = client.post(
                "/v1/jobs", json={"kind": "batch-infer", "params": {"model": "tiny", "folder": "shots"}}
            )
            assert during.status_code in (201, 507), during.text
            if during.status_code == 507:
                assert "disk is full" in during.json()["message"]
                assert during.json()["hint"]
            model = client.get("/v1/models/tiny").json()
            assert (model["active_version"], model["versions"][0]["sha256"]) == ("1", manifest.sha256)
            assert client.get(f"/v1/jobs/{waiting['job_id']}").json()["state"] == "queued"
            listed = client.get("/v1/jobs")
            assert listed.status_code == 200, listed.text

            # space is freed: the failure is on record with its reason, and work resumes
            ballast.unlink()
            failed = wait(client, filling["job_id"], timeout=30)
            assert failed["state"] == "failed", failed
            assert failed["error"].startswith("the kit's disk is full"), failed
            assert client.delete(f"/v1/jobs/{filling['job_id']}").status_code == 204
            _figure("disk-full job failure reason", failed["error"][:160])
            if during.status_code == 201:
                late = wait(client, during.json()["job_id"])
                assert late["state"] in ("done", "failed"), late
            after = wait(
                client, submit(client, "batch-infer", {"model": "tiny", "folder": "shots"})["job_id"]
            )
            assert after["state"] == "done", after
            rows = client.get(f"/v1/jobs/{after['job_id']}/results/results.jsonl").text.splitlines()
            assert len(rows) == 6
            assert client.get(f"/v1/jobs/{waiting['job_id']}").json()["state"] == "queued"
            assert {j["job_id"] for j in client.get("/v1/jobs").json()} >= {
                before["job_id"],
                waiting["job_id"],
                after["job_id"],
            }
        assert _integrity(data) == "ok"
    finally:
        agent.stop()
        print(agent.log_tail(40))


# --- 10. path traversal everywhere a name or path is accepted ------------------------------

_TRAVERSALS = [
    "../../outside",
    "..",
    "/etc/passwd",
    "%2e%2e%2f%2e%2e%2foutside",
    "..\\..\\outside",
    "a\0b",
    "escape",
    "escape/sentinel.txt",
    "....//....//outside",
]


def _snapshot(root: Path, *skip: Path) -> dict[str, str]:
    """Every file under `root` but outside the `skip` folders, with a hash of its content."""
    found = {}
    for path in sorted(root.rglob("*")):
        if any(s in path.parents or path == s for s in skip) or not path.is_file() or path.is_symlink():
            continue
        found[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def test_path_traversal_is_refused_everywhere_and_nothing_is_written_outside(
    start_agent: AgentFactory, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "sentinel.txt").write_text("must not change")
    images(outside / "pics", 2)
    agent = start_agent("paths", mdns=False)
    for root in ("datasets", "models", "jobs"):  # pre-planted links inside the data roots
        (agent.data_dir / root).mkdir(exist_ok=True)
        (agent.data_dir / root / "escape").symlink_to(outside, target_is_directory=True)
    work = tmp_path / "work"  # the test's own files
    work.mkdir()
    before = _snapshot(tmp_path, agent.data_dir, work)
    statuses: Counter[int] = Counter()
    wrong: list[str] = []

    def expect_4xx(response: httpx.Response, what: str) -> None:
        statuses[response.status_code] += 1
        if not 400 <= response.status_code < 500:
            wrong.append(f"{what} -> {response.status_code} {response.text[:200]}")
        elif response.headers.get("content-type", "").startswith(
            "application/json"
        ) and not response.json().get("message"):
            wrong.append(f"{what} -> {response.status_code} without a message")

    with raw_client(agent, pair(agent)) as client:
        deploy(client, work)
        done = wait(client, submit(client, "benchmark", {"model": "tiny", "runs": 2})["job_id"])
        valid = {
            "job_id": done["job_id"],
            "name": "tiny",
            "schedule_id": "0" * 24,
            "upload_id": "0" * 32,
            "version": "1",
        }
        spec = client.get("/v1/openapi.json").json()
        routes = 0
        for template, methods in spec["paths"].items():
            names = [p.strip("{}") for p in template.split("/") if p.startswith("{")]
            for method in methods:
                for param in names:
                    routes += 1
                    for payload in _TRAVERSALS:
                        once = quote(payload, safe="").replace(".", "%2E")  # no dot segment for
                        for encoded in (once, quote(once, safe="")):  # the client to resolve
                            path = template
                            for other in names:
                                value = encoded if other == param else quote(valid.get(other, "x"))
                                path = path.replace("{" + other + "}", value)
                            body: dict[str, Any] | None = {} if method in ("post", "put", "patch") else None
                            what = f"{method.upper()} {template} {param}={payload!r} as {path}"
                            try:
                                response = client.request(method.upper(), path, json=body)
                            except httpx.HTTPError as exc:
                                wrong.append(f"{what} -> {type(exc).__name__}: {exc}")
                                continue
                            expect_4xx(response, what)
        assert routes >= 15, f"the OpenAPI lists the routes with names ({routes} found)"

        for payload in [*_TRAVERSALS, str(outside), str(outside / "pics")]:
            for kind, field in (
                ("batch-infer", "folder"),
                ("batch-infer", "dataset"),
                ("evaluate", "folder"),
                ("evaluate", "dataset"),
                ("stream", "source"),
                ("batch-infer", "model"),
                ("benchmark", "version"),
            ):
                params: dict[str, Any] = {"model": "tiny", field: payload}
                if kind == "batch-infer" and field == "model":
                    params["folder"] = "."
                expect_4xx(
                    client.post("/v1/jobs", json={"kind": kind, "params": params}),
                    f"job {kind} {field}={payload!r}",
                )
            expect_4xx(
                client.post(
                    "/v1/schedules",
                    json={
                        "cron": "* * * * *",
                        "job": {"kind": "batch-infer", "params": {"model": "tiny", "folder": payload}},
                    },
                ),
                f"schedule folder={payload!r}",
            )
            for field in ("name", "version"):
                model = work / "m" / "evil.onnx"
                model.parent.mkdir(exist_ok=True)
                from tests.onnx_models import classifier

                manifest = json.loads(classifier(model, name="evil", version="9").model_dump_json())
                manifest[field] = payload
                what = f"upload manifest {field}={payload!r}"
                started = client.post("/v1/uploads", json={"manifest": manifest})
                if started.status_code == 201:  # a valid name (the planted link's): send it all
                    upload_id = started.json()["upload_id"]
                    sent = client.patch(
                        f"/v1/uploads/{upload_id}", content=model.read_bytes(), headers={"Upload-Offset": "0"}
                    )
                    assert sent.status_code == 200, sent.text
                    committed = client.post(f"/v1/uploads/{upload_id}/commit")
                    if field == "name":  # models/escape is the planted link
                        expect_4xx(committed, what + " committed")
                    else:  # a version called "escape" of "evil" is a plain version
                        assert committed.status_code == 200, committed.text
                else:
                    expect_4xx(started, what)
        archives = {
            "dot-dot": tar_archive({"../../escaped.png": b"x"}, {}),
            "absolute": tar_archive({str(outside / "abs.png"): b"x"}, {}),
            "link-out": tar_archive({}, {"pics": str(outside)}),
            "link-climb": tar_archive({}, {"up": "../../../outside"}),
        }
        for name, archive in archives.items():
            expect_4xx(
                client.put(
                    f"/v1/datasets/{name}", content=archive, headers={"Content-Type": "application/x-tar"}
                ),
                f"dataset archive {name}",
            )
        # the planted link under datasets/ is neither a dataset to run nor one to delete
        expect_4xx(
            client.post(
                "/v1/jobs", json={"kind": "batch-infer", "params": {"model": "tiny", "dataset": "escape"}}
            ),
            "job on the planted dataset link",
        )
        expect_4xx(client.delete("/v1/datasets/escape"), "delete the planted dataset link")
        assert client.get("/v1/health").status_code == 200
    _figure("traversal requests (status: count)", dict(sorted(statuses.items())))
    assert not wrong, "\n".join(wrong[:40])
    assert _snapshot(tmp_path, agent.data_dir, work) == before, "something outside the data dir changed"
    assert (outside / "sentinel.txt").read_text() == "must not change"
    for root in ("datasets", "models", "jobs"):
        assert (agent.data_dir / root / "escape").is_symlink(), "the planted links are left alone"


# --- 11. oversized bodies, slowloris, 500 connections, mDNS flood --------------------------

_SLOW_JOB = "import time\nfor n in range(100):\n    print(n, flush=True)\n    time.sleep(0.1)\n"


def _tls_socket(port: int) -> ssl.SSLSocket:
    raw = socket.create_connection((LOOPBACK, port), timeout=10)
    return _tls().wrap_socket(raw, server_hostname="kit")


def _oversized(agent: LocalAgent) -> None:
    # declared too big: refused from the headers alone, before any of the 50 MB is sent (sending
    # some of it too raced the agent's close: the write could fail before the answer was read)
    with _tls_socket(agent.port) as sock:
        sock.sendall(
            b"POST /v1/pair HTTP/1.1\r\nHost: kit\r\nContent-Type: application/json\r\n"
            b"Content-Length: 52428800\r\n\r\n"
        )
        assert sock.recv(64).startswith(b"HTTP/1.1 413"), "refused before the body is read"
    # not declared (chunked): refused once it passes the bound; the agent drops what still comes
    # for a few seconds so the client reads the 413 (cut off after that: test_lab_http_attack)
    sent = 0

    def chunks() -> Iterator[bytes]:
        nonlocal sent
        for _ in range(256):  # 64 MiB offered at most
            sent += 256 << 10
            yield b" " * (256 << 10)

    with raw_client(agent) as client:
        response = client.post("/v1/pair", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413, response.text
    assert "larger than" in response.json()["message"]
    _figure("chunked body offered before the 413 (MiB)", round(sent / (1 << 20), 1))


def _slowloris(agent: LocalAgent, count: int, header_timeout_s: float) -> None:
    sockets = [_tls_socket(agent.port) for _ in range(count)]
    try:
        for sock in sockets:
            sock.sendall(b"GET /v1/health HTTP/1.1\r\nHost: kit\r\n")
            sock.settimeout(0.01)
        open_ = set(range(count))
        start = time.monotonic()
        while open_ and time.monotonic() - start < header_timeout_s + 8:
            for n in list(open_):
                try:
                    sockets[n].sendall(b"x")  # one header byte at a time, never the end
                    if sockets[n].recv(1) == b"":
                        open_.discard(n)
                except (TimeoutError, ssl.SSLWantReadError):
                    pass
                except OSError:
                    open_.discard(n)
            assert agent.health()["status"] == "ok", "others are still served during the attack"
            time.sleep(0.2)
        _figure(
            "slowloris sockets closed by the agent",
            f"{count - len(open_)}/{count} after {time.monotonic() - start:.1f} s",
        )
        assert not open_, f"{len(open_)} slow sockets still held after {header_timeout_s + 8:g} s"
    finally:
        for sock in sockets:
            sock.close()


async def _one_health(port: int, ctx: ssl.SSLContext) -> str:
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(LOOPBACK, port, ssl=ctx, server_hostname="kit"), 30
        )
    except (OSError, asyncio.TimeoutError):
        return "refused"
    try:
        writer.write(b"GET /v1/health HTTP/1.1\r\nHost: kit\r\nConnection: close\r\n\r\n")
        head = await asyncio.wait_for(reader.read(64), 30)
        return head.split(b" ")[1].decode() if head.startswith(b"HTTP/1.1 ") else "dropped"
    except (OSError, asyncio.TimeoutError):
        return "dropped"
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()


async def _many(port: int, count: int) -> Counter[str]:
    ctx = _tls()
    return Counter(await asyncio.gather(*(_one_health(port, ctx) for _ in range(count))))


def _mdns_flood(count: int) -> tuple[int, int, bool, int]:
    """`count` bogus kits announced and withdrawn on 127.0.0.1 while an app Browser watches.

    Returns (most kits the browser held, kits left after the goodbyes, real kit seen, announcements
    the browser ignored once it held MAX_KITS)."""
    from zeroconf import ServiceInfo, const
    from zeroconf._dns import DNSPointer
    from zeroconf._protocol.outgoing import DNSOutgoing
    from zeroconf.asyncio import AsyncZeroconf

    from agent.wire import SERVICE_TYPE
    from app.fleet.discovery import Browser

    async def run() -> tuple[int, int, bool, int]:
        browser = Browser([LOOPBACK], lambda name, found: None)
        await browser.async_start()
        flood = AsyncZeroconf(interfaces=[LOOPBACK])
        most = 0
        try:
            for _ in range(100):  # the real agent shows up first
                if browser.kits:
                    break
                await asyncio.sleep(0.05)
            real = set(browser.kits)
            infos = [
                ServiceInfo(
                    SERVICE_TYPE,
                    f"bogus-{n}.{SERVICE_TYPE}",
                    addresses=[socket.inet_aton("127.0.0.9")],
                    port=9,
                    properties={"device_id": f"{n:064x}", "name": f"bogus {n}"},
                    server=f"bogus-{n}.local.",
                )
                for n in range(count)
            ]
            # announce all, then say goodbye to all, twice: responders repeat their goodbyes
            # (zeroconf sends three), and on a loaded machine a burst of 2,000 overflows the
            # browser's socket buffer, so a single goodbye each left kits behind now and then
            for ttl in (120, 0, 0):
                for start in range(0, count, 8):
                    out = DNSOutgoing(const._FLAGS_QR_RESPONSE | const._FLAGS_AA)
                    for info in infos[start : start + 8]:
                        out.add_answer_at_time(
                            DNSPointer(SERVICE_TYPE, const._TYPE_PTR, const._CLASS_IN, ttl, info.name), 0
                        )
                        if ttl:
                            out.add_answer_at_time(info.dns_service(), 0)
                            out.add_answer_at_time(info.dns_text(), 0)
                            for record in info.dns_addresses():
                                out.add_answer_at_time(record, 0)
                    flood.zeroconf.async_send(out)
                    if start % 256 == 0:
                        await asyncio.sleep(0.01)
                        most = max(most, len(browser.kits))
                for _ in range(40):
                    await asyncio.sleep(0.05)
                    most = max(most, len(browser.kits))
            await asyncio.sleep(1.0)
            return most, len(browser.kits), real <= set(browser.kits) and bool(real), browser.ignored
        finally:
            await flood.async_close()
            await browser.async_close()

    return asyncio.run(run())


def test_hostile_clients_and_an_mdns_flood_leave_the_agent_up_and_jobs_done(
    start_agent: AgentFactory, tmp_path: Path
) -> None:
    header_timeout = 4.0  # short for the test; under the 500-connection burst a shorter one
    # also closes honest clients whose request the loaded client had not sent yet
    configure(tmp_path, "hostile", jobs_allowed_commands=[PY], http_header_timeout_s=header_timeout)
    agent = start_agent("hostile", mdns=True)
    assert agent.process is not None
    pid = agent.process.pid
    idle_rss = _rss(pid)
    with raw_client(agent, pair(agent)) as client:
        job = submit(client, "command", {"argv": [PY, "-c", _SLOW_JOB]})
        with RssSampler(pid) as sampler:
            _oversized(agent)
            peaks = {"oversized bodies": sampler.peak}
            _slowloris(agent, 50, header_timeout)
            peaks["slowloris"] = sampler.peak
            started = time.monotonic()
            outcome = asyncio.run(_many(agent.port, 500))
            peaks["500 connections"] = sampler.peak
            _figure(
                "500 concurrent TLS /v1/health (outcome: count)",
                f"{dict(outcome)} in {time.monotonic() - started:.1f} s",
            )
            assert agent.process.poll() is None, "the agent is still up"
            assert set(outcome) <= {"200", "503", "refused", "dropped"}, outcome
            assert outcome["200"] >= 100, f"most connections are served, not refused: {outcome}"
            self_rss_before = _rss(os.getpid())
            most, left, real_seen, ignored = _mdns_flood(2000)
            self_rss_after = _rss(os.getpid())
            peaks["mDNS flood"] = sampler.peak
        _figure("agent peak RSS after each phase (MiB)", {k: round(v / (1 << 20)) for k, v in peaks.items()})
        _figure(
            "mDNS flood: kits held at most / left after goodbyes / ignored past the bound",
            f"{most} / {left} / {ignored}",
        )
        _figure(
            "app-side RSS growth over the mDNS flood (MiB)",
            round((self_rss_after - self_rss_before) / (1 << 20), 1),
        )
        _figure(
            "agent RSS idle / peak under load (MiB)",
            f"{idle_rss / (1 << 20):.0f} / {sampler.peak / (1 << 20):.0f}",
        )
        assert real_seen, "the browser still sees the real kit after the flood"
        assert left <= 1, f"the goodbyes emptied the browser of bogus kits ({left} left)"
        assert most <= MAX_KITS, f"the browser held {most} kits, past its bound of {MAX_KITS}"
        assert sampler.peak < idle_rss + (256 << 20), "the agent's memory stayed bounded"
        assert agent.health()["status"] == "ok"
        finished = wait(client, job["job_id"], timeout=60)
        assert finished["state"] == "done", finished
        assert finished["result"]["output_lines"] == 100
    assert _integrity(agent.data_dir) == "ok"


# --- 13. nobody collects for a while --------------------------------------------------------

_CHATTY = (
    "import json\n"
    "for n in range(400):\n    print('line %04d ' % n + 'y' * 40, flush=True)\n"
    "with open('results.jsonl', 'w') as out:\n"
    "    for n in range(500):\n        out.write(json.dumps({'row': n}) + '\\n')\n"
)


def test_unattended_kit_keeps_buffers_bounded_and_collection_is_complete(
    start_agent: AgentFactory, tmp_path: Path
) -> None:
    capacity, log_cap = 40, 4096
    configure(
        tmp_path,
        "away",
        metrics_interval_s=0.05,
        metrics_capacity=capacity,
        jobs_max_log_bytes=log_cap,
        jobs_allowed_commands=[PY],
    )
    agent = start_agent("away", mdns=False)
    with raw_client(agent, pair(agent)) as client:
        jobs = [submit(client, "command", {"argv": [PY, "-c", _CHATTY]})["job_id"] for _ in range(3)]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # away: nobody reads until the ring has wrapped
            with contextlib.closing(
                sqlite3.connect(f"file:{agent.data_dir / 'agent.db'}?mode=ro", uri=True)
            ) as db:
                rows, top = db.execute("SELECT COUNT(*), MAX(seq) FROM metrics").fetchone()
            assert rows <= capacity, f"the ring holds {rows} samples, over its capacity {capacity}"
            if top is not None and top >= 2 * capacity:
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"the sampler did not wrap the ring in 30 s (max seq {top})")

        # the laptop is back: page through everything after seq -1, 7 at a time
        collected: list[dict[str, Any]] = []
        cursor = -1
        first_page = client.get("/v1/metrics", params={"since_seq": cursor, "limit": 7}).json()
        while True:
            page = client.get("/v1/metrics", params={"since_seq": cursor, "limit": 7}).json()
            if not page["samples"] or cursor >= top:
                break
            collected += page["samples"]
            cursor = page["samples"][-1]["seq"]
        seqs = [s["seq"] for s in collected]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "complete and in order"
        assert [s["ts"] for s in collected] == sorted(s["ts"] for s in collected)
        assert capacity - 2 <= len(seqs) <= capacity + 2 * 7, seqs  # the ring, plus what came meanwhile
        dropped = seqs[0]  # seqs start at 0: the first one still held counts what was overwritten
        assert dropped >= capacity, "the ring wrapped"
        held = first_page["samples"][0]["seq"]  # a sample may land between the two reads
        assert held <= first_page["overwritten"] <= held + 2, "the agent counts what its ring overwrote"
        _figure(
            "metrics ring: capacity / collected / overwritten before collection",
            f"{capacity} / {len(seqs)} / {dropped}",
        )

        for job_id in jobs:
            info = wait(client, job_id, timeout=60)
            assert info["state"] == "done", info
            assert info["result"]["output_lines"] == 400
            text, offset = "", 0
            while True:
                part = client.get(f"/v1/jobs/{job_id}/logs", params={"offset": offset}).json()
                if not part["text"]:
                    break
                text, offset = text + part["text"], part["next_offset"]
            assert len(text.encode()) <= log_cap + 200, "the log stays within its cap"
            assert "log truncated" in text, "the dropped log lines are said to be dropped"
            kept = [line for line in text.splitlines() if " line " in line]
            assert kept, text
            assert [int(line.split(" line ")[1][:4]) for line in kept] == list(range(len(kept)))
            rows = client.get(f"/v1/jobs/{job_id}/results/results.jsonl").text.splitlines()
            assert [json.loads(row)["row"] for row in rows] == list(range(500)), "results complete"
        _figure("job log: cap / kept bytes", f"{log_cap} / {len(text.encode())}")
    assert _integrity(agent.data_dir) == "ok"
