"""The kit's wall clock: read it, and set it when a technician finds it drifted.

The agent holds no power over the clock itself: its unit has `ProtectClock=yes` and no
capabilities. It asks systemd-timedated through `timedatectl`, which polkit allows for the
agent's user alone by the rule kitfleet installs (`50-kitfleet-clock.rules`), and which refuses
by itself while NTP keeps the clock. A kit without systemd says so and names the command to run.

`clock_control` chooses how: `auto` (the default: through timedated where kitfleet's package or
provisioning installed that polkit rule, the grant that makes it work, else refused), `timedated`,
`off` (a site that forbids it), or `test-offset` (TEST ONLY: the agent keeps an offset of its own,
so tests can skew and set a kit's clock without touching the test machine's). Agents started by
hand, by tests or by the demo have no rule, so a stray call never moves a workstation's clock.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from agent.toolkit.errors import Conflict, Forbidden, Unavailable
from agent.wire.preflight import ClockSetAnswer

__all__ = ["CLOCK_CONTROLS", "KitClock"]

CLOCK_CONTROLS = ("auto", "timedated", "off", "test-offset")
POLKIT_RULE = "50-kitfleet-clock.rules"
POLKIT_RULE_DIRS = (Path("/etc/polkit-1/rules.d"), Path("/usr/share/polkit-1/rules.d"))
TIMEDATECTL_TIMEOUT_S = 15.0


@dataclass
class KitClock:
    control: str
    offset_s: float = 0.0  # non-zero only in tests (test_clock_offset_s, test-offset)

    @classmethod
    def of(cls, control: str, offset_s: float) -> KitClock:
        if control not in CLOCK_CONTROLS:
            raise SystemExit(f"clock_control is {control!r}; use one of: {', '.join(CLOCK_CONTROLS)}")
        return cls(control, offset_s)

    def now(self) -> float:
        return time.time() + self.offset_s

    def set(self, target: float) -> ClockSetAnswer:
        """Set the clock to `target` (Unix time, UTC); blocking: run it in a thread."""
        before = self.now()
        if self.control == "off" or (self.control == "auto" and not _granted()):
            why = "clock_control is off" if self.control == "off" else f"no polkit rule {POLKIT_RULE}"
            raise Forbidden(
                "clock_off",
                f"this kit does not let the agent set its clock ({why})",
                "set it on the kit: `sudo timedatectl set-time 'YYYY-MM-DD HH:MM:SS UTC'`; or install "
                "the agent with its package or `kitfleet provision`, which grant it",
            )
        if self.control == "test-offset":
            self.offset_s += target - before
        else:
            _timedatectl_set(target)
        after = self.now()
        return ClockSetAnswer(before=before, after=after, adjusted_s=after - before, via=self.control)


def _granted() -> bool:
    """kitfleet's package or provisioning installed the polkit rule that lets the agent ask."""
    return any((folder / POLKIT_RULE).is_file() for folder in POLKIT_RULE_DIRS)


def _timedatectl_set(target: float) -> None:
    command = shutil.which("timedatectl")
    if command is None:
        raise Unavailable(
            "no_timedated",
            "this kit has no timedatectl (systemd-timedated), the only way the agent sets the clock",
            f"set it on the kit as root: `date -u -s @{round(target)}`",
        )
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(round(target)))
    try:
        done = subprocess.run(
            [command, "--no-ask-password", "set-time", stamp],
            capture_output=True,
            text=True,
            timeout=TIMEDATECTL_TIMEOUT_S,
            env={**os.environ, "LC_ALL": "C"},
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise Unavailable(
            "timedated_slow",
            f"timedatectl did not answer within {TIMEDATECTL_TIMEOUT_S:.0f} s",
            "check systemd-timedated on the kit: `systemctl status systemd-timedated`",
        ) from exc
    if done.returncode != 0:
        raise _refusal(done.stderr.strip()[-300:], stamp)


def _refusal(said: str, stamp: str) -> Conflict | Forbidden | Unavailable:
    by_hand = f"or set it on the kit: `sudo timedatectl set-time '{stamp}'`"
    if "synchronization is enabled" in said or "NTP" in said:
        return Conflict(
            "clock_ntp",
            f"the kit keeps its time from a time server (NTP), so it refuses a set time: {said}",
            "fix the kit's time server, or turn it off (`sudo timedatectl set-ntp false`) and try again",
        )
    if "denied" in said or "authentication" in said.lower():
        return Forbidden(
            "clock_denied",
            f"the kit's polkit does not let the agent set the clock: {said}",
            "reinstall the agent's package, which adds "
            "/usr/share/polkit-1/rules.d/50-kitfleet-clock.rules, " + by_hand,
        )
    return Unavailable("clock_failed", f"timedatectl could not set the clock: {said}", by_hand)
