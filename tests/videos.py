"""Videos of moving shapes the bundled detector recognises, made by the test that needs them."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

PACKAGING = Path(__file__).resolve().parents[1] / "packaging" / "models"


def write_video(path: Path, seconds: float = 2.0, fps: int = 15, size: int = 192, **kwargs: Any) -> Path:
    """An H.264 MP4 from packaging/models/make_video.py (frames drawn by shapes.py)."""
    if str(PACKAGING) not in sys.path:
        sys.path.insert(0, str(PACKAGING))
    maker = importlib.import_module("make_video")
    written: Path = maker.write_video(path, seconds, fps, size, **kwargs)
    return written
