"""Try it: an image goes to a model on the kit; labels or boxes come back and are shown."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from PIL import Image

from pytestqt.qtbot import QtBot

from app.fleet.localagent import LocalAgent
from app.fleet.settings import AppSettings
from app.gui.bridges.fleet_bridge import FleetBridge
from app.gui.dialogs.prompts import Prompts
from app.gui.main_window import MainWindow
from app.gui.tabs.try_it import TryItPanel
from tests.gui import detector
from tests.gui.kits import adopt, deploy
from tests.gui.onnx_files import classifier_versions
from tests.gui.windows import WAIT_MS, open_window, wait_status

RESOURCES = Path(__file__).resolve().parents[2] / "resources"
DIGITS = RESOURCES / "models" / "digits-cnn-fp32.onnx"
SHAPES = RESOURCES / "models" / "shapes-yolo-fp32.onnx"

pytestmark = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("agent.models.infer", "agent.models.sessions")),
    reason="agent-side inference (agent/models/infer.py, sessions.py) is not there yet: "
    "POST /v1/models/{name}/infer answers 500 without it",
)


def try_window(
    qtbot: QtBot,
    settings: AppSettings,
    bridge: FleetBridge,
    agent: LocalAgent,
    models: list[Path],
    inputs: list[Path],
) -> MainWindow:
    """Kit adopted, `models` deployed, the window on its Try-it tab; inputs chosen in turn."""
    [device] = adopt(settings, agent)
    for model in models:
        deploy(settings, model)
    chosen = iter(inputs)
    window = open_window(qtbot, bridge, Prompts(choose_input=lambda parent, start: next(chosen)))
    wait_status(qtbot, window, device, "online")
    window.select_device(device)
    window.tabs.setCurrentWidget(window.tabs.try_it)
    qtbot.waitUntil(lambda: window.tabs.try_it.model_combo.count() == len(models), timeout=WAIT_MS)
    return window


def run(qtbot: QtBot, panel: TryItPanel, model: str) -> None:
    """Choose `model` and the next input, press Run, and wait until the panel has the answer."""
    panel.select_model(model)
    panel.choose_button.click()
    assert panel.run_button.isEnabled()
    panel.run_button.click()
    assert not panel.run_button.isEnabled()  # one request at a time
    qtbot.waitUntil(panel.run_button.isEnabled, timeout=WAIT_MS)
    assert not panel.summary.text().startswith("Failed"), panel.summary.text()


def test_a_classifier_shows_ranked_labels_and_the_version_that_answered(
    qtbot: QtBot,
    settings: AppSettings,
    bridge: FleetBridge,
    agent: LocalAgent,
    tmp_path: Path,
) -> None:
    [tiny] = classifier_versions(tmp_path, "3")
    picture = tmp_path / "red.png"
    Image.new("RGB", (40, 30), (200, 30, 30)).save(picture)
    digits = [DIGITS] if DIGITS.exists() else []
    window = try_window(
        qtbot, settings, bridge, agent, [tiny, *digits], [picture, RESOURCES / "images" / "digit-7.png"]
    )
    panel = window.tabs.try_it

    run(qtbot, panel, "tiny")
    assert sorted(panel.results.texts(0)) == [f"class-{i}" for i in range(4)]
    scores = [float(text) for text in panel.results.texts(1)]
    assert scores == sorted(scores, reverse=True)
    assert sum(scores) == pytest.approx(1.0, abs=0.01)
    sha = tiny.with_name("tiny.manifest.json").read_text().split('"sha256": "')[1][:12]
    assert panel.summary.text().startswith(f"tiny 3 · sha256 {sha}…")
    assert " ms on the kit" in panel.summary.text()
    assert panel.picture.pixmap().width() > 0  # the image that was sent, shown beside

    if digits:  # the bundled model, on a bundled picture of a 7
        run(qtbot, panel, "digits-cnn")
        assert panel.results.texts(0)[0] == "7"


def test_a_detector_shows_its_boxes_on_the_picture(
    qtbot: QtBot,
    settings: AppSettings,
    bridge: FleetBridge,
    agent: LocalAgent,
    tmp_path: Path,
    screenshots: Path,
) -> None:
    fixed = tmp_path / "shapes" / "shapes-fixed.onnx"
    detector.detector(fixed)
    window = try_window(
        qtbot, settings, bridge, agent, [fixed], [detector.shapes_picture(tmp_path / "shapes.png")]
    )
    panel = window.tabs.try_it

    run(qtbot, panel, "shapes-fixed")
    found = panel.picture.detections()
    assert [d.label for d in found] == ["square", "circle"]  # the third row is under threshold
    expected = [(cx - w / 2) * detector.SCALE for cx, _, w, *_ in detector.ROWS[:2]]
    assert [d.box[0] for d in found] == pytest.approx(expected)
    assert panel.results.texts(0) == ["square", "circle"]
    assert panel.summary.text().startswith("shapes-fixed 1 · sha256 ")
    assert "2 objects found" in panel.summary.text()
    qtbot.wait(100)  # let the splitter settle before the picture
    window.grab().save(str(screenshots / "gui-try-it-detection.png"))


@pytest.mark.skipif(not SHAPES.exists(), reason=f"no bundled detector at {SHAPES}")
def test_the_bundled_detector_boxes_the_shapes_of_a_sample_picture(
    qtbot: QtBot,
    settings: AppSettings,
    bridge: FleetBridge,
    agent: LocalAgent,
    screenshots: Path,
) -> None:
    truth_file = RESOURCES / "images" / "shapes.json"
    if not truth_file.exists():
        pytest.skip("the bundled detector came without its sample pictures in resources/images")
    truth = json.loads(truth_file.read_text())
    picture = "shapes-4.png" if "shapes-4.png" in truth else sorted(truth)[0]
    window = try_window(qtbot, settings, bridge, agent, [SHAPES], [RESOURCES / "images" / picture])
    panel = window.tabs.try_it
    run(qtbot, panel, panel.model_combo.currentData()[0])
    found = panel.picture.detections()
    assert sorted(d.label for d in found) == sorted(t["label"] for t in truth[picture])
    assert all(0.25 <= d.score <= 1 for d in found)  # the manifest's threshold held
    assert f"{len(found)} objects found" in panel.summary.text()
    qtbot.wait(100)
    window.grab().save(str(screenshots / "gui-try-it-bundled-detector.png"))
