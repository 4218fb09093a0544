"""One row of the fleet table as plain data: what mDNS, the inventory and the kit itself said.

Qt-free on purpose, so the merging rules and the text of every cell are testable alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

from agent.wire import FactFamilies, format_device_id
from app.fleet import summary
from app.fleet.ages import age_text
from app.fleet.discovery import Announcement
from app.fleet.inventory import Kit
from app.fleet.ops import KitView
from app.fleet.service import KitStatus, Marking
from app.fleet.summary import GIB

__all__ = ["COLUMNS", "MEASURED", "KitRow", "RowStatus", "Sighting", "age_text", "cell_sort", "cell_text"]

RowStatus = Literal["online", "offline", "unadopted", "identity_changed", "conflict", "checking"]
COLUMNS = (
    "Name",
    "Status",
    "Alerts",
    "CPU %",
    "Mem %",
    "Disk free",
    "Temp",
    "Battery",
    "Serving",
    "Jobs",
    "Tags",
    "Device ID",
    "Kit model",
    "Address",
    "Agent version",
    "CPU",
    "Cores",
    "Memory (GiB)",
    "Accelerators",
    "INT8",
)
# Live figures: for a kit that is away they are last-known, and shown as such (greyed, with age).
MEASURED = frozenset({"CPU %", "Mem %", "Disk free", "Temp", "Battery", "Serving", "Jobs"})


@dataclass(frozen=True)
class Sighting:
    """An announcement with how it relates to the inventory, judged on the bridge's thread."""

    announcement: Announcement
    marking: Marking


@dataclass(frozen=True)
class KitRow:
    device_id: str
    announcement: Announcement | None = None
    marking: Marking = "unadopted"
    kit: Kit | None = None
    status: str = ""  # the last KitStatus.status, "" until the first poll answers
    families: FactFamilies | None = None
    facts_collected_at: float = 0.0
    view: KitView | None = None  # figures, models, jobs, alerts and tags from the last poll

    @property
    def name(self) -> str:
        if self.kit is not None:
            return self.kit.name
        return self.announcement.name if self.announcement else self.device_id[:8]

    @property
    def row_status(self) -> RowStatus:
        if self.kit is None:
            # another device announcing an adopted kit's name, or the key at its old address
            return self.marking if self.marking in ("identity_changed", "conflict") else "unadopted"
        if self.kit.state == "identity_changed" or self.status == "identity_changed":
            return "identity_changed"
        if self.status in ("online", "offline"):
            return "online" if self.status == "online" else "offline"
        return "checking"

    def with_sighting(self, sighting: Sighting) -> KitRow:
        return replace(self, announcement=sighting.announcement, marking=sighting.marking)

    def without_sighting(self) -> KitRow:
        return replace(self, announcement=None)

    def with_kit(self, kit: Kit) -> KitRow:
        return replace(self, kit=kit, marking="adopted")

    def with_status(self, status: KitStatus) -> KitRow:
        return replace(self, kit=status.kit, status=status.status, marking="adopted")

    def with_facts(self, families: FactFamilies, collected_at: float) -> KitRow:
        return replace(self, families=families, facts_collected_at=collected_at)

    def with_view(self, view: KitView) -> KitRow:
        return replace(self, view=view)

    @property
    def stale(self) -> bool:
        """The figures shown are last-known: the kit did not answer the last poll."""
        return self.view is not None and self.row_status != "online"

    def signature(self) -> tuple[object, ...]:
        """What views show of this row; a new poll that changes none of it changes nothing."""
        seen = self.kit.last_seen_at if self.kit and self.row_status == "offline" else None
        cells = tuple(cell_text(self, c) for c in range(len(COLUMNS)) if COLUMNS[c] != "Status")
        return self.row_status, seen, cells, self.facts_collected_at, self.stale

    @property
    def has_facts(self) -> bool:
        """Whether the kit has said anything about its hardware yet."""
        return self.families is not None and bool(self.families.model_fields_set or self.families.model_extra)


def _status_text(row: KitRow) -> str:
    status = row.row_status
    if status == "offline":
        return f"offline (last seen {age_text(row.kit.last_seen_at if row.kit else None)})"
    return {"identity_changed": "identity changed", "conflict": "name conflict", "checking": "checking…"}.get(
        status, status
    )


