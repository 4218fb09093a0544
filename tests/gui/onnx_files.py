"""Model packages written for a test: real tiny ONNX classifiers with manifests."""

from __future__ import annotations

from pathlib import Path

from tests.onnx_models import classifier


def classifier_versions(folder: Path, *versions: str, name: str = "tiny") -> list[Path]:
    """One package per version, each in its own folder (the file name is the same)."""
    paths = []
    for seed, version in enumerate(versions):
        path = folder / f"{name}-{version}" / f"{name}.onnx"
        path.parent.mkdir(parents=True)
        classifier(path, name=name, version=version, seed=seed)
        paths.append(path)
    return paths
