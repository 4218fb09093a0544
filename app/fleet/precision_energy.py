"""The precision choice by energy (issue 24, `--prefer energy`): among the variants within the
accuracy tolerance, the one with the fewest joules per 1,000 inferences on the kit wins.

The figures come from each variant's benchmark job on the kit (its batch-1 row's
`joules_per_1000_inferences`, over the timed runs only) with how they were got: measured by a
power meter (RAPL, NVML, a battery) or estimated from CPU time × the CPU's TDP. An estimate
follows CPU time, so it ranks variants much as speed does; the reason says which it was, so
nobody takes an estimate for a measurement. Variants without a figure (an older kit) cannot
be ranked: the choice falls back to speed and says so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, Protocol, TypeVar

from app.fleet.errors import Error

__all__ = ["PREFERENCES", "Preference", "by_energy", "energy_basis", "prefer"]

Preference = Literal["speed", "energy"]
PREFERENCES: tuple[Preference, ...] = ("speed", "energy")
MEASURED = frozenset({"rapl", "nvml", "battery"})


class Measured(Protocol):
    """What the energy choice reads of a variant's measurement (precision_decide.VariantMeasure)."""

    @property
    def joules_per_1000(self) -> float | None: ...

    @property
    def energy_basis(self) -> str: ...


M = TypeVar("M", bound=Measured)


def prefer(text: str) -> Preference:
    """`speed` or `energy`, as `--prefer` takes it."""
    found = next((p for p in PREFERENCES if p == text.strip().lower()), None)
    if found is None:
        raise Error(f"prefer {text!r}: choose speed or energy")
    return found


def energy_basis(source: str | None, note: str | None) -> str:
    """How a figure was got, in a few words: 'measured (rapl)' or 'estimated from CPU time × 15 W TDP'."""
    if source in MEASURED:
        return f"measured ({source})"
    said = (note or "").split(" (not measured:")[0].split(";")[0].strip()
    return said if said.startswith("estimated") else "estimated" + (f" ({said})" if said else "")


def by_energy(
    base: M, eligible: list[M], notes: list[str], label: Callable[[M], str]
) -> tuple[M, str] | None:
    """The eligible variant using the least energy and why, or None when some eligible variant
    has no figure (the caller chooses by speed then)."""
    if any(m.joules_per_1000 is None for m in eligible):
        return None
    best = min(eligible, key=lambda m: (m.joules_per_1000 or 0.0, m is not base))
    if best is base:
        others = [m for m in eligible if m is not base]
        compared = [
            f"{label(m)} uses {_ratio(m, base)} its energy here ({_figures(m, base)})" for m in others
        ]
        return best, f"{label(base)} kept for energy: " + "; ".join(
            compared + notes or ["no other variant to compare"]
        )
    said = (
        f"{label(best)} uses {_ratio(best, base)} the energy of {label(base)} here ({_figures(best, base)})"
    )
    return best, "; ".join([said, *notes])


def _ratio(m: Measured, base: Measured) -> str:
    return f"{(m.joules_per_1000 or 0.0) / (base.joules_per_1000 or 1.0):.2f}x"


def _figures(m: Measured, base: Measured) -> str:
    said = f"{m.joules_per_1000:.3g} vs {base.joules_per_1000:.3g} J per 1,000 inferences"
    bases = list(dict.fromkeys(x.energy_basis or "source unknown" for x in (m, base)))
    return f"{said}, {' and '.join(bases)}"
