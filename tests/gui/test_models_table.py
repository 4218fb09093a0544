"""ModelsTableModel with plain data: one row per version, states marked, only changes repaint."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, Qt
from pytestqt.qtbot import QtBot

from agent.wire import ModelInfo, ModelVersion
from app.gui.tables.models_table import MODEL_COLUMNS, ModelsTableModel, size_text


def info(name: str, active: str | None, previous: str | None, *versions: str) -> ModelInfo:
    return ModelInfo(
        name=name,
        task="classification",
        active_version=active,
        previous_version=previous,
        versions=[
            ModelVersion(
                version=v,
                precision="int8" if "int8" in v else "fp32",
                sha256=f"{i:x}" * 64,
                size_bytes=1_500_000,
                installed_at=1_700_000_000 + i,
                active=v == active,
            )
            for i, v in enumerate(versions)
        ],
    )


def cells(model: ModelsTableModel, column: str) -> list[str]:
    position = MODEL_COLUMNS.index(column)
    return [str(model.index(row, position).data()) for row in range(model.rowCount())]


def test_versions_newest_first_with_serving_and_previous_marked(qtbot: QtBot) -> None:
    model = ModelsTableModel()
    model.set_models([info("yolo", "1", None, "1"), info("digits", "2", "1", "1", "2", "2-int8")])
    assert cells(model, "Model") == ["digits", "digits", "digits", "yolo"]
    assert cells(model, "Version") == ["2-int8", "2", "1", "1"]
    assert cells(model, "State") == ["", "serving", "previous (roll-back target)", "serving"]
    assert cells(model, "Precision") == ["int8", "fp32", "fp32", "fp32"]
    assert cells(model, "Size") == ["1.5 MB"] * 4
    assert cells(model, "SHA-256")[1] == "111111111111…"
    serving = model.index(1, MODEL_COLUMNS.index("State"))
    assert serving.data(ModelsTableModel.ActiveRole) is True
    assert serving.data(Qt.ItemDataRole.FontRole).bold()
    assert serving.data(ModelsTableModel.NameRole) == "digits"
    assert serving.data(ModelsTableModel.VersionRole) == "2"
    assert model.index(0, 0).data(ModelsTableModel.ActiveRole) is False


def test_activation_repaints_only_the_rows_that_changed(qtbot: QtBot) -> None:
    model = ModelsTableModel()
    model.set_models([info("digits", "2", "1", "1", "2", "3"), info("yolo", "1", None, "1")])
    changed: list[int] = []

    def record(first: QModelIndex, last: QModelIndex) -> None:
        changed.extend(range(first.row(), last.row() + 1))

    model.dataChanged.connect(record)
    with qtbot.assertNotEmitted(model.modelReset):
        model.set_models([info("digits", "3", "2", "1", "2", "3"), info("yolo", "1", None, "1")])
    assert changed == [0, 1, 2]  # 3 now serves, 2 is previous, 1 is neither; yolo untouched
    with qtbot.waitSignal(model.modelReset):
        model.set_models([info("yolo", "1", None, "1")])  # versions went: start over
    assert model.rowCount() == 1


def test_sizes_read_in_the_nearest_unit() -> None:
    assert [size_text(n) for n in (812, 12_500, 982_882, 25_000_000)] == [
        "812 B",
        "12.5 kB",
        "982.9 kB",
        "25.0 MB",
    ]
