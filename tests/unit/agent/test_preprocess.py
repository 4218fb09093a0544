"""Decoding request payloads and shaping them into model inputs."""

from __future__ import annotations

import io
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from agent.api.errors import status_of
from agent.errors import Refusal
from agent.models.preprocess import check_tensor, load_npy
from agent.toolkit.images import Placement, decode_image, media_type, to_tensor
from agent.wire import InputSpec, Normalisation

IMAGENET = Normalisation(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])


def encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def refused(call: object, status: int, error: str) -> Refusal:
    assert callable(call)
    with pytest.raises(Refusal) as caught:
        call()
    assert (status_of(caught.value), caught.value.error) == (status, error), caught.value.message
    assert caught.value.hint
    return caught.value


@pytest.mark.parametrize(
    ("fmt", "declared"),
    [
        ("PNG", "image/png"),
        ("JPEG", "image/jpeg"),
        ("BMP", "image/bmp"),
        ("WEBP", "image/webp"),
        ("PNG", "image/png; charset=binary"),
        ("PNG", None),
        ("JPEG", "application/octet-stream"),
    ],
)
def test_decode_image_reads_the_supported_formats(fmt: str, declared: str | None) -> None:
    data = encode(Image.new("RGB", (7, 5), (10, 200, 30)), fmt)
    image = decode_image(data, declared)
    assert image.size == (7, 5)


def test_text_sent_as_png_is_a_bad_image() -> None:
    refused(lambda: decode_image(b"hello, this is not a picture", "image/png"), 400, "bad_image")


