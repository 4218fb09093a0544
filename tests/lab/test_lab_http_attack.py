"""Attacks on the agent's HTTP layer and audit log (issue 15: 6, 14, 15 and 17), from outside,
against real agents on loopback.

6.  Anyone on the LAN grows the audit log: thousands of refused pairings and malformed bodies
    leave a bounded log (refusals collapsed per client and window, old segments rotated out)
    whose kept chain still verifies through the API and through `kitfleet audit KIT`; a body
    sent to an authenticated route without a token gets 401 before it is read.
14. A viewer asks for a job's log at an offset no file can reach: a 4xx or an empty page, never
    a 500.
15. Deeply nested JSON (100,000 levels, well under the body bound) gets 400 on every JSON route.
17. Request headers over the bound get 431 and a closed connection however they arrive, all
    in one TLS read included, and a client still sending its headers reads the 431 (no reset);
    one that never stops sending is cut off all the same. Likewise a body refused before it is
    read (401, 413 from Content-Length): its sender reads the answer, not a reset.

Every socket goes to 127.0.0.1; other loopback addresses (127.0.0.x) only stand in as sources
for the "many clients on the LAN" part.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sqlite3
import ssl
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.fleet.localagent import LOOPBACK, LocalAgent
from tests.integration import conftest as integration
from tests.integration.conftest import AgentFactory
from tests.integration.helpers import kitfleet, pair, raw_client
from tests.integration.test_jobs_api import configure, submit, wait

PY = sys.executable
start_agent = integration.start_agent  # the fixtures, by name
settings, fleet, adopt = integration.settings, integration.fleet, integration.adopt

pytestmark = pytest.mark.timeout(240)


def _tls_socket(port: int) -> ssl.SSLSocket:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # probing our own loopback agent
    raw = socket.create_connection((LOOPBACK, port), timeout=10)
    return ctx.wrap_socket(raw, server_hostname="kit")


def _answer(sock: ssl.SSLSocket) -> bytes:
    """Everything the agent sends until it closes the connection (or 10 s pass)."""
    got = b""
    with contextlib.suppress(OSError):
        while chunk := sock.recv(65536):
            got += chunk
    return got


def _audit_rows(data_dir: Path) -> tuple[int, int]:
    """Rows in the kit's audit table and their bytes, read from the file itself."""
    with contextlib.closing(sqlite3.connect(f"file:{data_dir / 'agent.db'}?mode=ro", uri=True)) as db:
        row = db.execute(
            "SELECT COUNT(*), COALESCE(SUM(length(detail) + length(target) + "
            "length(actor_label) + length(outcome) + length(action) + 150), 0) "
            "FROM audit"
        ).fetchone()
    return int(row[0]), int(row[1])


# --- 6. the audit log under a flood of refusals ------------------------------------------


def test_unauthenticated_body_gets_401_before_it_is_read(start_agent: AgentFactory) -> None:
    agent = start_agent("early401", mdns=False)
    with raw_client(agent) as client:
        for path, method in (
            ("/v1/jobs", "POST"),
            ("/v1/schedules", "POST"),
            ("/v1/schedules/" + "a" * 32, "PATCH"),
        ):
            for body in (b"{not json", b"[" * 50_000 + b"]" * 50_000):
                response = client.request(
                    method, path, content=body, headers={"Content-Type": "application/json"}
                )
                assert response.status_code == 401, (path, response.status_code, response.text)
                assert response.json()["error"] == "unauthenticated"
    with _tls_socket(agent.port) as sock:  # declared far over the body bound, never sent: still 401
        sock.sendall(
            b"POST /v1/jobs HTTP/1.1\r\nHost: kit\r\nContent-Type: application/json\r\n"
            b"Content-Length: 52428800\r\n\r\n"
        )
        assert sock.recv(64).startswith(b"HTTP/1.1 401"), "refused before the body is read"
    token = pair(agent, "viewer")
    with raw_client(agent, token) as client:  # a viewer may not submit: 403, also before the body
        response = client.post("/v1/jobs", content=b"{not json", headers={"Content-Type": "application/json"})
        assert response.status_code == 403, response.text


def _flood(agent: LocalAgent, count: int, source: str = LOOPBACK) -> int:
    """`count` refused calls from `source`: pairings with no code, bad pairing bodies, malformed
    JSON to an open route and to an authenticated one. Returns how many the agent audits (all
    but 401s, and 429s of a pairing lock-out)."""
    transport = httpx.HTTPTransport(local_address=source, verify=False)
    audited = 0
    bodies: list[tuple[str, bytes]] = [
        (
            "/v1/pair",
            json.dumps({"app_id": "x" * 8, "nonce": "n" * 32, "scope": "admin", "proof": "0" * 64}).encode(),
        ),  # 403: no pairing code now
        ("/v1/pair", b'{"app_id": 1}'),  # 422
        ("/v1/pair", b"{not json"),  # 400
        ("/v1/jobs", b"{not json"),  # 401 (not audited)
    ]
    with httpx.Client(base_url=f"https://{agent.address}", transport=transport, timeout=10) as client:
        for n in range(count):
            path, body = bodies[n % len(bodies)]
            response = client.post(path, content=body, headers={"Content-Type": "application/json"})
            assert 400 <= response.status_code < 500, response.text
            audited += response.status_code not in (401, 429)
    return audited


