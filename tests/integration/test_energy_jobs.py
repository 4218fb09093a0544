"""Energy per job end to end: a real agent benchmarks the bundled digits model, and the CLI
shows joules per 1,000 inferences with where the figure came from."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from agent.energy import FallbackMeter
from agent.wire import JobEnergy
from app.fleet.service import Fleet
from tests.integration.conftest import AgentFactory
from tests.integration.test_cli_jobs import cli, cli_json, configure, deploy


def test_benchmark_result_carries_joules_per_1000_inferences_with_its_source(
    start_agent: AgentFactory, fleet: Fleet, adopt: Any, tmp_path: Path
) -> None:
    configure(tmp_path, "watt", tdp_w=20)
    kit = adopt(start_agent("watt", mdns=False))
    deploy(fleet, kit)
    submit = ["jobs", "submit", "watt", "--kind", "benchmark", "--model", "digits-cnn"]
    submit += ["--batch-sizes", "1,4", "--param", "runs=20", "--param", "warmup=2", "--watch"]
    cli(fleet, *submit)
    [job] = cli_json(fleet, "jobs", "list", "watt")

    answer = cli_json(fleet, "jobs", "results", "watt", job["job_id"])
    energy = JobEnergy.model_validate(answer["result"]["energy"])
    assert energy.inferences == (20 + 2) * (1 + 4)
    assert energy.joules is not None
    assert energy.joules > 0
    assert energy.seconds is not None
    assert energy.seconds > 0
    assert energy.joules_per_1000_inferences == round(energy.joules * 1000 / energy.inferences, 4)
    expected = FallbackMeter().source  # what this machine can measure with, as the agent's worker sees it
    assert energy.source == expected
    if expected == "estimate":
        assert "estimated from CPU time × 20 W TDP" in (energy.note or "")

    shown = cli(fleet, "jobs", "results", "watt", job["job_id"]).stdout
    [line] = [line for line in shown.splitlines() if line.strip().startswith("energy ")]
    assert "J per 1,000 inferences" in line
    assert f"({energy.basis()})" in line
    assert " W avg" in line
    assert "J/1k inf" in shown, "each benchmark row: its timed runs' own figure"
    rows = answer["result"]["rows"]
    assert all(row["joules_per_1000_inferences"] >= 0 for row in rows)
    print(line)  # for a person reading the run: what this machine measured or estimated
    assert "energy " in cli(fleet, "jobs", "show", "watt", job["job_id"]).stdout

    report = tmp_path / "report.html"
    cli(fleet, "report", "--out", str(report))
    page = html.unescape(report.read_text())
    assert "<th>Energy</th>" in page
    assert energy.line() in page, "the field report lists the job's energy with its source"
