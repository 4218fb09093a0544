"""Attacks on the app from what kits send (issue 15: 2, 11 and 20).

2.  A rogue kit the app has adopted lists result files named `../../x`, an absolute path,
    `a/../../b`, a name with a terminal escape, sizes it does not keep to: `kitfleet jobs results
    --out DIR` writes nothing outside DIR, says which names it refused, and never writes more
    than a kit listed or more than the disk can spare.
11. Job labels, schedule names, audit actors and mDNS names with terminal escapes, carriage
    returns and bidi overrides: the agent refuses them at the door, and what still comes from
    an old database, a rogue kit or an announcement reaches no terminal, log or report raw.
20. A kit killed right after a deploy, an activation or a rollback is shown (last-known) with
    the models the app itself just changed.

Every socket here is on 127.0.0.1; zeroconf is bound to 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import pytest

from agent.wire import SERVICE_TYPE
from app.fleet.inventory import Kit
from app.fleet.localagent import LOOPBACK, LocalAgent
from app.fleet.service import Fleet
from app.fleet.text import printable
from tests.integration import conftest as integration
from tests.integration.conftest import AgentFactory
from tests.integration.helpers import device_id, kitfleet, pair_body, raw_client
from tests.integration.test_jobs_api import deploy, wait
from tests.lab.rogue_kit import RogueKit, file_answer, finished_job, json_answer
from tests.onnx_models import classifier

start_agent = integration.start_agent  # the fixtures, by name
settings, fleet = integration.settings, integration.fleet

JOB = "ab" * 12
PAYLOAD = b"written by a rogue kit\n"
# What must never reach a terminal, log or report raw: C0 (but tab and newline), DEL, C1, and
# the characters that reorder text.
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
HOSTILE = "evil\x1b[2J\x1b]0;owned\x07\r\u202eexe.txt"


def _adopt(fleet: Fleet, agent: LocalAgent) -> Kit:
    """Adopted with the admin scope: the audit log is read too."""
    return asyncio.run(fleet.async_adopt(agent.address, agent.pair_code(), scope="admin"))


def _files(root: Path, skip: tuple[Path, ...]) -> set[Path]:
    return {p for p in root.rglob("*") if not any(p.is_relative_to(s) for s in skip)}


# --- 2. a rogue kit's result names and sizes ------------------------------------------------


def _listing(files: list[tuple[str, int]]) -> dict[str, Any]:
    return {
        "job_id": JOB,
        "state": "done",
        "result": {"rows": []},
        "files": [{"name": name, "size": size} for name, size in files],
    }


@contextmanager
def _rogue(
    tmp_path: Path, files: list[tuple[str, int]], served: dict[str, bytes], fallback: bytes = PAYLOAD
) -> Iterator[RogueKit]:
    """A rogue kit adopted into the app's home (tmp_path / "home"), with one finished job."""
    routes = {
        f"/v1/jobs/{JOB}": json_answer(finished_job(JOB)),
        f"/v1/jobs/{JOB}/results": json_answer(_listing(files)),
    }
    routes |= {f"/v1/jobs/{JOB}/results/{name}": file_answer(data) for name, data in served.items()}
    with RogueKit(tmp_path / "rogue", routes=routes, fallback=file_answer(fallback)) as rogue:
        rogue.adopt_into(tmp_path / "home")
        yield rogue


