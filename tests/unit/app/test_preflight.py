"""The laptop's own pre-flight judgements: clock skew thresholds and the verdict kept for the report."""

from __future__ import annotations

from agent.wire import AuditEntry
from app.fleet.preflight import CLOCK_FAIL_S, CLOCK_WARN_S, PREFLIGHT_ACTION, check_clock, last_preflight


def test_clock_skew_passes_warns_and_fails_at_its_thresholds() -> None:
    assert check_clock(1000.0 + CLOCK_WARN_S - 0.5, 1000.0).status == "pass"
    behind = check_clock(1000.0 - 30, 1000.0)
    assert behind.status == "warn"
    assert "30.0 s behind" in behind.message
    ahead = check_clock(1000.0 + CLOCK_FAIL_S + 1, 1000.0)
    assert ahead.status == "fail"
    assert "timedatectl" in ahead.action


def _entry(seq: int, action: str, outcome: str) -> AuditEntry:
    return AuditEntry(
        seq=seq,
        ts=float(seq),
        actor_id="",
        actor_label="kitfleet (tech)",
        action=action,
        target="alpha",
        outcome=outcome,
        detail={},
        prev_hash="0" * 64,
        hash="0" * 64,
    )


def test_the_newest_preflight_verdict_is_the_one_reported() -> None:
    entries = [
        _entry(1, PREFLIGHT_ACTION, "not ready"),
        _entry(2, "model.deploy", "ok"),
        _entry(3, PREFLIGHT_ACTION, "ready"),
    ]
    found = last_preflight(entries)
    assert found is not None
    assert (found.seq, found.outcome) == (3, "ready")
    assert last_preflight(entries[1:2]) is None
