"""A job's energy from a reading: per 1,000 inferences, per image, a stream's watts over time."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import Settings
from agent.energy import EnergyReading
from agent.jobs.energy import MAX_SAMPLES, job_energy, watts_over_time
from agent.wire import JobEnergy
from app.fleet.energy import energy_lines


def test_benchmark_counts_timed_and_warmup_runs_times_batch() -> None:
    reading = EnergyReading.of(11.0, 2.0, "rapl", "measured by RAPL (package-0); the whole package")
    spec = {"kind": "benchmark", "params": {"warmup": 1}}
    summary = {"rows": [{"batch": 1, "runs": 9}, {"batch": 4, "runs": 9}, {"batch": 8, "skipped": "fixed"}]}
    energy = job_energy(reading, spec, summary)
    assert energy.inferences == 10 + 40
    assert energy.joules_per_1000_inferences == pytest.approx(220.0)
    assert energy.joules_per_image is None
    assert energy.avg_watts == pytest.approx(5.5)


def test_batch_gives_joules_per_image_and_a_job_without_a_count_none() -> None:
    reading = EnergyReading.of(3.0, 1.0, "estimate", "estimated from CPU time × 15 W TDP")
    assert job_energy(reading, {"kind": "batch-infer"}, {"images": 30}).joules_per_image == pytest.approx(0.1)
    bare = job_energy(reading, {"kind": "command"}, {"exit_code": 0})
    assert bare.joules_per_1000_inferences is None
    assert bare.joules == 3.0


def test_stream_watts_over_time_stay_a_few_samples() -> None:
    points = [(5.0 * i, 10.0 * i) for i in range(1, 101)]  # 2 W throughout
    samples = watts_over_time(points)
    assert len(samples) <= MAX_SAMPLES
    assert samples[-1].at_s == 500.0
    assert all(s.watts == pytest.approx(2.0) for s in samples)


def test_the_line_a_technician_reads() -> None:
    note = "estimated from CPU time × 15 W TDP (not measured: RAPL counters are readable by root only; grant)"
    energy = JobEnergy(
        joules=12.3, avg_watts=4.1, seconds=3, source="estimate", note=note, joules_per_1000_inferences=2.4
    )
    lines = energy_lines({"energy": energy.model_dump(exclude_none=True)})
    assert lines[0] == (
        "energy 12.3 J, 4.1 W avg, 2.4 J per 1,000 inferences (estimated from CPU time × 15 W TDP)"
    )
    assert "readable by root only" in lines[1]
    assert energy_lines({"rows": []}) == []
    assert energy_lines({"energy": {"source": "solar"}}) == [], "an unknown source from a newer kit: left out"


def test_a_benchmarks_job_figure_says_it_includes_load_and_warmup() -> None:
    reading = EnergyReading.of(2.0, 1.0, "estimate", "estimated from CPU time × 15 W TDP")
    energy = job_energy(
        reading, {"kind": "benchmark", "params": {"warmup": 0}}, {"rows": [{"batch": 1, "runs": 4}]}
    )
    assert energy.basis() == "estimated from CPU time × 15 W TDP"
    assert "model load and warm-up included" in energy.detail()


def test_tdp_w_must_be_positive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KITFLEET_AGENT_TDP_W", "0")
    with pytest.raises(SystemExit, match="KITFLEET_AGENT_TDP_W"):
        Settings.resolve(tmp_path, {})
    monkeypatch.setenv("KITFLEET_AGENT_TDP_W", "28")
    assert Settings.resolve(tmp_path, {}).tdp_w == 28.0
