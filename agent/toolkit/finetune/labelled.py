"""The labelled set's names, as a kit must read them: class names and CSV rows are hostile until
checked, and the split holds every class out for validation (stratified, seeded)."""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import PurePosixPath

import numpy as np

from agent.toolkit.errors import Invalid, TooLarge
from agent.wire.finetune import LABEL_PATTERN

__all__ = ["check_counts", "check_label", "csv_rows", "stratified_split"]

_LABEL = re.compile(LABEL_PATTERN)
MAX_CSV_BYTES = 16 << 20


def check_label(label: str, where: str) -> str:
    """`label` when it is a plain class name (it becomes a folder and a screen label)."""
    if not _LABEL.fullmatch(label) or label.strip() != label:
        raise Invalid(
            "bad_label",
            f"{where}: class name {label[:80]!r} is not allowed (no paths, `..`, separators or "
            "control characters; at most 64 characters)",
            "rename the class: letters, digits, _ . - (starting with a letter or digit)",
        )
    return label


def csv_rows(data: bytes, max_rows: int) -> list[tuple[str, str]]:
    """(relative file, label) rows of a `labels.csv` (a header row `file,label` is skipped)."""
    if len(data) > MAX_CSV_BYTES:
        raise TooLarge("labels_too_large", f"labels.csv is {len(data)} bytes", "keep it under 16 MiB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Invalid("bad_labels_csv", "labels.csv is not UTF-8 text", "save it as UTF-8 CSV") from None
    rows: list[tuple[str, str]] = []
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or (number == 1 and [c.strip().lower() for c in row[:2]] == ["file", "label"]):
            continue
        if len(row) != 2:
            raise Invalid(
                "bad_labels_csv", f"labels.csv line {number}: {len(row)} cells", "write file,label per line"
            )
        if len(rows) >= max_rows:
            raise TooLarge("too_many_rows", f"labels.csv has more than {max_rows} rows", "label fewer images")
        label = check_label(row[1].strip(), f"labels.csv line {number}")
        rows.append((_relative(row[0].strip(), number), label))
    return rows


def _relative(name: str, number: int) -> str:
    path = PurePosixPath(name)
    if not name or "\\" in name or "\0" in name or path.is_absolute() or ".." in path.parts:
        raise Invalid(
            "bad_path",
            f"labels.csv line {number}: {name[:80]!r} is not a path inside the dataset",
            "give each file relative to the dataset's folder, without `..`",
        )
    return str(path)


def check_counts(labels: Sequence[str], min_per_class: int) -> list[str]:
    """The classes, sorted, after refusing a set with one class or a class with too few images."""
    counts = Counter(labels)
    if len(counts) < 2:
        only = f"only class {next(iter(counts))!r}" if counts else "no labelled images"
        raise Invalid(
            "one_class",
            f"the dataset has {only}; a classifier needs at least two",
            "label images of at least two classes",
        )
    few = sorted(f"{label} ({n})" for label, n in counts.items() if n < min_per_class)
    if few:
        raise Invalid(
            "too_few_images",
            f"classes with fewer than {min_per_class} readable images: {', '.join(few)}",
            f"label at least {min_per_class} images of each class, or drop those classes",
        )
    return sorted(counts)


def stratified_split(targets: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) indices: each class shuffled by `seed`, and `fraction` of it (at least
    one image, and never all of it) held out, so every class is in both."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for cls in np.unique(targets):
        members = rng.permutation(np.flatnonzero(targets == cls))
        held = round(fraction * len(members))
        if held < 1 or held >= len(members):
            raise Invalid(
                "class_missing_from_split",
                f"a validation share of {fraction:g} leaves class {int(cls)} with "
                f"{'no' if held < 1 else 'only'} validation images out of {len(members)}",
                "label more images of that class, or change val_fraction",
            )
        val.append(members[:held])
        train.append(members[held:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))
