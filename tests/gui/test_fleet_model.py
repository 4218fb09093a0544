"""FleetTableModel with plain data: rows come and go properly, and only changed rows repaint."""

from __future__ import annotations

import re
import time

from PySide6.QtCore import QModelIndex, Qt
from pytestqt.qtbot import QtBot

from app.gui.tables.fleet_model import STATUS_COLOURS, FleetTableModel
from app.gui.tables.kit_row import COLUMNS
from tests.gui import samples
from tests.gui.samples import DEVICE_A, DEVICE_B


def changed_rows(model: FleetTableModel) -> list[int]:
    """Record the rows each dataChanged covers (always whole rows here)."""
    rows: list[int] = []

    def record(first: QModelIndex, last: QModelIndex) -> None:
        assert (first.column(), last.column()) == (0, len(COLUMNS) - 1)
        rows.extend(range(first.row(), last.row() + 1))

    model.dataChanged.connect(record)
    return rows


def text(model: FleetTableModel, row: int, column: str) -> str:
    return str(model.index(row, COLUMNS.index(column)).data())


def test_announcements_insert_rows_keyed_by_device_id(qtbot: QtBot) -> None:
    model = FleetTableModel()
    with qtbot.waitSignal(model.rowsInserted) as inserted:
        model.add_sighting(samples.sighting(DEVICE_A, "kit-a"))
    assert inserted.args[1:] == [0, 0]
    model.add_sighting(samples.sighting(DEVICE_B, "kit-b"))
    with qtbot.assertNotEmitted(model.rowsInserted):
        model.add_sighting(samples.sighting(DEVICE_A, "kit-a"))
    assert model.rowCount() == 2
    assert text(model, 0, "Status") == "unadopted"
    assert text(model, 0, "Device ID") == "AB12-AB12-AB12-…"
    assert model.index(0, 0).data(FleetTableModel.DeviceIdRole) == DEVICE_A
    assert text(model, 1, "Address") == "127.0.0.1:8443"


def test_data_changed_only_for_rows_that_changed(qtbot: QtBot) -> None:
    model = FleetTableModel()
    model.add_kits([samples.kit(DEVICE_A, "kit-a"), samples.kit(DEVICE_B, "kit-b")])
    changed = changed_rows(model)
    model.apply_statuses([samples.status("online", DEVICE_A), samples.status("offline", DEVICE_B)])
    assert changed == [0, 1]
    changed.clear()
    # A poll that only moves an online kit's last_seen_at changes nothing a view shows.
    model.apply_statuses(
        [samples.status("online", DEVICE_A, last_seen_at=1e10), samples.status("offline", DEVICE_B)]
    )
    assert changed == []
    model.apply_facts(samples.facts(DEVICE_B))
    assert changed == [1]


def test_status_text_and_colour(qtbot: QtBot) -> None:
    model = FleetTableModel()
    model.add_kits([samples.kit(DEVICE_A)])
    assert text(model, 0, "Status") == "checking…"
    # seen 600 s before now (the samples' fixed moment is as old as the whole test run)
    model.apply_statuses([samples.status("offline", DEVICE_A, last_seen_at=time.time() - 600)])
    assert re.fullmatch(r"offline \(last seen 1\d min ago\)", text(model, 0, "Status"))
    assert model.index(0, 0).data(FleetTableModel.StatusRole) == "offline"
    model.apply_statuses([samples.status("online", DEVICE_A)])
    status = model.index(0, COLUMNS.index("Status"))
    assert status.data() == "online"
    assert status.data(Qt.ItemDataRole.ForegroundRole).name() == STATUS_COLOURS["online"]
    model.apply_statuses([samples.status("identity_changed", DEVICE_A)])
    assert text(model, 0, "Status") == "identity changed"
    model.add_sighting(samples.sighting(DEVICE_B, "kit-a", marking="identity_changed"))
    assert text(model, 1, "Status") == "identity changed"


def test_facts_fill_hardware_columns(qtbot: QtBot) -> None:
    model = FleetTableModel()
    model.add_kits([samples.kit(DEVICE_A)])
    model.apply_facts(samples.facts(DEVICE_A))
    assert text(model, 0, "CPU") == "Ampere Altra"
    assert text(model, 0, "Cores") == "80"
    assert text(model, 0, "Memory (GiB)") == "64.0"
    assert text(model, 0, "Accelerators") == "NVIDIA A2"
    assert text(model, 0, "INT8") == "int8 dot-product (dotprod)", "what the CPU has, not a promise"
    memory = model.index(0, COLUMNS.index("Memory (GiB)"))
    assert memory.data(FleetTableModel.SortRole) == 64.0


def test_withdrawn_kits_leave_unless_adopted(qtbot: QtBot) -> None:
    model = FleetTableModel()
    model.add_sighting(samples.sighting(DEVICE_A, "kit-a"))
    model.add_sighting(samples.sighting(DEVICE_B, "kit-b", marking="adopted"))
    model.add_kits([samples.kit(DEVICE_B, "kit-b", port=9000)])
    with qtbot.waitSignal(model.rowsRemoved) as removed:
        model.remove_sighting(DEVICE_A)
    assert removed.args[1:] == [0, 0]
    model.remove_sighting(DEVICE_B)
    assert model.rowCount() == 1
    assert model.index(0, 0).data(FleetTableModel.DeviceIdRole) == DEVICE_B
    assert text(model, 0, "Address") == "127.0.0.1:9000"  # the inventory's address remains
