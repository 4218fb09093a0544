"""A technician's day (issue 20): short IDs, a watch that survives a flaky link, tags, terminal
manners. The real CLI against real agents on loopback."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from PIL import Image

from agent.wire import JobRequest
from app.fleet.deploy import async_deploy
from app.fleet.inventory import Kit
from app.fleet.ops import FleetOps
from app.fleet.service import Fleet
from app.fleet.settings import AppSettings
from tests.integration.conftest import AgentFactory
from tests.integration.test_cli_jobs import cli, cli_json, refused
from tests.onnx_models import classifier


def _deploy_tiny(fleet: Fleet, kit: Kit, folder: Path, version: str = "1", seed: int = 0) -> None:
    model = folder / version / "tiny.onnx"
    model.parent.mkdir(parents=True)
    classifier(model, version=version, seed=seed)
    outcomes = asyncio.run(async_deploy(fleet, model, [kit], activate=True))
    assert all(o.ok for o in outcomes), [o.message for o in outcomes]


def test_short_ids_name_jobs_versions_and_kits_and_ambiguity_asks_for_more(
    start_agent: AgentFactory, fleet: Fleet, adopt: Any, tmp_path: Path
) -> None:
    agent = start_agent("friction-kit", mdns=False)
    kit = adopt(agent)
    _deploy_tiny(fleet, kit, tmp_path / "bench")
    [job] = cli_json(
        fleet, "jobs", "submit", "fricti", "--kind", "benchmark", "--model", "tiny", "--param", "runs=2"
    )
    job_id = job["job_id"]
    watched = cli(fleet, "jobs", "watch", "friction", job_id[:12]).stdout  # as the board shows it
    assert f"done    friction-kit: job {job_id}" in watched, watched
    shown = cli_json(fleet, "jobs", "show", "friction-kit", job_id[:6])
    assert shown["job_id"] == job_id
    assert "p50 ms" in cli(fleet, "jobs", "results", "friction-kit", job_id[:8].upper()).stdout
    refused(fleet, "jobs", "logs", "friction-kit", job_id[:5], says="give at least 6 hex digits")
    other = "0" * 6 if not job_id.startswith("000000") else "f" * 6
    refused(fleet, "jobs", "show", "friction-kit", other, says=f"no job {other!r}")

    for version, seed in (("2026.01.1", 1), ("2026.01.2", 2)):
        _deploy_tiny(fleet, kit, tmp_path, version, seed)
    activate = ["models", "activate", "friction-kit", "tiny"]
    said = refused(fleet, *activate, "2026.01", says="give more characters")
    assert "2026.01.1" in said, "the candidates are listed"
    assert "2026.01.2" in said
    cli(fleet, "models", "activate", "friction-kit", "tiny", "2026.01.1")
    [tiny] = [m for m in cli_json(fleet, "models", "list", "friction-kit") if m["name"] == "tiny"]
    [second] = [v for v in tiny["versions"] if v["version"] == "2026.01.2"]
    _versions_by_prefix_in_jobs_streams_and_infer(fleet, agent.data_dir, tmp_path, second["sha256"][:8])
    cli(fleet, "models", "delete", "friction-kit", "tiny", second["sha256"][:8])
    versions = [v for v in cli_json(fleet, "models", "list", "friction-kit") if v["name"] == "tiny"]
    assert [v["version"] for v in versions[0]["versions"]] == ["1", "2026.01.1"], "2026.01.2 deleted"


def _versions_by_prefix_in_jobs_streams_and_infer(
    fleet: Fleet, kit_data: Path, tmp_path: Path, prefix: str
) -> None:
    """--version of `jobs submit`, `stream start` and `infer` takes what `models list` shows, as
    `models activate` does: they sent the typed text to the kit, which knew no version by it."""
    _frames(kit_data)
    picture = tmp_path / "red.png"
    Image.new("RGB", (16, 16), (200, 30, 30)).save(picture)
    commands = {
        "jobs": ["jobs", "submit", "friction-kit", "--kind", "benchmark", "--model", "tiny"],
        "stream": ["stream", "start", "friction-kit", "--model", "tiny", "--source", "frames"],
        "infer": ["infer", "friction-kit", "tiny", str(picture)],
    }
    for command in commands.values():
        said = refused(fleet, *command, "--version", "2026.01", says="give more characters")
        assert "2026.01.1" in said, "the candidates are listed"
        assert "2026.01.2" in said
    [queued] = cli_json(fleet, *commands["jobs"], "--version", prefix)
    shown = cli_json(fleet, "jobs", "show", "friction-kit", queued["job_id"])
    assert shown["request"]["params"]["version"] == "2026.01.2"
    streamed = cli_json(fleet, *commands["stream"], "--version", prefix)
    assert streamed["request"]["params"]["version"] == "2026.01.2"
    assert cli_json(fleet, *commands["infer"], "--version", prefix)["version"] == "2026.01.2"


def _frames(kit_data: Path) -> None:
    """A folder `frames` of one picture under the kit's data root, for `stream start`."""
    frames = kit_data / "datasets" / "frames"
    frames.mkdir(parents=True)
    Image.new("RGB", (16, 16), (200, 30, 30)).save(frames / "red.png")


