"""A sequence recogniser's converted copy is compared step by step: its answers change when any
step's best class does, so "kept FP32's answers" is said only of answers that were compared."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from onnx import helper
from PIL import Image

from agent.toolkit.quantadvice import Measured, recommend
from agent.wire import InputSpec
from app.fleet.quantreport import compare
from tests import inspection_models as im

SPEC = InputSpec(name="images", height=4, width=8)


def recogniser(path: Path, flipped_steps: int) -> Path:
    """[1, 3, 4, 8] -> [1, 4 steps, 24 classes], Softmax per step; the first `flipped_steps` steps'
    scores negated, so their best class is their worst."""
    sign = np.ones((1, 4, 1), np.float32)
    sign[0, :flipped_steps] = -1
    end = helper.make_node("Softmax", ["signed"], ["probs"])
    end.attribute.append(helper.make_attribute("axis", 2))
    nodes = [
        helper.make_node("Reshape", ["images", "shape"], ["steps"]),
        helper.make_node("Mul", ["steps", "sign"], ["signed"]),
        end,
    ]
    weights: list[tuple[str, np.ndarray]] = [("shape", np.array([1, 4, 24], np.int64)), ("sign", sign)]
    return im.save(path, nodes, [("images", [1, 3, 4, 8])], [("probs", [1, 4, 24])], weights)


def pictures(folder: Path) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(2)
    for n in range(3):
        Image.fromarray(rng.integers(0, 256, (4, 8, 3), dtype=np.uint8)).save(folder / f"{n}.png")
    return folder


def test_agreement_counts_every_step_of_a_sequence(tmp_path: Path) -> None:
    same = recogniser(tmp_path / "a.onnx", 0)
    half = recogniser(tmp_path / "b.onnx", 2)
    folder = pictures(tmp_path / "lines")

    assert compare(same, same, folder, runs=2, warmup=0, input_spec=SPEC).agreement_top1 == 1.0
    assert compare(same, half, folder, runs=2, warmup=0, input_spec=SPEC).agreement_top1 == 0.5


def test_kept_fp32_answers_only_when_they_were_compared() -> None:
    compared = recommend(Measured(precision="int8", speed_ratio=2.0, agreement=0.99))
    unseen = recommend(Measured(precision="int8", speed_ratio=2.0))

    assert "kept FP32's answers" in compared.headline
    assert "kept FP32's answers" not in unseen.headline
    assert "not compared" in unseen.headline


def test_too_few_steps_agreeing_keeps_fp32_saying_what_was_counted() -> None:
    advice = recommend(Measured(precision="int8", speed_ratio=2.0, agreement=0.7))

    assert advice.use == "fp32"
    assert "70.0 % of the answers compared (one per image, or per step of a sequence)" in advice.headline
