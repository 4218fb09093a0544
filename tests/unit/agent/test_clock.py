"""The kit's clock control: which way a 'set the clock' goes, and what each refusal says."""

from __future__ import annotations

import time

import pytest

from agent.clock import POLKIT_RULE, POLKIT_RULE_DIRS, KitClock, _refusal
from agent.toolkit.errors import Conflict, Forbidden, Unavailable


def test_test_offset_moves_only_the_agents_own_clock() -> None:
    clock = KitClock.of("test-offset", -300.0)
    before_machine = time.time()
    answer = clock.set(time.time())
    assert 299 < answer.adjusted_s < 301
    assert abs(clock.now() - time.time()) < 1
    assert abs(time.time() - before_machine) < 5  # the machine's clock was not touched


def test_off_refuses_and_names_the_command_to_run_on_the_kit() -> None:
    with pytest.raises(Forbidden) as refused:
        KitClock.of("off", 0.0).set(time.time())
    assert "clock_control is off" in refused.value.message
    assert "timedatectl set-time" in (refused.value.hint or "")


@pytest.mark.skipif(
    any((d / POLKIT_RULE).exists() for d in POLKIT_RULE_DIRS),
    reason="this machine has kitfleet's polkit rule",
)
def test_auto_without_the_polkit_grant_refuses() -> None:
    with pytest.raises(Forbidden) as refused:
        KitClock.of("auto", 0.0).set(time.time())
    assert POLKIT_RULE in refused.value.message


def test_an_unknown_control_stops_the_agent_with_the_choices() -> None:
    with pytest.raises(SystemExit, match="auto, timedated, off, test-offset"):
        KitClock.of("ntp", 0.0)


@pytest.mark.parametrize(
    ("said", "kind", "code"),
    [
        ("Failed to set time: Automatic time synchronization is enabled", Conflict, "clock_ntp"),
        ("Failed to set time: Access denied", Forbidden, "clock_denied"),
        ("Failed to set time: Interactive authentication required.", Forbidden, "clock_denied"),
        (
            "System has not been booted with systemd as init system (PID 1). Can't operate.",
            Unavailable,
            "clock_failed",
        ),
    ],
)
def test_timedatectl_refusals_by_cause(said: str, kind: type, code: str) -> None:
    refusal = _refusal(said, "2026-12-06 04:00:00 UTC")
    assert isinstance(refusal, kind)
    assert refusal.error == code
    assert said in refusal.message
