"""Assets shipped inside the wheel: bundled models, evaluation images, icons."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def _folder(name: str) -> Path:
    return Path(str(resources.files(__name__).joinpath(name)))


def models_dir() -> Path:
    return _folder("models")


def datasets_dir() -> Path:
    return _folder("datasets")


def images_dir() -> Path:
    return _folder("images")


def videos_dir() -> Path:
    return _folder("videos")
