"""Reliability lab, network scenarios (issue 7: 1-4): real agents in network namespaces on one
bridge, the real `kitfleet` CLI in another, mDNS across the bridge.

1. A rogue announcing an adopted kit's name (or even its device ID) elsewhere is a conflict;
   it gets no token, no model, no job.
2. Two adopted kits swap addresses: each is still reached by its pinned key; no job goes astray.
3. A kit's certificate is regenerated: identity changed, its queued jobs stay, the app keeps
   its last-known state.
4. The link drops halfway through a model upload: the upload resumes, the sha256 matches, and
   the partial file is never served.
And the lab itself: nothing is left behind when a test fails.

Each scenario checks the kits' own databases and data dirs, not only what the app says.
"""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from agent.db import DB_FILE
from app.fleet.inventory import Inventory
from tests.lab.netlab import AGENT_PORT, AppHost, Host, Lab, unavailable
from tests.onnx_models import classifier

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(bool(unavailable()), reason=unavailable() or "lab available"),
]

TIMEOUT = "3"  # the app's per-request timeout in the lab (KITFLEET_TIMEOUT): faults show fast


def _rows(data_dir: Path, sql: str, *args: Any) -> list[sqlite3.Row]:
    """Read the agent's own database (a read-only connection; the agent may be running)."""
    conn = sqlite3.connect(f"file:{data_dir / DB_FILE}?mode=ro", uri=True, timeout=10)
    conn.row_factory = sqlite3.Row
    try:
        return list(conn.execute(sql, args))
    finally:
        conn.close()


def _agent_dir(host: Host) -> Path:
    assert host.agent is not None
    return host.agent.data_dir


def _submit(app: AppHost, kit: str, label: str) -> str:
    """Queue a benchmark that waits an hour (it stays queued); returns the job ID."""
    answer = app.json(
        "jobs",
        "submit",
        kit,
        "--kind",
        "benchmark",
        "--model",
        "tiny",
        "--not-before",
        "+1h",
        "--label",
        label,
    )
    assert answer[0]["ok"], answer
    return str(answer[0]["job_id"])


def _png() -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.full((16, 16, 3), 128, dtype=np.uint8)).save(out, format="PNG")
    return out.getvalue()


def _token(app: AppHost, device_id: str) -> str:
    inventory = Inventory(app.home)
    try:
        return inventory.get(device_id).token
    finally:
        inventory.close()


def test_a_rogue_under_an_adopted_name_is_a_conflict_and_gets_nothing(lab: Lab, tmp_path: Path) -> None:
    kit, rogue = lab.host("kit"), lab.host("rogue")
    app = lab.app(KITFLEET_TIMEOUT=TIMEOUT)
    lab.start_agents([(kit, "kit-a"), (rogue, "kit-a")])  # the rogue: its own key, the same name
    assert kit.agent is not None
    # Worse, beside it: a raw registration copying the kit's own TXT record (its device ID).
    spoof = _spoof(rogue, kit.agent.health()["device_id"])
    lab.processes.append(spoof)
    device = app.adopt(kit)
    _announcing(spoof)
    here, there = f"{kit.address}:{AGENT_PORT}", f"{rogue.address}:{AGENT_PORT}"

    rows = app.json("discover", "--timeout", "2")
    by_id = {(r["device_id"], r["address"]): r for r in rows}
    assert by_id[device, here]["status"] == "adopted"
    (own,) = [r for r in rows if r["device_id"] != device]  # the rogue agent's own announcement
    assert own["address"] == there
    assert own["status"] == "conflict", rows
    assert f"another device ({own['device_id'][:16]}…) announces as kit-a at {there}" in own["detail"]
    assert by_id[device, there]["status"] == "conflict", rows  # the copied TXT record
    inventory = Inventory(app.home)
    try:
        assert inventory.get(device).address == here  # never followed to the rogue
    finally:
        inventory.close()

    # Work for kit-a goes to kit-a only, while both announcements stand.
    model = tmp_path / "tiny.onnx"
    classifier(model)
    app.ok("deploy", str(model), "--kit", "kit-a", "--activate")
    job = _submit(app, "kit-a", "for-kit-a")
    assert [r["id"] for r in _rows(_agent_dir(kit), "SELECT id FROM jobs")] == [job]
    assert _rows(_agent_dir(kit), "SELECT COUNT(*) FROM tokens WHERE revoked_at IS NULL")[0][0] == 1

    rogue_dir = _agent_dir(rogue)
    assert _rows(rogue_dir, "SELECT COUNT(*) FROM tokens")[0][0] == 0
    assert _rows(rogue_dir, "SELECT COUNT(*) FROM jobs")[0][0] == 0
    assert _rows(rogue_dir, "SELECT COUNT(*) FROM uploads")[0][0] == 0
    assert not [p for p in rogue_dir.rglob("*.onnx")], "a model reached the rogue"
    actions = [r["action"] for r in _rows(rogue_dir, "SELECT action FROM audit")]
    assert not [a for a in actions if a.split(".")[0] in ("pair", "token", "model", "upload", "job")], actions