def test_refusal_flood_leaves_a_bounded_log_whose_kept_chain_verifies(
    start_agent: AgentFactory, tmp_path: Path, settings: Any, adopt: Callable[[LocalAgent], Any]
) -> None:
    segment, kept, window = 40, 3, 3.0
    configure(
        tmp_path,
        "flooded",
        audit_segment_entries=segment,
        audit_segments_kept=kept,
        audit_refusal_window_s=window,
    )
    agent = start_agent("flooded", mdns=False)
    kit = adopt(agent)
    home = settings.home
    before = kitfleet(home, "audit", kit.name)  # the app holds the first entries from now on
    assert before.returncode == 0, before.stdout + before.stderr
    started = time.monotonic()
    # many clients on the LAN (loopback sources stand in for them), a few refusals each
    audited = sum(_flood(agent, 3, f"127.0.0.{n}") for n in range(2, 122))
    # then one client, thousands of times
    flood_from = time.time()
    last = _flood(agent, 2400)
    audited += last
    took = time.monotonic() - started
    time.sleep(window + 1.5)  # the last window closes: its count is written
    rows, size = _audit_rows(agent.data_dir)
    print(
        f"\n[lab] {120 * 3 + 2400} refusals ({audited} audited) in {took:.1f} s left {rows} "
        f"audit rows ({size} bytes)"
    )
    assert rows <= segment * kept, f"{rows} rows after {audited} audited refusals"
    assert size <= rows * 1024
    with raw_client(agent, kit.token) as client:
        check = client.get("/v1/audit/verify").json()
        assert check["problems"] == [], check
        assert check["kept_from"] > 1, check  # old segments were dropped, and it says where from
        entries = client.get("/v1/audit", params={"since_seq": 0, "limit": 5000}).json()
    assert entries[0]["seq"] == check["kept_from"]
    assert entries[0]["action"] == "audit.segment"
    # the last flood from 127.0.0.1: each of its audited refusals is an entry or counted in one
    mine = [e for e in entries if e["detail"].get("from") == LOOPBACK and e["ts"] >= flood_from - 1]
    written = [e for e in mine if e["action"] != "audit.refusals"]
    counted = sum(e["detail"]["count"] for e in mine if e["action"] == "audit.refusals")
    assert len(written) + counted == last, (len(written), counted, last)
    assert len(written) <= 3 * (took / window + 2), "repeats are counted, not written"
    after = kitfleet(home, "audit", kit.name)
    assert after.returncode == 0, after.stdout + after.stderr
    assert "verified" in after.stdout.splitlines()[0], after.stdout
    assert f"from entry {check['kept_from']}" in after.stdout.splitlines()[0], after.stdout


# --- 14. a log offset no file can reach ---------------------------------------------------


def test_job_log_at_an_unreachable_offset_is_no_server_error(
    start_agent: AgentFactory, tmp_path: Path
) -> None:
    configure(tmp_path, "logs", jobs_allowed_commands=[PY])
    agent = start_agent("logs", mdns=False)
    with raw_client(agent, pair(agent)) as admin:
        job = submit(admin, "command", {"argv": [PY, "-c", "print('hello')"]})
        assert wait(admin, job["job_id"])["state"] == "done"
    with raw_client(agent, pair(agent, "viewer")) as viewer:
        for offset in (9223372036854775806, 9223372036854775807, 1 << 62, 1 << 40):
            response = viewer.get(f"/v1/jobs/{job['job_id']}/logs", params={"offset": offset})
            assert response.status_code < 500, (offset, response.text)
            if response.status_code == 200:
                assert response.json()["text"] == ""
        assert "hello" in viewer.get(f"/v1/jobs/{job['job_id']}/logs").json()["text"]


# --- 15. deeply nested JSON ---------------------------------------------------------------


def test_deeply_nested_json_gets_400_on_every_json_route(start_agent: AgentFactory) -> None:
    agent = start_agent("nested", mdns=False)
    deep = b"[" * 100_000 + b"]" * 100_000
    inside = b'{"kind": "benchmark", "params": {"model": ' + deep + b"}}"
    assert len(inside) < 1 << 20
    with raw_client(agent, pair(agent)) as client:
        for method, path in (
            ("POST", "/v1/pair"),
            ("POST", "/v1/jobs"),
            ("POST", "/v1/schedules"),
            ("PATCH", "/v1/schedules/" + "a" * 32),
            ("POST", "/v1/uploads"),
        ):
            for body in (deep, inside):
                response = client.request(
                    method, path, content=body, headers={"Content-Type": "application/json"}
                )
                assert response.status_code == 400, (path, response.status_code, response.text)
                assert response.json()["error"] == "json_too_deep", response.text
        assert client.get("/v1/health").json()["status"] == "ok"
        shallow = client.post("/v1/jobs", json={"kind": "benchmark", "params": {"x": [[[[1]]]]}})
        assert shallow.status_code == 422, shallow.text  # nested a little: read and judged


