"""The unsure buffer's judging and keeping, and the field dataset's picture check, on real files."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from agent.errors import Invalid, NotFound
from agent.jobs.field_datasets import FieldDatasets, checked_image
from agent.jobs.kinds._unsure import Keeper, unsure_scores
from agent.jobs.unsure import UnsureBuffer
from agent.wire.field_datasets import KeepUnsure


def scores(*values: float) -> list[dict[str, Any]]:
    return [{"label": f"c{n}", "score": v} for n, v in enumerate(values)]


def test_an_answer_is_unsure_below_the_band_or_when_its_top_two_are_close() -> None:
    band = KeepUnsure(top_below=0.6)
    assert rounded(unsure_scores(scores(0.55, 0.3), band)) == (0.55, 0.25)
    assert unsure_scores(scores(0.6, 0.3), band) is None  # at the band is sure
    close = KeepUnsure(margin_below=0.1)
    assert unsure_scores(scores(0.3, 0.48, 0.22), close) is None  # judged in score order: 0.48 vs 0.3
    assert rounded(unsure_scores(scores(0.45, 0.4, 0.15), close)) == (0.45, 0.05)
    assert unsure_scores(scores(0.9), close) is None  # one score: no margin to judge
    assert unsure_scores(scores(0.9, 0.05), KeepUnsure(top_below=0.6, margin_below=0.1)) is None
    assert unsure_scores([], band) is None
    with pytest.raises(ValueError, match="what counts as unsure"):
        KeepUnsure()


def rounded(judged: tuple[float, float | None] | None) -> tuple[float, float] | None:
    if judged is None or judged[1] is None:
        return None
    return round(judged[0], 6), round(judged[1], 6)


def png(shade: int, size: tuple[int, int] = (12, 10)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (shade, shade, shade)).save(out, "PNG")
    return out.getvalue()


def keeper(tmp_path: Path, **keep: Any) -> Keeper:
    manifest = {"name": "tiny", "version": "1"}
    spec = {
        "params": {"keep_unsure": keep},
        "unsure": str(tmp_path / "unsure"),
        "model": {"manifest": manifest},
    }
    made = Keeper.of(spec)
    assert made is not None
    return made


def test_the_oldest_go_first_past_the_count_and_the_bytes(tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    paths = []
    for n in range(6):
        paths.append(inputs / f"{n}.png")
        paths[-1].write_bytes(png(n * 40))
    first = keeper(tmp_path, top_below=0.9, max_items=4)
    for path in paths:
        assert first.offer_file(path, scores(0.5, 0.4), path.name)
    assert not first.offer_file(paths[0], scores(0.95, 0.01), "sure")  # sure: not offered on
    assert first.summary() == {"unsure_kept": 6}
    buffer = UnsureBuffer(tmp_path)
    listed = buffer.list("tiny")
    assert [i.source for i in listed] == ["5.png", "4.png", "3.png", "2.png"]  # newest first
    assert buffer.image(listed[0].id).read_bytes() == paths[5].read_bytes()
    assert json.loads((tmp_path / "unsure" / "tiny" / f"{listed[0].id}.json").read_text())["top"] == 0.5

    second = keeper(tmp_path, top_below=0.9, max_items=100, max_bytes=1 << 16)
    big = inputs / "big.png"
    big.write_bytes(png(1, (200, 200)) + bytes((1 << 16) - len(png(1, (200, 200)))))  # exactly the bound
    second.offer_file(big, scores(0.1, 0.05), "big.png")
    second.summary()
    assert [i.source for i in buffer.list()] == ["big.png"]  # the bytes bound evicted every older one


def test_a_gap_spaces_kept_frames_and_a_label_moves_one_out(tmp_path: Path) -> None:
    frames = keeper(tmp_path, margin_below=0.5, min_gap_s=3600)
    image = Image.new("RGB", (16, 12), (10, 200, 30))
    assert frames.offer_image(image, scores(0.5, 0.45), "frame 1")
    assert not frames.offer_image(image, scores(0.5, 0.45), "frame 2")  # within the gap
    frames.close()
    buffer = UnsureBuffer(tmp_path)
    [item] = buffer.list()
    with Image.open(buffer.image(item.id)) as kept:
        assert (kept.format, kept.size) == ("JPEG", (16, 12))
    fields = FieldDatasets(tmp_path)
    moved = buffer.take(item.id, lambda data: fields.add("yard", "odd", data))
    assert (moved.file.startswith("odd/"), moved.file.endswith(".jpg"), moved.images) == (True, True, 1)
    assert (tmp_path / "datasets" / "yard" / moved.file).read_bytes()[:2] == b"\xff\xd8"
    assert buffer.list() == []
    with pytest.raises(NotFound):
        buffer.get(item.id)
    with pytest.raises(NotFound):
        buffer.get("../../etc/passwd")


def test_only_whole_pictures_of_a_sane_size_and_kind_are_kept() -> None:
    assert checked_image(png(9)) == "png"
    out = io.BytesIO()
    Image.new("RGB", (8, 8)).save(out, "JPEG")
    assert checked_image(out.getvalue()) == "jpg"
    for bad, error in (
        (b"", "not_an_image"),
        (b"\x89PNG\r\n\x1a\n" + bytes(40), "not_an_image"),
        (png(9)[:-30], "not_an_image"),  # pixels missing (a lost trailer alone still decodes whole)
        (png(9, (9000, 1)), "image_dimensions"),
    ):
        with pytest.raises(Invalid) as refused:
            checked_image(bad)
        assert refused.value.error == error
    gif = io.BytesIO()
    Image.new("P", (4, 4)).save(gif, "GIF")
    with pytest.raises(Invalid, match="GIF"):
        checked_image(gif.getvalue())
