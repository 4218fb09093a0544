"""Setting a kit's clock to the laptop's, when a pre-flight finds it drifted.

Schedules, job windows and certificate checks hang on the kit's clock. The kit sets it through
systemd-timedated (`agent/clock.py`) and audits it as `kit.clock`; the client's call hook
writes the same entry to the app's audit log.
"""

from __future__ import annotations

import time

from agent.wire.preflight import ClockSetAnswer, ClockSetRequest
from app.fleet.errors import Error
from app.fleet.inventory import Kit
from app.fleet.service import Fleet

__all__ = ["async_set_clock", "set_clock_command"]


def set_clock_command(kit: Kit) -> str:
    return f"kitfleet set-clock {kit.name}"


async def async_set_clock(fleet: Fleet, kit: Kit) -> ClockSetAnswer:
    """Send the laptop's UTC time, read as late as possible; raises `Error` saying what to do."""
    if kit.scope != "admin":
        raise Error(
            f"setting {kit.name}'s clock needs an admin token; this app holds {kit.scope}. "
            f"Adopt it with one: `kitfleet adopt {kit.name} --code CODE --scope admin`, "
            "or set it on the kit: `sudo timedatectl set-time 'YYYY-MM-DD HH:MM:SS UTC'`"
        )
    return await fleet.async_call(kit, lambda c: c.set_clock(ClockSetRequest(time=time.time())))
