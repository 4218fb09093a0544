"""Try-it draws the boxes of every detector family from the field, as the exporter's own pipeline
finds them: plain .onnx files (no manifest; the app inspects each) deployed to a real agent, run
on a picture in the window, and the boxes and labels the picture shows checked against the
reference decode in tests/field_models.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import onnxruntime as ort
from PIL import Image

from pytestqt.qtbot import QtBot

from agent.wire import Detection
from app.fleet.inspection import inspect_model
from app.fleet.localagent import LocalAgent
from app.fleet.settings import AppSettings
from app.gui.bridges.fleet_bridge import FleetBridge
from tests.field_models import FIELD, Box, agreement, reference
from tests.gui.test_try_it import run, try_window

# family -> (the picture it runs on, the family inspection must find). Portrait scene-b gives the
# letterboxed families a non-integer gain and side bars; landscape scene-a top and bottom bars.
FAMILIES = {
    "yolov8-det": ("scene-b.png", "yolov8"),  # [N, 4 + C, boxes], no objectness
    "end2end-det": ("scene-a.png", "end2end"),  # NMS inside: [N, K, 6]
    "efficientnms-det": ("scene-b.png", "end2end"),  # NMS inside: count, boxes, scores, classes
    "ssd-tf": ("scene-a.png", "ssd"),  # TF: NHWC uint8, normalised yxyx, 1-based classes
}
COLOURS = ["red", "green", "blue"]


def field_copies(folder: Path) -> list[Path]:
    """Each family's model alone in a folder, as a technician copies it; the two exports whose
    metadata names no classes come with the labels.txt their exporters leave beside them."""
    copies = []
    for family in FAMILIES:
        model = folder / family / f"{family}.onnx"
        model.parent.mkdir(parents=True)
        shutil.copy(FIELD / model.name, model)
        if family in ("efficientnms-det", "ssd-tf"):
            (model.parent / "labels.txt").write_text("\n".join(COLOURS) + "\n")
        copies.append(model)
    return copies


def shown(detections: list[Detection]) -> list[Box]:
    return [Box(d.index, d.score, d.box) for d in detections]


def test_try_it_shows_every_field_familys_boxes_as_its_pipeline_finds_them(
    qtbot: QtBot,
    settings: AppSettings,
    bridge: FleetBridge,
    agent: LocalAgent,
    tmp_path: Path,
    screenshots: Path,
) -> None:
    models = field_copies(tmp_path / "field")
    pictures = [FIELD / scene for scene, _ in FAMILIES.values()]
    window = try_window(qtbot, settings, bridge, agent, models, pictures)
    panel = window.tabs.try_it
    for model, (family, (scene, kind)) in zip(models, FAMILIES.items(), strict=True):
        inspection = inspect_model(model)  # what the deploy sent: its thresholds and labels
        assert inspection.family == kind, family
        assert inspection.manifest.labels == COLOURS, family

        run(qtbot, panel, family)

        session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        image = Image.open(FIELD / scene).convert("RGB")
        want = reference(family, session, image, thresholds=inspection.manifest)
        assert {box.index for box in want} == {0, 1, 2}, (family, want)  # every square found
        found = panel.picture.detections()
        assert agreement(shown(found), want) == 1.0, (family, found, want)
        assert [d.label for d in found] == [COLOURS[d.index] for d in found], family
        assert sorted(d.label for d in found) == sorted(COLOURS[box.index] for box in want), family
        assert panel.results.texts(0) == [d.label for d in found], family  # the list beside, same order
        assert all(0 <= d.box[0] < d.box[2] <= image.width for d in found), family
        assert all(0 <= d.box[1] < d.box[3] <= image.height for d in found), family
        assert panel.summary.text().startswith(f"{family} {inspection.manifest.version} · sha256 ")
        assert f"{len(want)} objects found" in panel.summary.text()
        assert panel.picture.pixmap().width() > 0
        qtbot.wait(100)  # let the splitter settle before the picture
        window.grab().save(str(screenshots / f"gui-try-it-field-{family}.png"))