_SPOOF = """
import sys, time
from zeroconf import ServiceBrowser, ServiceInfo, Zeroconf
kind, address, victim = "_kitfleet._tcp.local.", sys.argv[1], sys.argv[2]
zc = Zeroconf(interfaces=[address])
names = []
ServiceBrowser(zc, kind, handlers=[lambda zeroconf, service_type, name, state_change: names.append(name)])
deadline, copied = time.monotonic() + 10, None
while copied is None and time.monotonic() < deadline:
    for name in list(names):
        info = zc.get_service_info(kind, name, 1000)
        if info is not None and info.properties.get(b"id", b"").decode() == victim:
            copied = info
    time.sleep(0.05)
if copied is None:
    sys.exit("the victim's announcement was not seen")
zc.register_service(ServiceInfo(kind, "kit-a spoof." + kind, port=8443, properties=copied.properties,
                                server="rogue.local.", parsed_addresses=[address]))
print("announcing", flush=True)
time.sleep(120)
"""


def _spoof(rogue: Host, device_id: str) -> subprocess.Popen[str]:
    """A raw zeroconf registration in the rogue's namespace, copying the victim's TXT record."""
    return subprocess.Popen(
        ["ip", "netns", "exec", rogue.ns, sys.executable, "-c", _SPOOF, rogue.address, device_id],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _announcing(proc: subprocess.Popen[str]) -> None:
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "announcing":
        pytest.fail(f"the spoofed announcement failed: {proc.communicate(timeout=10)[1]}")


def test_two_kits_that_swap_addresses_are_each_reached_by_their_key(lab: Lab, tmp_path: Path) -> None:
    a, b = lab.host("a"), lab.host("b")
    app = lab.app(KITFLEET_TIMEOUT=TIMEOUT)
    lab.start_agents([(a, "kit-a"), (b, "kit-b")])
    id_a, id_b = app.adopt_all([a, b])
    model = tmp_path / "tiny.onnx"
    classifier(model)
    app.ok("deploy", str(model), "--kit", "kit-a", "--kit", "kit-b", "--activate")
    before_a = _submit(app, "kit-a", "before-a")

    addr_a, addr_b = a.address, b.address
    for host in (a, b):
        assert host.agent is not None
        host.agent.stop()
    a.move(addr_b)
    b.move(addr_a)
    lab.start_agents([(a, "kit-a"), (b, "kit-b")])

    # No `discover` first: the first call meets the other kit's key at the old address, finds
    # the kit by its device ID over mDNS, checks its key there and follows it.
    job_a = _submit(app, "kit-a", "after-a")
    job_b = _submit(app, "kit-b", "after-b")

    for host, device, mine in ((a, id_a, {before_a, job_a}), (b, id_b, {job_b})):
        assert host.request("GET", "/v1/health").json()["device_id"] == device
        assert {r["id"] for r in _rows(_agent_dir(host), "SELECT id FROM jobs")} == mine
    listed: dict[str, set[str]] = {}
    for row in app.json("jobs", "list", "kit-a", "kit-b"):
        listed.setdefault(row["kit"], set()).add(row.get("job_id", row.get("error")))
    assert listed == {"kit-a": {before_a, job_a}, "kit-b": {job_b}}
    kits = {r["device_id"]: r for r in app.json("kits")}
    assert (kits[id_a]["address"], kits[id_a]["status"]) == (f"{addr_b}:{AGENT_PORT}", "online")
    assert (kits[id_b]["address"], kits[id_b]["status"]) == (f"{addr_a}:{AGENT_PORT}", "online")


def _one_adopted_kit(lab: Lab) -> tuple[Host, AppHost, str]:
    """A host running the agent "kit-a", adopted by a fresh app host: (kit, app, device ID)."""
    kit = lab.host("kit")
    app = lab.app(KITFLEET_TIMEOUT=TIMEOUT)
    lab.start_agents([(kit, "kit-a")])
    return kit, app, app.adopt(kit)


def test_a_regenerated_certificate_is_identity_changed_and_queued_jobs_stay(lab: Lab, tmp_path: Path) -> None:
    kit, app, device = _one_adopted_kit(lab)
    model = tmp_path / "tiny.onnx"
    classifier(model)
    app.ok("deploy", str(model), "--kit", "kit-a", "--activate")
    with ThreadPoolExecutor(3) as pool:
        queued = set(pool.map(lambda i: _submit(app, "kit-a", f"queued-{i}"), range(3)))
    (before,) = app.json("kits")
    assert before["status"] == "online"
    assert before["jobs_queued"] == 3

    assert kit.agent is not None
    kit.agent.stop()
    kit.agent.run_cli("identity", "--regenerate")
    kit.start_agent("kit-a")
    audited = _rows(_agent_dir(kit), "SELECT COUNT(*) FROM audit")[0][0]

    with ThreadPoolExecutor(2) as pool:
        kits_now = pool.submit(app.json, "kits")
        discovered = pool.submit(app.json, "discover", "--timeout", "2")
        (after,), (seen,) = kits_now.result(), discovered.result()
    assert after["device_id"] == device
    assert after["status"] == "identity_changed", after
    assert "identity changed" in after["detail"]
    assert "no token was sent" in after["detail"]
    assert before["active_models"]
    assert after["active_models"] == before["active_models"]
    assert after["jobs_queued"] == 3  # the app's last-known state of the kit is kept
    assert seen["device_id"] != device
    assert seen["status"] == "identity_changed"
    refused = app.kitfleet("jobs", "submit", "kit-a", "--kind", "benchmark", "--model", "tiny")
    assert refused.returncode != 0
    assert "identity changed" in refused.stdout + refused.stderr

    on_kit = {r["id"]: r["state"] for r in _rows(_agent_dir(kit), "SELECT id, state FROM jobs")}
    assert on_kit == dict.fromkeys(queued, "queued")
    assert _rows(_agent_dir(kit), "SELECT COUNT(*) FROM audit")[0][0] == audited  # no call came


def test_a_link_cut_halfway_through_an_upload_resumes_and_never_serves_the_partial(
    lab: Lab, tmp_path: Path
) -> None:
    kit, app, device = _one_adopted_kit(lab)
    old, new = tmp_path / "v1" / "tiny.onnx", tmp_path / "v2" / "tiny.onnx"
    old.parent.mkdir()
    new.parent.mkdir()
    classifier(old, version="1")
    manifest = classifier(new, version="2", size=300)  # ~4.3 MB of weights
    app.ok("deploy", str(old), "--kit", "kit-a", "--activate")
    token = _token(app, device)

    def served() -> tuple[int, str]:
        answer = kit.request(
            "POST", "/v1/models/tiny/infer", token, content=_png(), headers={"Content-Type": "image/png"}
        )
        return answer.status_code, answer.json().get("version", "") if answer.status_code == 200 else ""

    app.host.limit_rate("16mbit")  # ~2 MB/s from the app: the upload takes ~2 s
    started = time.monotonic()
    deploy = app.popen("deploy", str(new), "--kit", "kit-a", "--activate", "--json")
    uploads = _agent_dir(kit) / "models" / ".uploads"
    part = _wait_for_part(uploads, manifest.size_bytes // 2, deploy)
    kit.cut()
    cut_at = part.stat().st_size
    try:
        during = [served() for _ in range(3)]  # from inside the kit: the partial is not served
        time.sleep(2.5)
        assert part.stat().st_size < manifest.size_bytes
    finally:
        kit.restore()
    assert during == [(200, "1")] * 3, during
    out, _ = deploy.communicate(timeout=60)
    resumed_first_time = deploy.returncode == 0
    if not resumed_first_time:  # the deploy gave up while the link was down: run it again
        assert "run deploy again to resume" in out, out
        app.ok("deploy", str(new), "--kit", "kit-a", "--activate")
    elapsed = time.monotonic() - started

    rows = _rows(_agent_dir(kit), "SELECT id, state, sha256 FROM uploads WHERE version = '2'")
    assert [(r["state"], r["sha256"]) for r in rows] == [("installed", manifest.sha256)], [
        dict(r) for r in rows
    ]  # one upload, resumed: never restarted as a new one
    installed = [
        p
        for p in (_agent_dir(kit) / "models").rglob("*.onnx")
        if "2" in p.parent.name or p.parent.name == "2"
    ]
    assert any(hashlib.sha256(p.read_bytes()).hexdigest() == manifest.sha256 for p in installed), installed
    assert served() == (200, "2")
    assert not list(uploads.glob("*.part"))
    print(
        json.dumps(
            {
                "cut_at_bytes": cut_at,
                "size": manifest.size_bytes,
                "resumed_by_first_deploy": resumed_first_time,
                "seconds": round(elapsed, 1),
            }
        )
    )


def _wait_for_part(folder: Path, at_least: int, deploy: subprocess.Popen[str], timeout: float = 20.0) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for part in folder.glob("*.part"):
            if part.stat().st_size >= at_least:
                return part
        if deploy.poll() is not None:
            pytest.fail(f"the deploy ended before the cut: {deploy.communicate()[0]}")
        time.sleep(0.01)
    pytest.fail(f"the upload did not reach {at_least} bytes within {timeout:g} s")


def test_the_lab_leaves_nothing_behind_even_when_a_test_fails(tmp_path: Path) -> None:
    """Namespaces deleted, processes inside killed, and no lab address ever in the root namespace."""
    made = Lab(tmp_path).open()
    started: list[subprocess.Popen[bytes]] = []

    def failing_test() -> None:
        try:
            host = made.host("kit")
            started.append(subprocess.Popen(["ip", "netns", "exec", host.ns, "sleep", "60"]))
            root = subprocess.run(["ip", "-4", "addr"], capture_output=True, text=True, check=True)
            assert f"{made.subnet}." not in root.stdout
            raise RuntimeError("a failing test")
        finally:
            made.close()

    with pytest.raises(RuntimeError, match="a failing test"):
        failing_test()
    assert started[0].wait(5) == -9  # killed by the teardown, though nobody registered it
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    assert made.tag not in namespaces.stdout