def test_result_names_from_a_rogue_kit_never_land_outside_the_out_folder(tmp_path: Path) -> None:
    escape = tmp_path / "escaped-absolute"
    bad = [
        "../../x",
        "../../../x",
        "a/../../../../b",
        str(escape),
        "..",
        ".hidden",
        "job.json",
        "ok\x1b[2J.txt",
        "results.csv\u202egpj",
        "x" * 300,
        "nul\0byte",
        "negative.csv",
    ]
    good = "results.jsonl"
    files = [(name, -5 if name == "negative.csv" else len(PAYLOAD)) for name in [*bad, good]]
    out, home = tmp_path / "out", tmp_path / "home"
    with _rogue(tmp_path, files, {good: PAYLOAD}) as rogue:
        before = _files(tmp_path, (rogue.data_dir, home))
        done = kitfleet(home, "jobs", "results", "rogue", JOB, "--out", str(out))
    said = done.stdout + done.stderr
    written = _files(tmp_path, (rogue.data_dir, home)) - before
    folder = out / "rogue" / JOB
    outside = sorted(str(p) for p in written if not p.is_relative_to(folder) and p not in folder.parents)
    assert not outside, f"written outside {folder}: {outside}\n{said}"
    assert not escape.exists()
    assert not (tmp_path / "x").exists()
    assert sorted(p.name for p in folder.iterdir()) == ["job.json", good], said
    assert (folder / good).read_bytes() == PAYLOAD
    assert json.loads((folder / "job.json").read_text())["job_id"] == JOB, "the app's own job.json"
    for name in bad:
        assert f"refused {printable(name)[:60]}" in said, (name, said)
    assert done.returncode == 1, "a listing with refused names is not a clean collection"
    assert not RAW.search(said), said
    assert "Traceback" not in said


def test_a_rogue_kit_cannot_make_the_app_write_more_than_it_listed(tmp_path: Path) -> None:
    out, home = tmp_path / "out", tmp_path / "home"
    flood = b"y" * (4 << 20)
    with _rogue(tmp_path, [("results.jsonl", 10)], {"results.jsonl": flood}) as rogue:
        done = kitfleet(home, "jobs", "results", "rogue", JOB, "--out", str(out))
    said = done.stdout + done.stderr
    assert done.returncode == 1, said
    assert "results.jsonl came with more than the 10 bytes it listed" in said, said
    biggest = max(
        (p.stat().st_size for p in _files(tmp_path, (rogue.data_dir, home)) if p.is_file()), default=0
    )
    assert biggest <= 10, "never more than what the kit listed is written"
    assert not (out / "rogue" / JOB).exists(), "a download that broke its word publishes nothing"
    assert "Traceback" not in said


def test_a_kit_claiming_more_than_the_disk_can_spare_is_refused_before_any_download(tmp_path: Path) -> None:
    out, home = tmp_path / "out", tmp_path / "home"
    with _rogue(tmp_path, [("results.jsonl", 1 << 60)], {"results.jsonl": PAYLOAD}) as rogue:
        done = kitfleet(home, "jobs", "results", "rogue", JOB, "--out", str(out))
    said = done.stdout + done.stderr
    assert done.returncode == 1, said
    assert "results.jsonl alone" in said, said
    assert "free in" in said, said
    assert not any("/results/" in s for s in rogue.seen), f"nothing downloaded: {rogue.seen}"
    assert "Traceback" not in said


# --- 11. control characters in what kits send ----------------------------------------------


def test_the_agent_refuses_control_characters_in_labels_names_and_the_app_name(
    start_agent: AgentFactory, tmp_path: Path
) -> None:
    agent = start_agent("strict")
    token = _token(agent)
    with raw_client(agent, token) as client:
        model = deploy(client, tmp_path).name
        job = {"kind": "benchmark", "params": {"model": model, "runs": 1}}
        refusals = {
            "job label": client.post("/v1/jobs", json={**job, "label": HOSTILE}),
            "schedule name": client.post(
                "/v1/schedules", json={"name": HOSTILE, "cron": "0 3 * * *", "job": job}
            ),
            "schedule job label": client.post(
                "/v1/schedules",
                json={"name": "nightly", "cron": "0 3 * * *", "job": {**job, "label": "a\rb"}},
            ),
        }
        for what, response in refusals.items():
            assert response.status_code == 422, (what, response.status_code, response.text)
            assert "control character" in response.json()["message"], (what, response.text)
        assert client.get("/v1/jobs").json() == [], "nothing was queued"
        assert client.get("/v1/schedules").json() == [], "no schedule was made"
    with raw_client(agent) as anonymous:
        body = pair_body(agent.pair_code(), device_id(agent)) | {"app_name": "laptop\x1b[2J\u202e"}
        response = anonymous.post("/v1/pair", json=body)
    assert response.status_code == 422, response.text
    assert "control character" in response.json()["message"]


