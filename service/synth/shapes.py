"""Deterministic synthetic images of coloured shapes, each with a caption and its attributes."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from service.synth.captions import describe
from service.synth.geometry import bar_mask, shape_mask

SHAPES = ("circle", "square", "triangle", "star", "cross")
RARE_SHAPES = ("heart", "crescent")
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "green": (40, 165, 60),
    "blue": (35, 75, 225),
    "yellow": (240, 220, 40),
    "purple": (140, 50, 185),
    "orange": (245, 125, 20),
}
BACKGROUNDS: dict[str, tuple[int, int, int] | None] = {
    "grey": (128, 128, 128),
    "white": (242, 242, 242),
    "black": (18, 18, 18),
    "beige": (222, 203, 166),
    "dark blue": (22, 32, 84),
    "noisy": None,  # None: drawn procedurally, see _background
    "striped": None,
}
# Shape colours that would all but vanish on a background are never put on it.
CLASHES = {("blue", "dark blue")}
SIZES: dict[str, tuple[float, float]] = {  # radius as a fraction of the image side
    "small": (0.12, 0.16),
    "medium": (0.19, 0.24),
    "large": (0.28, 0.34),
}
MAX_TILT = math.radians(15)
KINDS = ("normal", "occluded", "rare")
RARE_RATE = 0.01
OCCLUDED_RATE = 0.02


@dataclass(frozen=True)
class Sample:
    """One generated image, its canonical caption and its ground-truth attributes."""

    index: int
    image: Image.Image
    caption: str
    attributes: dict[str, Any]
    # The shape's box [x, y, w, h] in pixels: the extent of its coverage mask (occluders do not
    # shrink it), detection ground truth that needs no labeler.
    bbox: tuple[float, float, float, float] | None = None


def _pick(rng: np.random.Generator, options: tuple[str, ...] | list[str]) -> str:
    return str(options[int(rng.integers(len(options)))])


def _kind(rng: np.random.Generator, edge_cases: bool, rare: float, occluded: float) -> str:
    u = float(rng.random())  # drawn even without edge cases so the rest of the stream is stable
    if not edge_cases:
        return "normal"
    if u < rare:
        return "rare"
    return "occluded" if u < rare + occluded else "normal"


def _attributes(rng: np.random.Generator, kind: str) -> dict[str, Any]:
    shape = _pick(rng, RARE_SHAPES if kind == "rare" else SHAPES)
    color = _pick(rng, list(COLORS))
    backgrounds = [b for b in BACKGROUNDS if (color, b) not in CLASHES]
    return {
        "shape": shape,
        "color": color,
        "size": _pick(rng, list(SIZES)),
        "background": _pick(rng, backgrounds),
        "kind": kind,
    }


def _position_name(cx: float, cy: float, size: int) -> str:
    col = ("left", "center", "right")[min(2, int(3 * cx / size))]
    row = ("top", "middle", "bottom")[min(2, int(3 * cy / size))]
    if row == "middle":
        return "center" if col == "center" else col
    return row if col == "center" else f"{row} {col}"


def _background(rng: np.random.Generator, name: str, size: int) -> np.ndarray:
    solid = BACKGROUNDS[name]
    if solid is not None:
        jitter = rng.normal(0.0, 6.0, 3)
        return np.broadcast_to(np.add(solid, jitter), (size, size, 3)).astype(np.float32)
    if name == "noisy":
        # Smooth, muted colour blotches: a coarse random grid blown up bilinearly.
        grid = rng.uniform(60, 190, (4, 4, 3)).astype(np.float32)
        grid = grid.mean(axis=2, keepdims=True) * 0.6 + grid * 0.4
        blotches = [Image.fromarray(np.ascontiguousarray(grid[:, :, c])) for c in range(3)]
        up = [np.asarray(b.resize((size, size), Image.Resampling.BILINEAR)) for b in blotches]
        return np.stack(up, axis=2) + rng.normal(0.0, 10.0, (size, size, 3)).astype(np.float32)
    # "striped": two muted tones alternating along a random direction.
    tones = rng.uniform(70, 200, (2, 1)) * np.ones((1, 3)) + rng.normal(0, 8, (2, 3))
    angle, period = rng.uniform(0, math.pi), rng.uniform(0.12, 0.3) * size
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    phase = (xx * math.cos(angle) + yy * math.sin(angle)) / period
    select = (np.floor(phase) % 2).astype(np.float32)[..., None]
    return (tones[0] * (1 - select) + tones[1] * select).astype(np.float32)


def _composite(base: np.ndarray, mask: np.ndarray, rgb: np.ndarray) -> np.ndarray:
    alpha = mask[..., None]
    return base * (1.0 - alpha) + rgb.astype(np.float32) * alpha


def _shape_color(rng: np.random.Generator, name: str) -> np.ndarray:
    # Brightness and a little per-channel jitter make a colour a region, not a single value;
    # the jitter stays small so that no yellow drifts into orange.
    rgb = np.asarray(COLORS[name], dtype=np.float32) * rng.uniform(0.82, 1.08)
    return np.asarray(np.clip(rgb + rng.normal(0.0, 4.0, 3), 0, 255), dtype=np.float32)


def _draw(rng: np.random.Generator, attrs: dict[str, Any], size: int) -> tuple[np.ndarray, np.ndarray]:
    low, high = SIZES[attrs["size"]]
    radius = rng.uniform(low, high) * size
    margin = radius * 1.05
    cx, cy = rng.uniform(margin, size - margin, 2)
    attrs["position"] = _position_name(cx, cy, size)
    # Upright shapes, slightly tilted: a square stays a square (not a diamond), as people expect.
    angle = rng.uniform(-MAX_TILT, MAX_TILT)
    pixels = _background(rng, attrs["background"], size)
    mask = shape_mask(attrs["shape"], size=size, center=(cx, cy), radius=radius, angle=angle)
    pixels = _composite(pixels, mask, _shape_color(rng, attrs["color"]))
    if attrs["kind"] == "occluded":
        # A neutral bar across the shape hides roughly a third of it.
        bar = bar_mask(
            size=size,
            center=(cx + rng.uniform(-0.3, 0.3) * radius, cy),
            length=size * 1.5,
            width=radius * rng.uniform(0.6, 0.9),
            angle=rng.uniform(0, math.pi),
        )
        pixels = _composite(pixels, bar, rng.uniform(90, 150) * np.array([1.0, 0.9, 0.75]))
    return pixels, mask


def render(
    seed: int,
    index: int,
    *,
    size: int = 128,
    edge_cases: bool = False,
    rare_rate: float = RARE_RATE,
    occluded_rate: float = OCCLUDED_RATE,
) -> Sample:
    """Image `index` of the stream `seed`; it depends on nothing else, so streams can be sliced."""
    rng = np.random.default_rng([seed, index])
    attrs = _attributes(rng, _kind(rng, edge_cases, rare_rate, occluded_rate))
    pixels, mask = _draw(rng, attrs, size)
    pixels += rng.normal(0.0, rng.uniform(2.0, 12.0), pixels.shape).astype(np.float32)
    image = Image.fromarray(np.clip(pixels + 0.5, 0, 255).astype(np.uint8))
    attrs["caption"] = describe(attrs)
    return Sample(index=index, image=image, caption=attrs["caption"], attributes=attrs, bbox=_extent(mask))


def _extent(mask: np.ndarray) -> tuple[float, float, float, float]:
    """The pixel box [x, y, w, h] of the pixels a mask covers by half or more."""
    ys, xs = np.nonzero(mask >= 0.5)
    x0, y0 = int(xs.min()), int(ys.min())
    return (float(x0), float(y0), float(xs.max() + 1 - x0), float(ys.max() + 1 - y0))


def generate(
    seed: int, n: int, *, size: int = 128, edge_cases: bool = False, start: int = 0
) -> Iterator[Sample]:
    """Yield samples `start .. start+n-1` of stream `seed` (seed >= 0); same seed, same pixels.

    With `edge_cases`, about 1% of images show a rare shape (kind "rare": heart, crescent)
    and about 2% a shape partly covered by a bar (kind "occluded"); the rest are "normal".
    """
    if seed < 0:
        raise ValueError("seed must be >= 0")
    for index in range(start, start + n):
        yield render(seed, index, size=size, edge_cases=edge_cases)