# --- 17. header limit, however the headers arrive ------------------------------------------


def _request_with_headers(headers: list[bytes]) -> bytes:
    return b"GET /v1/health HTTP/1.1\r\nHost: kit\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n"


@pytest.mark.parametrize(
    "shape",
    [
        "one 80 KB header",
        "1,600 small headers",
        "100 KB in 25 headers",
        "70 KB of headers in two reads",
        "1,600 small headers in 8 KB pieces",
    ],
)
def test_headers_over_the_bound_get_431_and_a_closed_connection(
    start_agent: AgentFactory, shape: str
) -> None:
    agent = start_agent("headers-" + shape.split()[0].replace(",", ""), mdns=False)
    request = {
        "one 80 KB header": _request_with_headers([b"X-Big: " + b"a" * 80_000]),
        "1,600 small headers": _request_with_headers([b"X-H%04d: %s" % (n, b"v" * 40) for n in range(1600)]),
        "100 KB in 25 headers": _request_with_headers([b"X-H%02d: %s" % (n, b"b" * 4000) for n in range(25)]),
        "70 KB of headers in two reads": _request_with_headers(
            [b"X-H%02d: %s" % (n, b"c" * 3500) for n in range(20)]
        ),
    }[shape.removesuffix(" in 8 KB pieces")]  # the same request, sent a piece at a time
    with _tls_socket(agent.port) as sock:
        if "two reads" in shape:
            sock.sendall(request[:40_000])
            time.sleep(0.3)
            sock.sendall(request[40_000:])
        elif "pieces" in shape:  # still sending when the agent refuses: it must not reset
            for start in range(0, len(request), 8000):
                sock.sendall(request[start : start + 8000])
                time.sleep(0.02)
        else:
            sock.sendall(request)  # all in one go: one TLS read on the agent's side
        got = _answer(sock)
    assert got.startswith(b"HTTP/1.1 431"), got[:200]
    assert b"200 OK" not in got
    with _tls_socket(agent.port) as sock:  # honest headers still get in
        sock.sendall(_request_with_headers([b"X-Fine: " + b"f" * 1000, b"Connection: close"]))
        assert _answer(sock).startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize("what", ["headers", "a chunked body"])
def test_a_refused_client_that_never_stops_sending_is_cut_off(start_agent: AgentFactory, what: str) -> None:
    """After a 431 or a 413 the agent reads on for a while (so the client sees the answer, not a
    reset); a client that keeps sending is still closed, within the linger bound (5 s) plus slack."""
    agent = start_agent("endless-" + what.split()[-1], mdns=False)
    if what == "headers":
        start = _request_with_headers([b"X-Big: " + b"a" * 80_000])[:-2]  # the headers go on
        more = b"X-More: " + b"m" * 1000 + b"\r\n"
    else:  # chunks of 256 KB, past the pairing route's bound at once and never ending
        start = b"POST /v1/pair HTTP/1.1\r\nHost: kit\r\nTransfer-Encoding: chunked\r\n\r\n"
        more = b"40000\r\n" + b" " * 0x40000 + b"\r\n"
    with _tls_socket(agent.port) as sock:
        sock.sendall(start)
        ended = time.monotonic() + 30
        with contextlib.suppress(OSError):  # a reset or a broken pipe ends it as well as EOF
            while time.monotonic() < ended:
                sock.sendall(more)
                time.sleep(0.01)
        still_open = time.monotonic() >= ended
    assert not still_open, f"a client sending {what} for ever kept its refused connection 30 s"


def test_a_body_refused_before_it_is_read_still_gets_its_answer(start_agent: AgentFactory) -> None:
    """An answer that closes the connection before the body is read (no token: 401; a declared
    size over the bound: 413) reaches a client still sending that body, as the app's own client
    (httpx: the whole body first, then the answer) and a raw one sending 64 KB pieces."""
    agent = start_agent("early-linger", mdns=False)
    body = b"x" * (20 << 20)
    with raw_client(agent) as client:
        response = client.post("/v1/jobs", content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 401, response.text
    for path, status in ((b"/v1/jobs", b"401"), (b"/v1/pair", b"413")):
        with _tls_socket(agent.port) as sock:
            sock.sendall(
                b"POST %s HTTP/1.1\r\nHost: kit\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % (path, len(body))
            )
            for start in range(0, len(body), 65536):
                sock.sendall(body[start : start + 65536])
            got = _answer(sock)
        assert got.startswith(b"HTTP/1.1 " + status), (path, got[:200])
