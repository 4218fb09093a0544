"""Line charts as inline SVG, drawn by hand: the report must open anywhere, offline, as one file."""

from __future__ import annotations

import html
import time
from collections.abc import Sequence

__all__ = ["Series", "downsample", "line_chart"]

Point = tuple[float, float]
MAX_POINTS = 240


class Series:
    def __init__(self, name: str, colour: str, points: Sequence[Point]) -> None:
        self.name, self.colour, self.points = name, colour, list(points)


def downsample(points: Sequence[Point], buckets: int = MAX_POINTS) -> list[Point]:
    """Average points into at most `buckets` equal time spans, keeping the shape and the ends."""
    if len(points) <= buckets:
        return list(points)
    start, end = points[0][0], points[-1][0]
    width = (end - start) / buckets or 1.0
    sums: dict[int, list[float]] = {}
    for x, y in points:
        slot = sums.setdefault(min(int((x - start) / width), buckets - 1), [0.0, 0.0, 0.0])
        slot[0] += x
        slot[1] += y
        slot[2] += 1
    return [(s[0] / s[2], s[1] / s[2]) for _, s in sorted(sums.items())]


def line_chart(
    title: str,
    series: Sequence[Series],
    y_max: float | None = None,
    unit: str = "",
    width: int = 640,
    height: int = 180,
) -> str:
    """An SVG chart of time series (x = Unix time); empty series are listed as 'no data'."""
    left, right, top, bottom = 44, 12, 24, 26
    drawn = [Series(s.name, s.colour, downsample(s.points)) for s in series if s.points]
    xs = [x for s in drawn for x, _ in s.points]
    ys = [y for s in drawn for _, y in s.points]
    top_y = y_max if y_max is not None else (max(ys) * 1.1 if ys and max(ys) > 0 else 1.0)
    x0, x1 = (min(xs), max(xs)) if xs else (0.0, 1.0)
    span = (x1 - x0) or 1.0
    plot_w, plot_h = width - left - right, height - top - bottom

    def px(x: float) -> float:
        return left + (x - x0) / span * plot_w

    def py(y: float) -> float:
        return top + plot_h - max(0.0, min(y, top_y)) / top_y * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{html.escape(title)}">',
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="{left}" y="15" font-size="12" font-weight="bold" fill="#222">{html.escape(title)}</text>',
    ]
    for fraction in (0.0, 0.5, 1.0):
        y = top + plot_h * (1 - fraction)
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" '
            'stroke="#ddd" stroke-width="1"/>'
        )
        parts.append(
            f'<text x="{left - 4}" y="{y + 4:.1f}" font-size="10" text-anchor="end" '
            f'fill="#555">{top_y * fraction:.0f}{html.escape(unit)}</text>'
        )
    if xs:
        for x, anchor in ((x0, "start"), (x1, "end")):
            parts.append(
                f'<text x="{px(x):.1f}" y="{height - 8}" font-size="10" '
                f'text-anchor="{anchor}" fill="#555">{_clock(x)}</text>'
            )
    for s in drawn:
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in s.points)
        parts.append(f'<polyline fill="none" stroke="{s.colour}" stroke-width="1.5" points="{path}"/>')
    legend_x = left + 16 + 7 * len(title)
    for s in series:
        label = s.name if s.points else f"{s.name} (no data)"
        parts.append(f'<rect x="{legend_x}" y="7" width="10" height="10" fill="{s.colour}"/>')
        parts.append(
            f'<text x="{legend_x + 14}" y="16" font-size="11" fill="#333">{html.escape(label)}</text>'
        )
        legend_x += 24 + 7 * len(label)
    parts.append("</svg>")
    return "".join(parts)


def _clock(ts: float) -> str:
    return time.strftime("%d %b %H:%M", time.localtime(ts))