def test_watch_rides_out_a_kit_restart_and_reports_the_real_end(
    start_agent: AgentFactory, fleet: Fleet, adopt: Any, tmp_path: Path
) -> None:
    """Stopping the kit for a moment used to print "FAILED … unreachable" and exit 1 while the
    job went on after the restart."""
    agent = start_agent("flaky", mdns=False)
    _deploy_tiny(fleet, adopt(agent), tmp_path)
    submit = ["jobs", "submit", "flaky", "--kind", "benchmark", "--model", "tiny", "--param", "runs=2"]
    [job] = cli_json(fleet, *submit, "--not-before", "+40s")  # unfinished when the kit stops
    env = dict(os.environ, KITFLEET_MDNS_INTERFACES="127.0.0.1")
    watch = subprocess.Popen(
        [sys.executable, "-m", "app", "--home", str(fleet.settings.home), "jobs", "watch", "flaky"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert watch.stdout is not None
        first = watch.stdout.readline()  # the watch has seen the job: now take the kit away
        assert job["job_id"][:12] in first, first
        agent.stop()
        time.sleep(8)  # longer than the old watch's patience of ten quick polls
        agent.start()  # same data dir, same port: the queued job is still there
        out, err = watch.communicate(timeout=120)
    finally:
        watch.kill()
    assert "FAILED" not in out, out
    assert f"done    flaky: job {job['job_id']}" in out, (out, err)
    assert "flaky: kit unreachable, retrying" in err, err
    assert watch.returncode == 0, (out, err)


def test_concurrent_audit_pulls_never_raise_a_false_broken_chain(
    start_agent: AgentFactory, settings: AppSettings, fleet: Fleet, adopt: Any, tmp_path: Path
) -> None:
    """A kit adopted right after a failed attempt showed "audit log chain broken: entry 1 follows
    2": two pulls of its log, both from the same anchor, were merged one after the other. Here
    polls race in one event loop, and in threads with their own loops and inventory connections
    (as the window's loop thread and a CLI command do), while the kit's log grows."""
    kit = adopt(start_agent("audited", mdns=False))
    _deploy_tiny(fleet, kit, tmp_path)
    parked = JobRequest(kind="benchmark", params={"model": "tiny"}, not_before=time.time() + 86400)

    async def grow_the_log(own: Fleet) -> None:  # each job queued is an entry in the kit's log
        await own.async_call(kit, lambda c: c.submit_job(parked))

    async def race(own: Fleet) -> None:
        ops = FleetOps(own)
        for _ in range(4):
            await asyncio.gather(grow_the_log(own), *(ops.async_poll([kit]) for _ in range(6)))
            await asyncio.gather(*(ops.async_verify_audit(kit) for _ in range(2)), ops.async_poll([kit]))

    def in_a_thread() -> None:
        own = Fleet(settings)
        try:
            asyncio.run(race(own))
        finally:
            own.close()

    threads = [threading.Thread(target=in_a_thread) for _ in range(3)]
    for thread in threads:
        thread.start()
    asyncio.run(race(fleet))
    for thread in threads:
        thread.join(120)
    chain = fleet.audit.chain_status(kit.device_id)
    assert chain.problems == [], chain.problems
    assert chain.entries >= 4 * 4, "the log grew while the pulls raced"
    said = cli(fleet, "audit", "audited").stdout
    assert "audit log of audited: verified" in said, said


def test_tags_show_add_remove_and_aim_deploy_jobs_streams_and_reports(
    start_agent: AgentFactory, fleet: Fleet, adopt: Any, tmp_path: Path
) -> None:
    """`kitfleet tag kitA` with no tags used to wipe them."""
    north, south = start_agent("north-1", mdns=False), start_agent("south-1", mdns=False)
    adopt(north)
    adopt(south)
    assert cli(fleet, "tag", "north-1", "site-n", "rack 2").stdout.strip() == "north-1: rack 2, site-n"
    assert cli(fleet, "tag", "north-1").stdout.strip() == "north-1: rack 2, site-n", "showing keeps them"
    assert cli_json(fleet, "tag", "north-1", "--remove", "rack 2")["tags"] == ["site-n"]
    table = cli(fleet, "kits").stdout.splitlines()
    assert "TAGS" in table[0]
    assert "site-n" in next(line for line in table if line.startswith("north-1"))

    model = tmp_path / "tiny.onnx"
    classifier(model)
    deployed = cli_json(fleet, "deploy", str(model), "--tag", "site-n", "--activate")
    assert [row["kit"] for row in deployed] == ["north-1"], "only the tagged kit"
    queued = cli_json(fleet, "jobs", "submit", "--tag", "site-n", "--kind", "benchmark", "--model", "tiny")
    assert [row["kit"] for row in queued] == ["north-1"]
    assert [row["kit"] for row in cli_json(fleet, "jobs", "list", "--tag", "site-n")] == ["north-1"]
    refused(fleet, "jobs", "list", "--tag", "site-s", says="no kit carries the tag 'site-s'")
    for kit in (north, south):
        _frames(kit.data_dir)
    streamed = cli_json(fleet, "stream", "start", "--tag", "site-n", "--model", "tiny", "--source", "frames")
    assert [row["kit"] for row in streamed] == ["north-1"]
    report = tmp_path / "site-n.html"
    assert "(1 kits," in cli(fleet, "report", "--tag", "site-n", "--out", str(report)).stdout
    kits = report.read_text().split("<h2>Audit trail</h2>")[0]  # the laptop's own log names both
    assert "north-1" in kits
    assert "south-1" not in kits, "only the tagged kit is reported"
    assert cli_json(fleet, "tag", "north-1", "--clear")["tags"] == []