def _token(agent: LocalAgent) -> str:
    with raw_client(agent) as client:
        response = client.post("/v1/pair", json=pair_body(agent.pair_code(), device_id(agent)))
    response.raise_for_status()
    return str(response.json()["token"])


def _plant(agent: LocalAgent, job_id: str, schedule_id: str, token_id: str) -> None:
    """What an older agent let in, in its database: a job label, a schedule name (due an hour
    ago, so the agent logs skipping it) and the app's token label (the audit actor)."""
    with closing(sqlite3.connect(agent.data_dir / "agent.db", timeout=10)) as db:
        request = json.loads(db.execute("SELECT request FROM jobs WHERE id = ?", (job_id,)).fetchone()[0])
        request["label"] = HOSTILE
        with db:
            db.execute("UPDATE jobs SET request = ? WHERE id = ?", (json.dumps(request), job_id))
            db.execute(
                "UPDATE schedules SET name = ?, next_run_at = ? WHERE id = ?",
                (HOSTILE, time.time() - 3600, schedule_id),
            )
            db.execute("UPDATE tokens SET label = ? WHERE id = ?", (HOSTILE, token_id))


@contextmanager
def _announced(name: str) -> Iterator[None]:
    """A kit announcing `name` over mDNS on 127.0.0.1 only."""
    from zeroconf import ServiceInfo, Zeroconf

    zc = Zeroconf(interfaces=[LOOPBACK])
    info = ServiceInfo(
        SERVICE_TYPE,
        f"hostile-kit.{SERVICE_TYPE}",
        port=9,
        addresses=[socket.inet_aton(LOOPBACK)],
        server="hostile-kit.local.",
        properties={"id": "f" * 64, "name": name, "model": f"model {name}", "ver": f"1{name}"},
    )
    try:
        zc.register_service(info)
        yield
    finally:
        zc.unregister_service(info)
        zc.close()


def test_hostile_text_from_kits_reaches_no_terminal_log_or_report_raw(
    start_agent: AgentFactory, fleet: Fleet, tmp_path: Path
) -> None:
    agent = start_agent("plain")
    kit = _adopt(fleet, agent)
    home = fleet.settings.home
    with raw_client(agent, kit.token) as client:
        model = deploy(client, tmp_path).name
        job = client.post(
            "/v1/jobs",
            json={"kind": "benchmark", "params": {"model": model, "runs": 1}, "label": "placeholder"},
        ).json()
        wait(client, job["job_id"])
        schedule = client.post(
            "/v1/schedules",
            json={
                "name": "placeholder",
                "cron": "0 3 * * *",
                "job": {"kind": "benchmark", "params": {"model": model, "runs": 1}},
            },
        ).json()
    _plant(agent, job["job_id"], schedule["schedule_id"], kit.token_id)
    time.sleep(2.5)  # the agent re-reads a token's label after 2 s
    submitted = kitfleet(
        home, "jobs", "submit", "plain", "--kind", "benchmark", "--model", model, "--param", "runs=1"
    )  # audited under the planted actor label
    assert submitted.returncode == 0, submitted.stderr

    shown: dict[str, str] = {}
    for args in (
        ("jobs", "list", "plain"),
        ("jobs", "schedules", "plain"),
        ("audit", "plain"),
        ("audit",),
        ("jobs", "show", "plain", job["job_id"]),
        ("kits",),
    ):
        done = kitfleet(home, *args)
        shown[" ".join(args)] = done.stdout + done.stderr
    with _announced(HOSTILE):
        done = kitfleet(home, "discover", "--timeout", "4")
    shown["discover"] = done.stdout + done.stderr
    report = tmp_path / "report.html"
    done = kitfleet(home, "report", "--out", str(report))
    assert done.returncode == 0, done.stderr
    shown["report.html"] = report.read_text(encoding="utf-8")

    escaped = printable(HOSTILE)
    for where, text in shown.items():
        assert not RAW.search(text), (where, RAW.findall(text), text[-2000:])
    for where in ("jobs list plain", "jobs schedules plain", "audit plain", "discover", "report.html"):
        assert escaped in shown[where].replace("&amp;", "&").replace("&#x27;", "'"), (where, shown[where])

    log = _agent_log(agent, "skipped a run")
    assert not RAW.search(log), log
    assert escaped in log, log


