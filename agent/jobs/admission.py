"""What may start now: resources that fit, run windows, battery and temperature gates.

The queue is scanned in order of effective priority: priority plus one level per
`aging_s` seconds waited, so low-priority work cannot starve. The first eligible job
that does not fit blocks the jobs behind it (no backfilling past it), so a large
job is not overtaken forever by a stream of small ones.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import psutil

from agent.errors import Invalid
from agent.wire import Gates, JobRequest, Resources

MIB = 1 << 20


@dataclass(frozen=True)
class Capacity:
    threads: int
    memory_mb: int
    gpu: int

    @classmethod
    def of_kit(cls, threads: int, memory_mb: int, gpus: int) -> Capacity:
        """The kit's totals, unless settings give smaller (or test) figures."""
        return cls(
            threads=threads or psutil.cpu_count() or 1,
            memory_mb=memory_mb or psutil.virtual_memory().total // MIB,
            gpu=gpus if gpus >= 0 else _nvidia_gpus(),
        )

    def refuse_impossible(self, need: Resources) -> None:
        """422 for a request no amount of waiting could satisfy on this kit."""
        for what, wanted, has in (
            ("threads", need.threads, self.threads),
            ("memory_mb", need.memory_mb, self.memory_mb),
            ("gpu", need.gpu, self.gpu),
        ):
            if wanted > has:
                raise Invalid(
                    "impossible_resources",
                    f"the job asks for {what}={wanted}; this kit has {has} for jobs",
                    f"ask for at most {what}={has}",
                )

    def fits(self, need: Resources, held: Resources) -> bool:
        return (
            held.threads + need.threads <= self.threads
            and held.memory_mb + need.memory_mb <= self.memory_mb
            and held.gpu + need.gpu <= self.gpu
        )


def _nvidia_gpus() -> int:
    # nvidia-smi can take seconds, so it is asked only when no setting says how many GPUs
    from agent.facts import accelerators

    devices = accelerators.collect().devices or []
    return sum(1 for d in devices if d.vendor == "NVIDIA" and d.kind == "gpu")


def total(resources: Iterable[Resources]) -> Resources:
    """What running jobs hold together (zero is valid here, unlike in a request)."""
    items = list(resources)
    return Resources.model_construct(
        threads=sum(r.threads for r in items),
        memory_mb=sum(r.memory_mb for r in items),
        gpu=sum(r.gpu for r in items),
    )


# (battery percent, on mains power) or None without a battery; hottest sensor °C or None
Battery = Callable[[], tuple[float, bool] | None]
Temperature = Callable[[], float | None]
SENSORS_KEPT_S = 5.0  # how long a reading of which sensors a kit has is trusted


def kit_battery() -> tuple[float, bool] | None:
    battery = psutil.sensors_battery() if hasattr(psutil, "sensors_battery") else None
    return None if battery is None else (battery.percent, bool(battery.power_plugged))


def kit_temperature() -> float | None:
    read = getattr(psutil, "sensors_temperatures", None)
    readings = [
        t.current
        for sensors in (read() if read else {}).values()
        for t in sensors
        if t.current is not None and t.current > -50
    ]
    return max(readings) if readings else None


@dataclass
class Gatekeeper:
    battery: Battery = kit_battery
    temperature: Temperature = kit_temperature
    _seen: tuple[float, bool, bool] | None = field(default=None, init=False, repr=False)

    def blocked(self, gates: Gates) -> str | None:
        """Why the gates hold a job back now, or None."""
        if gates.min_battery_percent is not None:
            reading = self.battery()
            if reading is not None and not reading[1] and reading[0] < gates.min_battery_percent:
                return f"battery {reading[0]:.0f}% is below {gates.min_battery_percent:g}%"
        if gates.max_temperature_c is not None:
            hottest = self.temperature()
            if hottest is not None and hottest > gates.max_temperature_c:
                return f"temperature {hottest:.0f} °C is above {gates.max_temperature_c:g} °C"
        return None

    def unenforceable(self, gates: Gates) -> list[str]:
        """Gates this kit has no sensor for: `blocked` lets the job run as if they were not set,
        which the job then says instead of keeping quiet."""
        if gates.min_battery_percent is None and gates.max_temperature_c is None:
            return []
        has_battery, has_temperature = self._sensors()
        said = []
        if gates.min_battery_percent is not None and not has_battery:
            said.append(
                f"gate not enforceable: a battery above {gates.min_battery_percent:g}% was asked for, "
                "but this kit reports no battery, so the job runs regardless"
            )
        if gates.max_temperature_c is not None and not has_temperature:
            said.append(
                f"gate not enforceable: a temperature below {gates.max_temperature_c:g} °C was asked "
                "for, but this kit has no temperature sensor to read, so the job runs regardless"
            )
        return said

    def _sensors(self) -> tuple[bool, bool]:
        """Whether a battery and a temperature sensor answer, read again after SENSORS_KEPT_S: a
        job list of gated jobs asks once, not once a job (a hwmon read costs ~0.4 ms or more)."""
        now = time.monotonic()
        if self._seen is None or now - self._seen[0] > SENSORS_KEPT_S:
            self._seen = (now, self.battery() is not None, self.temperature() is not None)
        return self._seen[1], self._seen[2]


def in_window(window: str | None, now: float) -> bool:
    """Whether the kit's local clock is inside "HH:MM-HH:MM" (which may wrap midnight)."""
    if window is None:
        return True
    start, end = (_minutes(part) for part in window.split("-"))
    local = dt.datetime.fromtimestamp(now)
    minute = local.hour * 60 + local.minute
    if start <= end:
        return start <= minute < end
    return minute >= start or minute < end


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def admissible(
    rows: Iterable[sqlite3.Row],
    capacity: Capacity,
    held: Resources,
    slots: int,
    now: float,
    gatekeeper: Gatekeeper,
    held_back: list[str] | None = None,
) -> list[tuple[str, JobRequest]]:
    """The jobs to start now, in order, from queued rows sorted by effective priority.
    Jobs passed over for their window, gates or back-off are added to `held_back`."""
    chosen: list[tuple[str, JobRequest]] = []
    for row in rows:
        if len(chosen) >= slots:
            break
        request = JobRequest.model_validate_json(row["request"])
        if waiting_reason(row, request, now, gatekeeper) is not None:
            if held_back is not None:
                held_back.append(str(row["id"]))
            continue  # held by its window, gates or back-off: it blocks nobody
        if not capacity.fits(request.resources, held):
            break  # no backfilling past it: the first job that waits for resources blocks the rest
        chosen.append((str(row["id"]), request))
        held = total([held, request.resources])
    return chosen


def waiting_reason(row: sqlite3.Row, request: JobRequest, now: float, gatekeeper: Gatekeeper) -> str | None:
    """Why an eligible-looking queued job cannot start yet, apart from resources."""
    if row["not_before"] > now:
        return f"not before {dt.datetime.fromtimestamp(row['not_before']).isoformat(timespec='seconds')}"
    if not in_window(request.window, now):
        return f"outside its run window {request.window}"
    return gatekeeper.blocked(request.gates)
