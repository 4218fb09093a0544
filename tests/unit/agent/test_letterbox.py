"""Letterbox pre-processing (toolkit): aspect kept, grey 114 bars centred as Ultralytics pads,
and the placement maps input pixels back to the picture's exactly."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from agent.toolkit.images import Placement, letterbox_geometry, to_input, to_pixels
from agent.wire import InputSpec, Normalisation


def spec(width: int, height: int, **extra: object) -> InputSpec:
    return InputSpec.model_validate(
        {"name": "images", "height": height, "width": width, "letterbox": True, **extra}
    )


def picture(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8), "RGB")


@pytest.mark.parametrize(
    ("size", "input_size", "expected"),
    [
        ((320, 240), (320, 320), (320, 240, 0, 40)),  # gain 1: bars above and below
        (
            (240, 360),
            (320, 320),
            (213, 320, 53, 0),
        ),  # 240 × 8/9 = 213.3; (320 - 213) / 2 = 53.5 → 53 left, 54 right
        (
            (100, 30),
            (64, 48),
            (64, 19, 0, 14),
        ),  # a wide picture in a non-square input: 19 rows, 29 spare → 14 above
        ((64, 48), (64, 48), (64, 48, 0, 0)),  # already the input's size
        ((1000, 1), (64, 64), (64, 1, 0, 31)),  # never a zero-row resize
    ],
)
def test_geometry_is_ultralytics_letterbox(
    size: tuple[int, int], input_size: tuple[int, int], expected: tuple[int, int, int, int]
) -> None:
    assert letterbox_geometry(*size, spec(*input_size)) == expected


@pytest.mark.parametrize(
    ("size", "input_size"), [((320, 240), (320, 320)), ((240, 360), (320, 320)), ((100, 30), (64, 48))]
)
def test_pixels_are_the_resized_picture_on_grey(size: tuple[int, int], input_size: tuple[int, int]) -> None:
    image = picture(*size)
    pixels, placement = to_pixels(image, spec(*input_size))
    new_width, new_height, left, top = letterbox_geometry(*size, spec(*input_size))
    assert pixels.shape == (input_size[1], input_size[0], 3)
    resized = np.asarray(image.resize((new_width, new_height), Image.Resampling.BILINEAR))
    assert (pixels[top : top + new_height, left : left + new_width] == resized).all()
    bars = np.ones(pixels.shape[:2], bool)
    bars[top : top + new_height, left : left + new_width] = False
    assert (pixels[bars] == 114).all()
    scale = 1 / min(input_size[0] / size[0], input_size[1] / size[1])  # Ultralytics' scale_boxes gain
    assert placement == Placement(scale, scale, left, top, size[0], size[1])
    assert abs(new_width * scale - size[0]) < scale
    assert abs(new_height * scale - size[1]) < scale


def test_a_box_maps_back_to_where_it_was_drawn() -> None:
    """Forward by the gain and the pad, back by the placement: the same box, to float precision."""
    _, placement = to_pixels(picture(240, 360), spec(320, 320))
    box = np.array([17.0, 40.5, 200.25, 359.0])
    gain = min(320 / 240, 320 / 360)
    _, _, left, top = letterbox_geometry(240, 360, spec(320, 320))
    forward = box * gain + [left, top, left, top]
    back = (forward - [placement.pad_x, placement.pad_y] * 2) * ([placement.scale_x, placement.scale_y] * 2)
    assert np.allclose(back, box, atol=1e-9)


def test_grayscale_and_nhwc_uint8_inputs_are_padded_too() -> None:
    gray = spec(32, 32, channels=1, layout="NHWC", dtype="uint8")
    tensor, _ = to_input(picture(64, 16).convert("L"), gray, Normalisation())
    assert tensor.shape == (32, 32, 1)
    assert tensor.dtype == np.uint8
    assert (tensor[:12] == 114).all()
    assert (tensor[-12:] == 114).all()


def test_without_letterbox_the_picture_is_stretched_as_before() -> None:
    plain = InputSpec(name="x", height=20, width=40)
    pixels, placement = to_pixels(picture(80, 60), plain)
    assert pixels.shape == (20, 40, 3)
    assert placement == Placement(2.0, 3.0, 0.0, 0.0, 80.0, 60.0)