def _agent_log(agent: LocalAgent, wanted: str, timeout: float = 20.0) -> str:
    """The agent's log lines holding `wanted`, once there are some."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = (agent.data_dir / "stderr.log").read_text(encoding="utf-8", errors="strict")
        lines = [line for line in text.splitlines() if wanted in line]
        if lines:
            return "\n".join(lines)
        time.sleep(0.2)
    pytest.fail(f"the agent never logged {wanted!r}: {agent.log_tail()}")


# --- 20. last-known models follow what the app itself did -----------------------------------


def test_a_kit_killed_right_after_model_changes_shows_them_last_known(
    start_agent: AgentFactory, fleet: Fleet, tmp_path: Path
) -> None:
    agent = start_agent("brief", mdns=False)
    _adopt(fleet, agent)
    home = fleet.settings.home
    v1, v2 = tmp_path / "v1" / "tiny.onnx", tmp_path / "v2" / "tiny.onnx"
    for path, version, seed in ((v1, "1", 0), (v2, "2", 1)):
        path.parent.mkdir()
        classifier(path, version=version, seed=seed)
    for path in (v1, v2):
        done = kitfleet(home, "deploy", str(path), "--kit", "brief", "--activate")
        assert done.returncode == 0, done.stdout + done.stderr
    agent.kill()  # at once: no poll has read the kit since the first deploy
    kits = json.loads(kitfleet(home, "kits", "--json").stdout)
    assert kits[0]["status"] == "offline"
    assert kits[0]["active_models"] == ["tiny 2"], kits[0]

    agent.start()
    done = kitfleet(home, "models", "rollback", "brief", "tiny")
    assert done.returncode == 0, done.stdout + done.stderr
    agent.kill()
    kits = json.loads(kitfleet(home, "kits", "--json").stdout)
    assert kits[0]["active_models"] == ["tiny 1"], "the rollback is what the kit last said"
    listing = kitfleet(home, "models", "list", "brief")
    said = listing.stdout + listing.stderr
    assert listing.returncode == 0, said
    assert "last known" in said, said
    assert re.search(r"^\* tiny\s+1 ", listing.stdout, re.M), said
    assert re.search(r"^< tiny\s+2 ", listing.stdout, re.M), said


def test_a_kit_answering_outside_the_api_is_shown_away_and_stops_no_one_else(
    tmp_path: Path, start_agent: AgentFactory
) -> None:
    """One rogue (or broken) kit among the fleet: `kitfleet kits` still lists every kit, the
    rogue one as away with the reason, instead of ending with the rogue's error."""
    home = tmp_path / "home"
    agent = start_agent("honest", mdns=False)
    kitfleet(home, "adopt", agent.address, "--code", agent.pair_code()).check_returncode()
    garbage = {
        "/v1/metrics": json_answer({"samples": "not a list"}),
        "/v1/models": json_answer({"no": 1}),
        "/v1/jobs": file_answer(b"\x00not json"),
    }
    with RogueKit(tmp_path / "rogue", routes=garbage) as rogue:
        rogue.adopt_into(home)
        done = kitfleet(home, "kits", "--json")
    said = done.stdout + done.stderr
    assert done.returncode == 0, said
    kits = {kit["name"]: kit for kit in json.loads(done.stdout)}
    assert kits["honest"]["status"] == "online", said
    assert kits["rogue"]["status"] == "offline", said
    assert "Traceback" not in said
