"""Synthetic detection scenes: 0-3 coloured circles, squares and triangles on a noisy background.

Rings, crosses, bars and stars are drawn too, as things a detector must learn to ignore.

Only numpy and Pillow, so tests and benchmarks can draw more images (or frames of moving shapes)
without torch:

    import sys; sys.path.insert(0, "packaging/models")
    from shapes import make_scene, moving_scenes
    image, shapes = make_scene(numpy.random.default_rng(1), size=96)

Boxes are (x1, y1, x2, y2) in the image's pixels, the convention of `agent.wire.Detection`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

__all__ = [
    "CLASSES",
    "DISTRACTORS",
    "SIZE",
    "Shape",
    "draw_scene",
    "make_scene",
    "moving_scenes",
    "random_shapes",
    "to_json",
]

CLASSES = ("circle", "square", "triangle")
DISTRACTORS = ("ring", "cross", "bar", "star")  # drawn, never to be detected
SIZE = 96
MAX_SHAPES = 3
_EXTENT = (0.12, 0.45)  # diameter of a shape as a fraction of the image side
_CORNERS = {"square": 4, "triangle": 3, "star": 10}
Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Shape:
    """One object: its kind, centre and diameter (of the circle around it) in pixels, colour, turn."""

    kind: str
    cx: float
    cy: float
    diameter: float
    color: tuple[int, int, int]
    angle: float = 0.0

    @property
    def label(self) -> int:
        """Class index; -1 for a distractor."""
        return CLASSES.index(self.kind) if self.kind in CLASSES else -1

    @property
    def box(self) -> Box:
        """The tight bounding box of what is drawn."""
        points = np.asarray(self.outline())
        return (
            float(points[:, 0].min()),
            float(points[:, 1].min()),
            float(points[:, 0].max()),
            float(points[:, 1].max()),
        )

    def outline(self) -> list[tuple[float, float]]:
        """Polygon vertices; for round and line-drawn kinds the corners of their box."""
        radius = self.diameter / 2
        if self.kind in _CORNERS:
            corners = _CORNERS[self.kind]
            turn = self.angle + (math.pi / 4 if self.kind == "square" else 0.0)
            radii = [radius * (0.45 if self.kind == "star" and k % 2 else 1) for k in range(corners)]
            return [
                (
                    self.cx + r * math.sin(turn + k * 2 * math.pi / corners),
                    self.cy - r * math.cos(turn + k * 2 * math.pi / corners),
                )
                for k, r in enumerate(radii)
            ]
        if self.kind == "bar":  # three times as long as wide, along the angle
            along = (radius * math.cos(self.angle), radius * math.sin(self.angle))
            across = (-along[1] / 3, along[0] / 3)
            return [
                (self.cx + a * along[0] + b * across[0], self.cy + a * along[1] + b * across[1])
                for a, b in ((1, 1), (1, -1), (-1, -1), (-1, 1))
            ]
        return [(self.cx - radius, self.cy - radius), (self.cx + radius, self.cy + radius)]

    def moved(self, dx: float, dy: float) -> Shape:
        return Shape(self.kind, self.cx + dx, self.cy + dy, self.diameter, self.color, self.angle)

    def draw(self, canvas: ImageDraw.ImageDraw) -> None:
        if self.kind == "circle":
            canvas.ellipse(self.outline(), fill=self.color)
        elif self.kind == "ring":
            canvas.ellipse(self.outline(), outline=self.color, width=max(2, int(self.diameter / 8)))
        elif self.kind == "cross":
            (x1, y1), (x2, y2) = self.outline()
            width = max(2, int(self.diameter / 6))
            canvas.line([(x1, self.cy), (x2, self.cy)], fill=self.color, width=width)
            canvas.line([(self.cx, y1), (self.cx, y2)], fill=self.color, width=width)
        else:
            canvas.polygon(self.outline(), fill=self.color)


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    """Any hue, fairly saturated: most shapes stand out, some barely."""
    hue, saturation, value = rng.random(), rng.uniform(0.35, 1.0), rng.uniform(0.45, 1.0)
    channels = [max(0.0, min(1.0, abs((hue * 6 + offset) % 6 - 3) - 1)) for offset in (0, 4, 2)]
    red, green, blue = (int(255 * value * (1 - saturation * (1 - c))) for c in channels)
    return red, green, blue


def _overlaps(box: Box, others: Sequence[Box], margin: float) -> bool:
    return any(
        box[0] < o[2] + margin
        and o[0] < box[2] + margin
        and box[1] < o[3] + margin
        and o[1] < box[3] + margin
        for o in others
    )


def random_shapes(
    rng: np.random.Generator,
    size: int = SIZE,
    count: int | None = None,
    kinds: Sequence[str] = CLASSES,
    avoid: Sequence[Box] = (),
) -> list[Shape]:
    """0-3 shapes (or `count`) of `kinds` wholly in the image, touching neither each other nor `avoid`."""
    wanted = int(rng.integers(0, MAX_SHAPES + 1)) if count is None else count
    shapes: list[Shape] = []
    for _ in range(50 * max(wanted, 1)):
        if len(shapes) == wanted:
            break
        diameter = rng.uniform(*_EXTENT) * size
        centre = rng.uniform(diameter / 2 + 1, size - diameter / 2 - 1, 2)
        shape = Shape(
            kinds[int(rng.integers(len(kinds)))],
            float(centre[0]),
            float(centre[1]),
            diameter,
            _colour(rng),
            float(rng.uniform(0, 2 * math.pi)),
        )
        if not _overlaps(shape.box, [*avoid, *(s.box for s in shapes)], margin=2):
            shapes.append(shape)
    return shapes


def _background(rng: np.random.Generator, size: int, avoid: Sequence[Box] = ()) -> np.ndarray:
    """A colour gradient with a few lines and distractor shapes away from `avoid`: float [H, W, 3]."""
    corners = rng.uniform(20, 200, (2, 2, 3))
    ramp = np.linspace(0, 1, size)[:, None, None]
    top = corners[0, 0] + (corners[0, 1] - corners[0, 0]) * ramp
    bottom = corners[1, 0] + (corners[1, 1] - corners[1, 0]) * ramp
    picture = top[None, :, 0, :] + (bottom - top)[None, :, 0, :] * ramp
    canvas = Image.fromarray(np.clip(picture, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(0, 4))):
        ends = [float(v) for v in rng.uniform(0, size, 4)]
        grey = int(rng.integers(60, 200))
        draw.line(ends, fill=(grey, grey, grey), width=int(rng.integers(1, 3)))
    for distractor in random_shapes(rng, size, int(rng.integers(0, 3)), DISTRACTORS, avoid):
        distractor.draw(draw)
    return np.asarray(canvas, dtype=np.float32)


def draw_scene(
    shapes: Sequence[Shape],
    rng: np.random.Generator,
    size: int = SIZE,
    noise: float | None = None,
    background: np.ndarray | None = None,
) -> Image.Image:
    """Draw `shapes` on `background` (a fresh one from `rng` if None) plus noise (σ 4-20 if None)."""
    base = _background(rng, size, [s.box for s in shapes]) if background is None else background
    canvas = Image.fromarray(base.astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for shape in shapes:
        shape.draw(draw)
    sigma = rng.uniform(4, 20) if noise is None else noise
    pixels = np.asarray(canvas, dtype=np.float32) + sigma * rng.standard_normal((size, size, 3), np.float32)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def make_scene(rng: np.random.Generator, size: int = SIZE) -> tuple[Image.Image, list[Shape]]:
    """A random scene and the shapes in it."""
    shapes = random_shapes(rng, size)
    return draw_scene(shapes, rng, size), shapes


def moving_scenes(
    seed: int, frames: int, size: int = SIZE, count: int = 3, speed: float = 2.0
) -> Iterator[tuple[Image.Image, list[Shape]]]:
    """Frames of `count` shapes gliding and bouncing off the edges, for video benchmarks.

    A still camera: the same background every frame, fresh sensor noise each time.
    """
    rng = np.random.default_rng(seed)
    shapes = random_shapes(rng, size, count)
    velocities = [rng.uniform(-speed, speed, 2) * size / SIZE for _ in shapes]
    background = _background(rng, size)
    for _ in range(frames):
        yield draw_scene(shapes, rng, size, noise=8.0, background=background), shapes
        steps = [_step(shape, velocity, size) for shape, velocity in zip(shapes, velocities, strict=True)]
        shapes, velocities = [s for s, _ in steps], [v for _, v in steps]


def _step(shape: Shape, velocity: np.ndarray, size: int) -> tuple[Shape, np.ndarray]:
    """Move by `velocity`, turning back first at an edge so the shape stays wholly in the picture."""
    x1, y1, x2, y2 = shape.moved(float(velocity[0]), float(velocity[1])).box
    turned = velocity * [-1 if x1 < 0 or x2 > size - 1 else 1, -1 if y1 < 0 or y2 > size - 1 else 1]
    return shape.moved(float(turned[0]), float(turned[1])), turned


def to_json(shapes: Sequence[Shape]) -> list[dict[str, object]]:
    """Ground truth as plain data: label, class index and (x1, y1, x2, y2) box rounded to 0.01 px."""
    return [{"label": s.kind, "index": s.label, "box": [round(v, 2) for v in s.box]} for s in shapes]
