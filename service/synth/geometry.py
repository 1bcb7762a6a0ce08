"""Anti-aliased coverage masks of the synthetic shapes, drawn with PIL."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw

# Masks are drawn this many times larger and box-filtered down: cheap anti-aliasing.
SUPERSAMPLE = 4

Point = tuple[float, float]


def _regular(n: int, radius: float, angle: float, phase: float = -math.pi / 2) -> list[Point]:
    step = 2 * math.pi / n
    return [
        (radius * math.cos(phase + angle + i * step), radius * math.sin(phase + angle + i * step))
        for i in range(n)
    ]


def _star(radius: float, angle: float) -> list[Point]:
    outer = _regular(5, radius, angle)
    inner = _regular(5, radius * 0.45, angle + math.pi / 5)
    return [p for pair in zip(outer, inner, strict=True) for p in pair]


def _cross(radius: float, angle: float) -> list[Point]:
    a, w = radius, radius * 0.32
    plus = [(w, -a), (w, -w), (a, -w), (a, w), (w, w), (w, a),
            (-w, a), (-w, w), (-a, w), (-a, -w), (-w, -w), (-w, -a)]  # fmt: skip
    cos, sin = math.cos(angle), math.sin(angle)
    return [(x * cos - y * sin, x * sin + y * cos) for x, y in plus]


def _heart(radius: float, angle: float) -> list[Point]:
    # The classic parametric heart; its native extent is about 17 units.
    scale = radius / 17
    cos, sin = math.cos(angle), math.sin(angle)
    points = []
    for i in range(64):
        t = 2 * math.pi * i / 64
        x = 16 * math.sin(t) ** 3
        y = -(13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t))
        x, y = x * scale, (y + 2) * scale
        points.append((x * cos - y * sin, x * sin + y * cos))
    return points


_POLYGONS: dict[str, Callable[[float, float], list[Point]]] = {
    # Radii are scaled so that the shapes of one size class cover similar areas.
    "square": lambda r, a: _regular(4, r * 1.1, a, math.pi / 4),
    "triangle": lambda r, a: _regular(3, r * 1.25, a),
    "star": lambda r, a: _star(r * 1.25, a),
    "cross": lambda r, a: _cross(r * 1.05, a),
    "heart": lambda r, a: _heart(r * 1.1, a),
}


def _canvas(size: int) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    canvas = Image.new("L", (size * SUPERSAMPLE, size * SUPERSAMPLE), 0)
    return canvas, ImageDraw.Draw(canvas)


def _to_coverage(canvas: Image.Image) -> np.ndarray:
    small = canvas.reduce(SUPERSAMPLE)
    return np.asarray(small, dtype=np.float32) / 255.0


def shape_mask(shape: str, *, size: int, center: Point, radius: float, angle: float) -> np.ndarray:
    """Coverage in [0, 1] of `shape` on a `size`-pixel square image (H x W float32)."""
    canvas, draw = _canvas(size)
    s = SUPERSAMPLE
    cx, cy, r = center[0] * s, center[1] * s, radius * s
    if shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
    elif shape == "crescent":
        # A disc with an offset disc cut out of it, opening in the direction of `angle`.
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
        ox, oy = cx + 0.55 * r * math.cos(angle), cy + 0.55 * r * math.sin(angle)
        draw.ellipse((ox - 0.85 * r, oy - 0.85 * r, ox + 0.85 * r, oy + 0.85 * r), fill=0)
    elif shape in _POLYGONS:
        points = [(cx + x, cy + y) for x, y in _POLYGONS[shape](r, angle)]
        draw.polygon(points, fill=255)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return _to_coverage(canvas)


def bar_mask(*, size: int, center: Point, length: float, width: float, angle: float) -> np.ndarray:
    """Coverage of a straight bar (a rotated rectangle) through `center`."""
    canvas, draw = _canvas(size)
    s = SUPERSAMPLE
    dx, dy = math.cos(angle), math.sin(angle)
    hl, hw = length * s / 2, width * s / 2
    cx, cy = center[0] * s, center[1] * s
    corners = [
        (cx + sx * hl * dx - sy * hw * dy, cy + sx * hl * dy + sy * hw * dx)
        for sx, sy in ((1, 1), (1, -1), (-1, -1), (-1, 1))
    ]
    draw.polygon(corners, fill=255)
    return _to_coverage(canvas)
