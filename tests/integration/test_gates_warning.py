"""Gates that do nothing say so (issue 20 item 13): a job gated on battery or temperature on a kit
without those sensors runs, and the real agent on this machine says so at submit and on the job,
which `kitfleet jobs submit` and `jobs show` print. What this machine's sensors read decides which
warnings are due (glances-style: invariants against the real hardware, not fixed values)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psutil
import pytest

from app.fleet.service import Fleet
from tests.integration.conftest import AgentFactory
from tests.integration.test_cli_jobs import cli, cli_json, configure

NO_BATTERY = psutil.sensors_battery() is None
NO_THERMAL = not any(
    t.current is not None for sensors in psutil.sensors_temperatures().values() for t in sensors
)
TRUE = json.dumps(["/bin/true"])


def test_a_gate_without_its_sensor_is_said_at_submit_and_on_the_job(
    start_agent: AgentFactory, fleet: Fleet, adopt: Any, tmp_path: Path
) -> None:
    if not (NO_BATTERY or NO_THERMAL):
        pytest.skip("this machine has both a battery and a temperature sensor: every gate is kept")
    configure(tmp_path, "gated", jobs_allowed_commands=["/bin/true"])
    adopt(start_agent("gated", mdns=False))
    submit = ("jobs", "submit", "gated", "--kind", "command", "--param", f"argv={TRUE}")
    said = cli(fleet, *submit, "--min-battery", "50", "--max-temp", "80").stdout
    # before: "ok     gated: job … queued" and nothing else; the job then ran as if ungated
    assert said.count("  warning: gate not enforceable") == [NO_BATTERY, NO_THERMAL].count(True), said
    assert ("a battery above 50% was asked for, but this kit reports no battery" in said) == NO_BATTERY
    assert ("a temperature below 80 °C was asked for" in said) == NO_THERMAL
    assert "so the job runs regardless" in said

    [row] = cli_json(fleet, *submit, "--min-battery", "20")
    assert row["warnings"] == (
        [
            "gate not enforceable: a battery above 20% was asked for, but this kit reports no battery, "
            "so the job runs regardless"
        ]
        if NO_BATTERY
        else []
    )
    [watched] = cli_json(fleet, "jobs", "watch", "gated", row["job_id"])
    assert watched["state"] == "done"  # nothing held it back
    shown = cli(fleet, "jobs", "show", "gated", row["job_id"]).stdout
    assert ("  warning: gate not enforceable: a battery above 20%" in shown) == NO_BATTERY

    [plain] = cli_json(fleet, *submit)
    assert plain["warnings"] == []  # no gate, nothing to say
