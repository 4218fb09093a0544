"""Test set-up: real exported models that a package on PyPI ships in its wheel, fetched into a cache.

    python -m tests.fetch_registry_models

rapidocr-onnxruntime's wheel carries PaddlePaddle's own PP-OCR exports (paddle2onnx): a text
detector, a text-line recogniser with shared weights and a direction classifier. They are the
models a technician is handed in the field, so tests/integration/test_registry_models.py runs
kitfleet on them. The wheel is fetched here, in the set-up command, never from inside pytest; the
tests skip when the models are not in the cache. Nothing fetched is committed.

The wheel is checked against a pinned sha256 before it is opened, and only the pinned model files
are taken from it, each by its exact member name, its size and its own sha256, and written under
the cache folder by their pinned names only. Offline, or when anything fails, one line says the
registry-model tests will skip, and the exit status is still 0.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

__all__ = ["MODELS", "SET_UP", "cache_dir", "fetch", "model_path"]

PACKAGE = "rapidocr-onnxruntime==1.4.4"
WHEEL = "rapidocr_onnxruntime-1.4.4-py3-none-any.whl"
WHEEL_SHA256 = "971d7d5f223a7a808662229df1ef69893809d8457d834e6373d3854bc1782cbf"
WHEEL_MAX_BYTES = 32 * 1024 * 1024  # the wheel is ~15 MB
# name in the cache -> (member in the wheel, size in bytes, sha256)
MODELS: dict[str, tuple[str, int, str]] = {
    "ppocr-det.onnx": (
        "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx",
        4745517,
        "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9",
    ),
    "ppocr-rec.onnx": (
        "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx",
        10857958,
        "48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b",
    ),
    "ppocr-cls.onnx": (
        "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
        585532,
        "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c",
    ),
}
SET_UP = ".venv/bin/python -m tests.fetch_registry_models"
ENV = "KITFLEET_REGISTRY_MODELS"
_PIP_TIMEOUT_S = "15"


def cache_dir() -> Path:
    """$KITFLEET_REGISTRY_MODELS, else ~/.cache/kitfleet/registry-models (or under $XDG_CACHE_HOME)."""
    given = os.environ.get(ENV)
    if given:
        return Path(given).expanduser().resolve()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return (base / "kitfleet" / "registry-models").resolve()


def model_path(name: str) -> Path | None:
    """The cached model `name` (a key of MODELS) when it is there at its pinned size, else None.

    Only the size is checked here, so every test does not hash 10 MB; fetch() checked the sha256
    when it wrote the file, and wrote it whole or not at all."""
    path = cache_dir() / name
    if path.is_file() and not path.is_symlink() and path.stat().st_size == MODELS[name][1]:
        return path
    return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(into: Path) -> Path:
    """The pinned wheel, by pip (no dependencies, one retry, a short timeout), checked."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        PACKAGE,
        "--no-deps",
        "--only-binary",
        ":all:",
        "--timeout",
        _PIP_TIMEOUT_S,
        "--retries",
        "1",
        "--no-input",
        "--disable-pip-version-check",
        "--quiet",
        "-d",
        str(into),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    wheel = into / WHEEL
    if done.returncode != 0 or not wheel.is_file():
        last = (done.stderr.strip().splitlines() or ["no wheel"])[-1]
        raise RuntimeError(f"pip download {PACKAGE} failed: {last[:200]}")
    if wheel.stat().st_size > WHEEL_MAX_BYTES:
        raise RuntimeError(
            f"{WHEEL} is {wheel.stat().st_size} bytes, more than the {WHEEL_MAX_BYTES} expected"
        )
    found = _sha256(wheel)
    if found != WHEEL_SHA256:
        raise RuntimeError(f"{WHEEL} has sha256 {found}, not the pinned {WHEEL_SHA256}")
    return wheel


def _extract(wheel: Path, cache: Path) -> None:
    """Each pinned model: its exact member, its size read no further, its sha256; then renamed
    into place under its pinned name, so a cached file is always whole."""
    with zipfile.ZipFile(wheel) as archive:
        for name, (member, size, sha256) in MODELS.items():
            if member not in archive.namelist():
                raise RuntimeError(f"{WHEEL} has no {member}")
            info = archive.getinfo(member)
            if info.file_size != size:
                raise RuntimeError(f"{member} is {info.file_size} bytes in the wheel, not {size}")
            target = cache / name  # a pinned plain name: never outside the cache
            partial = cache / f".{name}.partial"
            digest = hashlib.sha256()
            written = 0
            with archive.open(info) as source, partial.open("wb") as out:
                while block := source.read(min(1 << 20, size + 1 - written)):
                    written += len(block)
                    if written > size:
                        raise RuntimeError(f"{member} holds more than its {size} bytes")
                    digest.update(block)
                    out.write(block)
            if written != size or digest.hexdigest() != sha256:
                partial.unlink()
                raise RuntimeError(f"{member} does not match its pinned size and sha256")
            os.replace(partial, target)


def fetch(cache: Path) -> list[str]:
    """Make sure every pinned model is in `cache`; the names fetched (none when all were there)."""
    missing = [n for n, (_, size, sha) in MODELS.items() if not _whole(cache / n, size, sha)]
    if not missing:
        return []
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix=".download-") as folder:
        _extract(_download(Path(folder)), cache)
    return missing


def _whole(path: Path, size: int, sha256: str) -> bool:
    return (
        path.is_file() and not path.is_symlink() and path.stat().st_size == size and _sha256(path) == sha256
    )


def main() -> int:
    cache = cache_dir()
    try:
        fetched = fetch(cache)
    except (OSError, RuntimeError, zipfile.BadZipFile, subprocess.SubprocessError) as exc:
        for name in MODELS:  # a half-written or stale file never passes for the model
            (cache / f".{name}.partial").unlink(missing_ok=True)
        print(f"registry models: not fetched ({exc}); the registry-model tests will skip")
        return 0
    if fetched:
        print(f"registry models: {', '.join(fetched)} from {PACKAGE} in {cache}")
    else:
        print(f"registry models: already in {cache}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
