"""A fine-tune job's labelled set read from a real folder: both layouts, and names that try to
lead out of the dataset."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from agent.jobs.kinds._labelled import read_labelled
from agent.toolkit.errors import Invalid


def picture(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (8, 8), 128).save(path)
    return path


def test_folders_per_class_with_what_is_skipped(tmp_path: Path) -> None:
    root = tmp_path / "set"
    picture(root / "cat" / "a.png")
    picture(root / "cat" / "deep" / "b.jpg")
    picture(root / "dog" / "c.png")
    (root / "dog" / "notes.txt").write_text("not an image")
    picture(root / ".kit" / "hidden.png")  # the kit's own bookkeeping is never a class
    (root / "README").write_text("outside any class")
    outside = picture(tmp_path / "elsewhere" / "secret.png")
    (root / "dog" / "link.png").symlink_to(outside)
    found = read_labelled(root, root)
    assert found.layout == "folders"
    assert [
        (p.relative_to(root).as_posix(), label) for p, label in zip(found.paths, found.labels, strict=True)
    ] == [
        ("cat/a.png", "cat"),
        ("cat/deep/b.jpg", "cat"),
        ("dog/c.png", "dog"),
    ]
    assert found.skipped["outside any class folder"] == 1
    assert found.skipped["not an image file (by its name) or a link out of the dataset"] == 2


def test_a_folder_name_that_is_not_a_class_name_is_refused(tmp_path: Path) -> None:
    picture(tmp_path / "a cat" / "a.png")
    with pytest.raises(Invalid, match="'a cat' is not allowed"):
        read_labelled(tmp_path, tmp_path)


def test_labels_csv_rows_resolve_inside_the_dataset(tmp_path: Path) -> None:
    root = tmp_path / "set"
    picture(root / "imgs" / "a.png")
    picture(root / "imgs" / "b.png")
    outside = picture(tmp_path / "secret.png")
    (root / "imgs" / "out.png").symlink_to(outside)
    (root / "labels.csv").write_text(
        "file,label\nimgs/a.png,cat\nimgs/b.png,dog\nimgs/gone.png,dog\nimgs/out.png,dog\nnotes.txt,cat\n"
    )
    found = read_labelled(root, root)
    assert found.layout == "labels.csv"
    assert found.labels == ["cat", "dog"]
    assert found.skipped == {
        "listed in labels.csv but missing": 1,
        "a link out of the dataset": 1,
        "not an image file (by its name)": 1,
    }
    for row in ("../secret.png,cat", "/etc/hostname.png,cat", "imgs/a.png,../../models"):
        (root / "labels.csv").write_text(row + "\n")
        with pytest.raises(Invalid):
            read_labelled(root, root)


def test_training_that_outgrows_the_jobs_memory_is_refused_before_it_starts() -> None:
    from agent.jobs.errors import PermanentFailure
    from agent.jobs.kinds.fine_tune import _fits

    _fits((500, 128), 12, 256)  # the benchmark's set in the default 256 MiB
    with pytest.raises(PermanentFailure, match=r"needs about 8\d\d MiB, more than the 64 MiB"):
        _fits((20_000, 1280), 10, 64)  # a big backbone's embeddings, many images
    _fits((20_000, 1280), 10, 1024)
