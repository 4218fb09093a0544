"""The agent's per-version infer counts: which exceptions are the request's fault and which the
kit's, the snapshot, and their Prometheus lines."""

from __future__ import annotations

from agent.metrics import prometheus
from agent.metrics.infer_counts import ANSWERED, FAILED, REFUSED, InferCounter, outcome_of
from agent.toolkit.errors import BadInput, Busy, Invalid, NotFound


def test_refusals_are_the_requests_fault_except_outputs_contradicting_the_manifest() -> None:
    assert outcome_of(BadInput("bad_image", "not a picture")) == REFUSED
    assert outcome_of(Invalid("bad_tensor", "wrong shape")) == REFUSED
    assert outcome_of(NotFound("no_version", "no 9.9")) == REFUSED
    assert outcome_of(Busy("busy", "later")) == REFUSED
    assert outcome_of(Invalid("output_mismatch", "11 columns, 10 labels")) == FAILED
    assert outcome_of(RuntimeError("[ONNXRuntimeError] Reshape")) == FAILED


def test_counts_by_version_and_outcome_render_as_prometheus_counters() -> None:
    counts = InferCounter()
    for outcome in (ANSWERED, ANSWERED, REFUSED, FAILED):
        counts.add("digits", "1.1", outcome)
    counts.add("digits", "1.0", ANSWERED)
    rows = counts.snapshot()
    assert [(r.version, r.requests, r.answered, r.refused, r.failed) for r in rows] == [
        ("1.0", 1, 1, 0, 0),
        ("1.1", 4, 2, 1, 1),
    ]
    text = prometheus.render(None, "kit", "0", counts=rows)
    assert (
        'kitfleet_infer_outcomes_total{device_id="kit",model="digits",version="1.1",outcome="failed"} 1'
        in text
    )
    assert "# TYPE kitfleet_infer_outcomes_total counter" in text
    assert "kitfleet_infer_outcomes_total" not in prometheus.render(None, "kit", "0")