def test_a_truncated_png_is_a_bad_image() -> None:
    data = encode(Image.new("RGB", (64, 64), (1, 2, 3)), "PNG")
    refused(lambda: decode_image(data[: len(data) // 2], "image/png"), 400, "bad_image")


@pytest.mark.parametrize("declared", ["image/gif", "text/plain", "application/json"])
def test_other_declared_types_are_unsupported(declared: str) -> None:
    data = encode(Image.new("RGB", (4, 4)), "GIF")
    error = refused(lambda: decode_image(data, declared), 415, "unsupported_media_type")
    assert declared in error.message


def test_an_undeclared_gif_is_not_read_either() -> None:
    refused(lambda: decode_image(encode(Image.new("RGB", (4, 4)), "GIF"), None), 400, "bad_image")


def test_too_many_pixels_is_refused_before_decoding() -> None:
    data = encode(Image.new("L", (100, 100)), "PNG")
    refused(lambda: decode_image(data, "image/png", max_pixels=9999), 413, "image_too_large")
    assert decode_image(data, "image/png", max_pixels=10000).size == (100, 100)


def test_media_type_drops_parameters_and_case() -> None:
    assert media_type("Image/PNG ; q=1") == "image/png"
    assert media_type("") is None
    assert media_type(None) is None


def test_normalisation_of_a_known_pixel_nchw() -> None:
    spec = InputSpec(name="x", height=2, width=3)
    batch, scales = to_tensor([Image.new("RGB", (1, 1), (255, 128, 0))], spec, IMAGENET)
    assert batch.shape == (1, 3, 2, 3)
    assert batch.dtype == np.float32
    expected = [(1 - 0.485) / 0.229, (128 / 255 - 0.456) / 0.224, (0 - 0.406) / 0.225]
    assert np.allclose(batch[0, :, 1, 2], expected, atol=1e-5)
    assert [(p.scale_x, p.scale_y) for p in scales] == [(1 / 3, 1 / 2)]


def test_nhwc_layout_puts_channels_last_and_broadcasts_one_mean() -> None:
    spec = InputSpec(name="x", layout="NHWC", height=4, width=4, dtype="float16")
    norm = Normalisation(scale=1.0, mean=[100.0], std=[2.0])
    batch, _ = to_tensor([Image.new("RGB", (8, 8), (100, 110, 120))], spec, norm)
    assert batch.shape == (1, 4, 4, 3)
    assert batch.dtype == np.float16
    assert batch[0, 0, 0].tolist() == [0.0, 5.0, 10.0]


def test_one_channel_models_get_luminance() -> None:
    spec = InputSpec(name="x", height=2, width=2, channels=1)
    batch, _ = to_tensor([Image.new("RGB", (2, 2), (255, 255, 255))], spec, Normalisation())
    assert batch.shape == (1, 1, 2, 2)
    assert np.allclose(batch, 1.0)


def test_uint8_models_get_raw_pixels_and_int8_models_are_clipped() -> None:
    image = Image.new("RGB", (2, 2), (0, 128, 255))
    raw, _ = to_tensor([image], InputSpec(name="x", height=2, width=2, dtype="uint8"), IMAGENET)
    assert raw.dtype == np.uint8
    assert raw[0, :, 0, 0].tolist() == [0, 128, 255]
    centred = Normalisation(scale=1.0, mean=[128.0], std=[1.0])
    signed, _ = to_tensor([image], InputSpec(name="x", height=2, width=2, dtype="int8"), centred)
    assert signed[0, :, 0, 0].tolist() == [-128, 0, 127]


def test_scales_map_each_image_back_to_its_own_size() -> None:
    spec = InputSpec(name="x", height=20, width=40)
    images = [Image.new("RGB", (80, 60)), Image.new("RGB", (40, 20))]
    batch, scales = to_tensor(images, spec, Normalisation())
    assert batch.shape == (2, 3, 20, 40)
    assert scales == [Placement(2.0, 3.0, 0.0, 0.0, 80.0, 60.0), Placement(1.0, 1.0, 0.0, 0.0, 40.0, 20.0)]


def test_a_mean_per_channel_must_match_the_channels() -> None:
    spec = InputSpec(name="x", height=2, width=2, channels=1)
    refused(lambda: to_tensor([Image.new("L", (2, 2))], spec, IMAGENET), 422, "bad_normalisation")


def test_load_npy_round_trips_an_array() -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.arange(6, dtype=np.float32).reshape(2, 3))
    array = load_npy(buffer.getvalue())
    assert array.dtype == np.float32
    assert array.tolist() == [[0, 1, 2], [3, 4, 5]]


@pytest.mark.parametrize(
    "array",
    [
        np.arange(6, dtype=np.float32).reshape(2, 3),
        np.arange(5, dtype=np.int64),
        np.float64(2.5) * np.ones(()),
        np.zeros((2, 3), dtype=">f8"),
        np.zeros((0, 3), dtype=np.uint8),
        np.ones(3, dtype=np.float16),
        np.array([[True], [False]]),
        np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        np.zeros(2, dtype=[("a", "<i4"), ("b", "<f4")]),
    ],
    ids=lambda a: f"{a.dtype}{a.shape}",
)
def test_load_npy_reads_every_plain_layout_as_np_load_does(array: np.ndarray) -> None:
    """The fast header path and np.load agree, down to dtype, shape and byte order."""
    buffer = io.BytesIO()
    np.save(buffer, array)
    got, expected = load_npy(buffer.getvalue()), np.load(io.BytesIO(buffer.getvalue()))
    assert got.dtype == expected.dtype
    assert got.shape == expected.shape
    assert np.array_equal(got, expected)


def test_load_npy_refuses_a_truncated_or_forged_tensor() -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.ones((4, 4), dtype=np.float32))
    refused(lambda: load_npy(buffer.getvalue()[:-3]), 400, "bad_tensor")
    forged = buffer.getvalue().replace(b"(4, 4)", b"(9, 9)")  # the header claims more than is sent
    refused(lambda: load_npy(forged), 400, "bad_tensor")


def test_load_npy_refuses_garbage_pickles_and_npz() -> None:
    refused(lambda: load_npy(b"not numpy at all"), 400, "bad_tensor")
    pickled = io.BytesIO()
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    refused(lambda: load_npy(pickled.getvalue()), 400, "bad_tensor")
    archive = io.BytesIO()
    np.savez(archive, x=np.zeros(2))
    refused(lambda: load_npy(archive.getvalue()), 400, "bad_tensor")


MODEL_INPUT = SimpleNamespace(name="image", type="tensor(float)", shape=["N", 3, 16, None])


def test_check_tensor_lets_symbolic_dimensions_take_any_size() -> None:
    check_tensor(np.zeros((5, 3, 16, 9), dtype=np.float32), MODEL_INPUT)


def test_check_tensor_names_the_expected_and_given_dtype() -> None:
    error = refused(lambda: check_tensor(np.zeros((1, 3, 16, 16)), MODEL_INPUT), 422, "wrong_dtype")
    assert "float32" in error.message
    assert "float64" in error.message


@pytest.mark.parametrize("shape", [(1, 3, 15, 16), (3, 16, 16), (1, 1, 3, 16, 16)])
def test_check_tensor_names_the_expected_and_given_shape(shape: tuple[int, ...]) -> None:
    tensor = np.zeros(shape, dtype=np.float32)
    error = refused(lambda: check_tensor(tensor, MODEL_INPUT), 422, "wrong_shape")
    assert "[N, 3, 16, ?]" in error.message
    assert str(list(shape)) in error.message
