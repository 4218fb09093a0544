"""Write the bundled short video: moving shapes the bundled detector (shapes-yolo) recognises.

    .venv/bin/python packaging/models/make_video.py            # resources/videos/shapes.mp4

Frames come from `shapes.py` (`moving_scenes`: a still camera, three shapes gliding and
bouncing, fresh sensor noise each frame); PyAV encodes them as H.264. Tests and benchmarks
call `write_video` to make their own. Deterministic frames; the encoded bytes may differ
between FFmpeg builds.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from shapes import moving_scenes

__all__ = ["write_video"]

OUT = Path(__file__).resolve().parents[2] / "resources" / "videos" / "shapes.mp4"


def write_video(
    path: Path, seconds: float = 6.0, fps: int = 15, size: int = 192, seed: int = 4, codec: str = "libx264"
) -> Path:
    """`seconds` of moving shapes at `fps`, `size`×`size` pixels, as an MP4 (H.264) or any codec."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    frames = max(1, round(seconds * fps))
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":  # small and quick to decode; no B-frames, so no reordering delay
            stream.options = {"crf": "23", "preset": "medium", "bf": "0"}
        for image, _ in moving_scenes(seed, frames, size=size, speed=2.0):
            frame = av.VideoFrame.from_ndarray(np.asarray(image), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--fps", type=int, default=15)
    parser.add_argument("--size", type=int, default=192)
    args = parser.parse_args()
    path = write_video(args.out, args.seconds, args.fps, args.size)
    print(f"{path}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
