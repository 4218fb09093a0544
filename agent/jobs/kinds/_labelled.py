"""A fine-tune job's labelled images, read from a dataset folder on the kit.

Either one folder per class (`<class>/<image>`) or a `labels.csv` of `file,label` rows beside
the images. Every name is hostile until checked: class names by the toolkit's rule, CSV paths
relative without `..`, and every file must resolve inside the dataset (a link that leads out
is skipped). Files that are not images by their suffix are counted, not read.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from agent.jobs.paths import IMAGE_SUFFIXES, images_under, inside
from agent.toolkit.errors import Invalid
from agent.toolkit.finetune.labelled import check_label, csv_rows

__all__ = ["LABELS_CSV", "Labelled", "read_labelled"]

LABELS_CSV = "labels.csv"
MAX_IMAGES = 100_000


@dataclass
class Labelled:
    paths: list[Path] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    layout: str = "folders"
    skipped: Counter[str] = field(default_factory=Counter)  # why -> how many files

    def add(self, path: Path, label: str) -> None:
        if len(self.paths) >= MAX_IMAGES:
            raise Invalid(
                "too_many_images", f"the dataset has more than {MAX_IMAGES} images", "fine-tune on fewer"
            )
        self.paths.append(path)
        self.labels.append(label)


def read_labelled(folder: Path, root: Path) -> Labelled:
    csv_file = folder / LABELS_CSV
    if csv_file.is_file():
        return _from_csv(folder, root, csv_file)
    return _from_folders(folder, root)


def _from_folders(folder: Path, root: Path) -> Labelled:
    found = Labelled()
    for sub in sorted(folder.iterdir()):
        if sub.name.startswith("."):  # the kit's own bookkeeping, never a class
            continue
        if not sub.is_dir():
            found.skipped["outside any class folder"] += 1
            continue
        label = check_label(sub.name, f"folder {sub.name[:80]!r}")
        images = images_under(sub, root)
        for path in images:
            found.add(path, label)
        others = sum(1 for p in sub.rglob("*") if p.is_file()) - len(images)
        if others:
            found.skipped["not an image file (by its name) or a link out of the dataset"] += others
    return found


def _from_csv(folder: Path, root: Path, csv_file: Path) -> Labelled:
    found = Labelled(layout=LABELS_CSV)
    for name, label in csv_rows(csv_file.read_bytes(), MAX_IMAGES):
        path = folder / name
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            found.skipped["not an image file (by its name)"] += 1
        elif not path.is_file():
            found.skipped["listed in labels.csv but missing"] += 1
        elif not inside(path.resolve(), root.resolve()):
            found.skipped["a link out of the dataset"] += 1
        else:
            found.add(path, label)
    return found