def _address(row: KitRow) -> str:
    if row.announcement is not None:
        return f"{row.announcement.host}:{row.announcement.port}"
    return row.kit.address if row.kit else ""


def _hint(row: KitRow, field: str) -> str:
    """Prefer what the inventory pinned; fall back to what the kit announces."""
    value = getattr(row.kit, field, "") if row.kit else ""
    return value or (getattr(row.announcement, field, "") if row.announcement else "")


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _memory_text(row: KitRow) -> str:
    gib = summary.memory_gib(row.families)
    return "" if gib is None else f"{gib:.1f}"


def _figure(row: KitRow, field: str, text: Callable[[float], str]) -> str:
    sample = row.view.sample if row.view else None
    value = getattr(sample, field, None) if sample else None
    return "" if value is None else text(value)


def _jobs(row: KitRow) -> str:
    snapshot = row.view.snapshot if row.view else None
    if snapshot is None:
        return ""
    running, queued = snapshot.count_jobs("running"), snapshot.count_jobs("queued")
    return f"{running} running, {queued} queued" if running or queued else "idle"


def _alerts(row: KitRow) -> str:
    alerts = row.view.alerts if row.view else []
    if not alerts:
        return ""
    worst = alerts[0]
    more = f" (+{len(alerts) - 1})" if len(alerts) > 1 else ""
    text = worst.message if worst.message.startswith(worst.kind) else f"{worst.kind}: {worst.message}"
    return text + more


_TEXT: dict[str, Callable[[KitRow], str]] = {
    "Name": lambda row: row.name,
    "Status": _status_text,
    "Alerts": _alerts,
    "CPU %": lambda row: _figure(row, "cpu_percent", lambda v: f"{v:.0f} %"),
    "Mem %": lambda row: _figure(row, "memory_percent", lambda v: f"{v:.0f} %"),
    "Disk free": lambda row: _figure(row, "disk_free_bytes", lambda v: f"{v / GIB:.1f} GiB"),
    "Temp": lambda row: _figure(row, "temperature_c", lambda v: f"{v:.0f} °C"),
    "Battery": lambda row: _figure(row, "battery_percent", lambda v: f"{v:.0f} %"),
    "Serving": lambda row: (
        ", ".join(row.view.snapshot.active_models()) if row.view and row.view.snapshot else ""
    ),
    "Jobs": _jobs,
    "Tags": lambda row: ", ".join(row.view.tags) if row.view else "",
    "Device ID": lambda row: f"{format_device_id(row.device_id, groups=3)}-…",
    "Kit model": lambda row: _hint(row, "kit_model"),
    "Address": _address,
    "Agent version": lambda row: _hint(row, "agent_version"),
    "CPU": lambda row: summary.cpu_name(row.families),
    "Cores": lambda row: _text(summary.logical_cores(row.families)),
    "Memory (GiB)": _memory_text,
    "Accelerators": lambda row: summary.accelerators(row.families),
    "INT8": lambda row: summary.int8_advice(row.families),
}


def cell_text(row: KitRow, column: int) -> str:
    return _TEXT[COLUMNS[column]](row)


_SORT_FIELDS = {
    "CPU %": "cpu_percent",
    "Mem %": "memory_percent",
    "Disk free": "disk_free_bytes",
    "Temp": "temperature_c",
    "Battery": "battery_percent",
}


def cell_sort(row: KitRow, column: int) -> str | float:
    """The value a column sorts by: numbers for numeric columns, text otherwise."""
    name = COLUMNS[column]
    if name in _SORT_FIELDS:
        sample = row.view.sample if row.view else None
        value = getattr(sample, _SORT_FIELDS[name], None) if sample else None
        return -1.0 if value is None else float(value)
    if name == "Alerts":  # the worst first when sorted descending
        alerts = row.view.alerts if row.view else []
        return float(sum(3 if a.severity == "critical" else 1 for a in alerts))
    if COLUMNS[column] == "Cores":
        cores = summary.logical_cores(row.families)
        return float(cores) if cores is not None else -1.0
    if COLUMNS[column] == "Memory (GiB)":
        gib = summary.memory_gib(row.families)
        return -1.0 if gib is None else gib
    return cell_text(row, column).lower()
