"""Folders a job may read: only inside the kit's data roots, symlinks and `..` included.

A path is judged by where it really leads (`resolve()`), so a symlink or a `..`
that climbs out of a root is refused like a plain outside path.
"""

from __future__ import annotations

import os
from pathlib import Path

from agent.errors import Invalid

DATASETS = "datasets"
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})


def data_roots(configured: list[str], data_dir: Path) -> list[Path]:
    """The configured roots, or `<data_dir>/datasets` (made if missing)."""
    if configured:
        return [Path(root).resolve() for root in configured]
    default = data_dir / DATASETS
    default.mkdir(parents=True, exist_ok=True)
    return [default.resolve()]


def resolve_folder(folder: str, roots: list[Path]) -> Path:
    """An existing folder inside a data root; relative paths are taken from the first root."""
    if "\0" in folder:
        raise _outside(folder, roots)
    candidate = Path(folder) if Path(folder).is_absolute() else roots[0] / folder
    real = candidate.resolve()
    if not any(inside(real, root) for root in roots):
        raise _outside(folder, roots)
    if not real.is_dir():
        raise Invalid(
            "folder_not_found",
            f"{folder!r} is not a folder on this kit",
            f"put the images under {roots[0]} (or upload them as a dataset)",
        )
    return real


def dataset_folder(name: str, data_dir: Path) -> Path:
    path = data_dir / DATASETS / name
    # a link planted under datasets/ is not a dataset: jobs read only what was uploaded there
    if not path.is_dir() or not inside(path.resolve(), (data_dir / DATASETS).resolve()):
        raise Invalid(
            "dataset_not_found",
            f"no dataset called {name!r} on this kit",
            "send a local folder with `kitfleet jobs submit KIT ... --upload DIR`, which makes the dataset",
        )
    return path.resolve()


def inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _outside(folder: str, roots: list[Path]) -> Invalid:
    return Invalid(
        "path_outside_data_roots",
        f"{folder!r} is outside the folders jobs may read on this kit",
        f"use a folder under {', '.join(str(r) for r in roots)} (jobs_data_roots in agent.json)",
    )


def images_under(folder: Path, root: Path) -> list[Path]:
    """Image files below `folder`, sorted by their path's parts; links that lead outside `root`
    are skipped, and linked folders are not entered.

    One directory read per folder, no call per plain file: a plain file is where its folder
    is, so only links are resolved (resolving each of 1,400 images took 0.05 s of a job).
    Folders that cannot be read are skipped, as `Path.rglob` skips them.
    """
    within = inside(folder.resolve(), root)
    found: list[Path] = []
    pending = [folder]
    while pending:
        try:
            with os.scandir(pending.pop()) as entries:
                listed = list(entries)
        except PermissionError:
            continue
        for entry in listed:
            if entry.is_dir(follow_symlinks=False):
                pending.append(Path(entry.path))
            elif os.path.splitext(entry.name)[1].lower() not in IMAGE_SUFFIXES:
                continue
            elif entry.is_symlink():
                link = Path(entry.path)
                if link.is_file() and inside(link.resolve(), root):
                    found.append(link)
            elif within and entry.is_file(follow_symlinks=False):
                found.append(Path(entry.path))
    return sorted(found, key=lambda path: path.parts)
