"""The kit's power draw for the metrics ring: measured only (RAPL, NVML, battery discharge);
a kit that cannot measure reports none rather than an estimate dressed as a figure."""

from __future__ import annotations

from pathlib import Path

from agent.energy import EnergyMeter, NotMeasured, measuring_meter


class PowerGauge:
    """Average watts between one call of watts() and the next; None where nothing measures
    or for an interval the meter refused (a battery that charged meanwhile)."""

    def __init__(self, sysfs: Path = Path("/sys")) -> None:
        self._sysfs = sysfs
        self._meter: EnergyMeter | None = measuring_meter(sysfs)[0]
        self._token: object | None = None
        self._lost = False  # had a meter (a battery, now charging): look again each time
        self._restart()

    def watts(self) -> float | None:
        if self._meter is None or self._token is None:
            if self._lost:
                self._meter = measuring_meter(self._sysfs)[0]
            self._restart()
            return None
        try:
            reading = self._meter.stop(self._token)
        except NotMeasured:
            reading = None
        self._restart()
        return None if reading is None else round(reading.avg_watts, 2)

    def _restart(self) -> None:
        try:
            self._token = self._meter.start() if self._meter is not None else None
        except NotMeasured:
            self._meter, self._token, self._lost = None, None, True
