"""The soak's infer window over two readings of a kit's counts (rollout/infer_rate.py)."""

from __future__ import annotations

from app.fleet.rollout.infer_rate import window


def test_the_soak_window_subtracts_the_reading_at_activation_unless_the_agent_restarted() -> None:
    at = {"since": 100.0, "answered": 5.0, "refused": 1.0, "failed": 0.0}
    same = window(at, {"since": 100.0, "answered": 9.0, "refused": 3.0, "failed": 1.0})
    assert (same.answered, same.refused, same.failed) == (4, 2, 1)
    assert same.rate == 0.2
    assert same.said() == "1 of 5 infer requests failed (2 refused as the client's fault)"
    restarted = window(at, {"since": 200.0, "answered": 2.0, "refused": 0.0, "failed": 2.0})
    assert (restarted.answered, restarted.failed, restarted.rate) == (2, 2, 0.5)
    unknown = window(None, {"since": 100.0, "answered": 0.0, "refused": 0.0, "failed": 0.0})
    assert (unknown.rate, unknown.said()) == (0.0, "0 of 0 infer requests failed")
