"""Intel/AMD RAPL through the powercap sysfs tree: package and DRAM domains.

Each domain's `energy_uj` counts up to `max_energy_range_uj` and wraps to zero; a reading
below the previous one means it wrapped once since (the meter is sampled often enough that
it cannot wrap twice unseen). RAPL measures the whole package, so a job's reading includes
whatever else the kit did meanwhile.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from agent.energy.reading import EnergyReading, NotMeasured, Source

__all__ = ["GRANT_HINT", "RaplMeter", "rapl_domains"]

# How a technician gives the agent's user read access (kernels since 5.10 make energy_uj
# root-only, after the PLATYPUS side channel).
GRANT_HINT = (
    "to measure instead of estimating, let the agent read RAPL: put the line "
    '\'SUBSYSTEM=="powercap", ACTION=="add", RUN+="/bin/chmod o+r /sys%p/energy_uj"\' '
    "in /etc/udev/rules.d/90-kitfleet-rapl.rules and run 'udevadm trigger -s powercap', "
    "or add to the agent's systemd unit (systemctl edit kitfleet-agent) the line "
    "'ExecStartPre=+/bin/sh -c \"chmod o+r /sys/class/powercap/intel-rapl:*/energy_uj "
    "/sys/class/powercap/intel-rapl:*:*/energy_uj\"', then restart the agent"
)


@dataclass(frozen=True)
class Domain:
    name: str  # package-0, dram, ...
    path: Path
    max_uj: int


def rapl_domains(sysfs: Path) -> list[Domain]:
    """Every package domain and its DRAM subdomain (core/uncore are inside the package)."""
    root = sysfs / "class" / "powercap"
    found = []
    for folder in sorted(root.glob("intel-rapl:*")):
        name = _text(folder / "name")
        package = folder.name.count(":") == 1
        if package or name == "dram":
            found.append(Domain(name or folder.name, folder, _int(_text(folder / "max_energy_range_uj"))))
    return found


def _text(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


@dataclass
class _Token:
    started: float
    last: list[int]
    total_uj: list[int] = field(default_factory=list)


class RaplMeter:
    source: Source = "rapl"

    def __init__(self, sysfs: Path = Path("/sys")) -> None:
        self.domains = rapl_domains(sysfs)
        if not self.domains:
            raise NotMeasured("this kit has no RAPL counters (/sys/class/powercap)")
        self._read()  # refuse now, not at stop, when the counters are root-only

    def _read(self) -> list[int]:
        try:
            return [int((d.path / "energy_uj").read_text()) for d in self.domains]
        except PermissionError:
            raise NotMeasured(f"RAPL counters are readable by root only; {GRANT_HINT}") from None
        except (OSError, ValueError) as exc:
            raise NotMeasured(f"RAPL counters could not be read ({exc})") from None

    def start(self) -> _Token:
        return _Token(time.monotonic(), self._read(), [0] * len(self.domains))

    def sample(self, token: object) -> None:
        assert isinstance(token, _Token)
        now = self._read()
        for i, (before, after) in enumerate(zip(token.last, now, strict=True)):
            step = after - before
            if step < 0:  # wrapped past max_energy_range_uj
                step += self.domains[i].max_uj
            token.total_uj[i] += max(step, 0)
        token.last = now

    def stop(self, token: object) -> EnergyReading:
        assert isinstance(token, _Token)
        self.sample(token)
        names = ", ".join(d.name for d in self.domains)
        note = f"measured by RAPL ({names}); the whole package, not this job alone"
        return EnergyReading.of(sum(token.total_uj) / 1e6, time.monotonic() - token.started, "rapl", note)


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:  # absent or odd: a wrap is then not corrected, the rest still counts
        return 0
