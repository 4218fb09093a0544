"""A model that leaves its picture size free, quantized without one, is measured on a 1x1 input:
the output says so, so its figures are not taken for what a kit sees (PP-OCR's real recogniser
measured INT8 1.5x faster there and 1.1x slower at its 48x320 lines)."""

from __future__ import annotations

from pathlib import Path

from app.fleet.quantize import FREE_SIZE_NOTE, quantize_model
from tests.onnx_models import conv_classifier


def test_free_size_without_a_size_says_the_figures_are_from_a_1x1_input(tmp_path: Path) -> None:
    model = conv_classifier(tmp_path / "free.onnx", dims=("N", 3, "height", "width"))

    bare = quantize_model(model, tmp_path / "bare.onnx", "dynamic", runs=2)
    sized = quantize_model(model, tmp_path / "sized.onnx", "dynamic", runs=2, input_size=(16, 16))

    assert FREE_SIZE_NOTE in bare.notes
    assert "1x1 input" in FREE_SIZE_NOTE
    assert FREE_SIZE_NOTE not in sized.notes


def test_a_fixed_size_model_needs_no_such_note(tmp_path: Path) -> None:
    model = conv_classifier(tmp_path / "fixed.onnx")

    assert FREE_SIZE_NOTE not in quantize_model(model, tmp_path / "out.onnx", "dynamic", runs=2).notes
