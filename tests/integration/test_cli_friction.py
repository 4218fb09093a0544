"""A technician's day (issue 20): short IDs, a watch that survives a flaky link, tags, terminal
manners. The real CLI against real agents on loopback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.fleet.service import Fleet
from tests.integration.conftest import AgentFactory
from tests.integration.test_cli_jobs import cli, cli_json, deploy, refused
from tests.onnx_models import classifier


def test_short_ids_name_jobs_versions_and_kits_and_ambiguity_asks_for_more(
    start_agent: AgentFactory, fleet: Fleet, adopt: Any, tmp_path: Path
) -> None:
    kit = adopt(start_agent("friction-kit", mdns=False))
    deploy(fleet, kit)
    [job] = cli_json(
        fleet, "jobs", "submit", "fricti", "--kind", "benchmark", "--model", "digits-cnn", "--param", "runs=2"
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
        model = tmp_path / version / "tiny.onnx"
        model.parent.mkdir()
        classifier(model, version=version, seed=seed)
        cli(fleet, "deploy", str(model), "--kit", "friction-kit", "--activate")
    activate = ["models", "activate", "friction-kit", "tiny"]
    said = refused(fleet, *activate, "2026.01", says="give more characters")
    assert "2026.01.1" in said, "the candidates are listed"
    assert "2026.01.2" in said
    cli(fleet, "models", "activate", "friction-kit", "tiny", "2026.01.1")
    [tiny] = [m for m in cli_json(fleet, "models", "list", "friction-kit") if m["name"] == "tiny"]
    [second] = [v for v in tiny["versions"] if v["version"] == "2026.01.2"]
    cli(fleet, "models", "delete", "friction-kit", "tiny", second["sha256"][:8])
    versions = [v for v in cli_json(fleet, "models", "list", "friction-kit") if v["name"] == "tiny"]
    assert [v["version"] for v in versions[0]["versions"]] == ["2026.01.1"]
