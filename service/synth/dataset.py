"""Write a synthetic shape set to disk: image files plus `<image name>.json` sidecars."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from service.synth.shapes import generate

SITES = ("amsterdam", "boston", "chennai", "denver")
SPLITS = (("train", 0.8), ("val", 0.1), ("test", 0.1))
CAPTURE_START = datetime(2024, 1, 1, tzinfo=UTC)
CAPTURE_SPAN = timedelta(days=366)
FORMATS: dict[str, tuple[str, dict[str, Any]]] = {
    "jpg": ("JPEG", {"quality": 92}),
    "png": ("PNG", {"optimize": False}),
}


def demo_metadata(seed: int, index: int) -> dict[str, Any]:
    """Demo metadata for image `index`: `site`, `split` and `captured_at` (RFC 3339, UTC)."""
    # Its own random stream, so asking for metadata never changes the pixels.
    rng = np.random.default_rng([seed, index, 1])
    split = str(rng.choice([s for s, _ in SPLITS], p=[p for _, p in SPLITS]))
    offset = timedelta(seconds=int(rng.integers(int(CAPTURE_SPAN.total_seconds()))))
    captured = (CAPTURE_START + offset).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"site": SITES[int(rng.integers(len(SITES)))], "split": split, "captured_at": captured}


def write_dataset(
    directory: str | Path,
    n: int,
    seed: int,
    *,
    size: int = 128,
    edge_cases: bool = True,
    extra_metadata: bool = True,
    image_format: str = "jpg",
) -> list[Path]:
    """Write `n` images `img_00000.jpg ...` with sidecars `img_00000.jpg.json`; return image paths.

    The sidecar holds the sample's attributes (shape, color, size, background, position,
    kind, caption) and, with `extra_metadata`, `site`, `split` and `captured_at`.
    """
    if image_format not in FORMATS:
        raise ValueError(f"image_format must be one of {sorted(FORMATS)}, not {image_format!r}")
    pil_format, options = FORMATS[image_format]
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    digits = max(5, len(str(max(n - 1, 0))))
    paths = []
    for sample in generate(seed, n, size=size, edge_cases=edge_cases):
        path = root / f"img_{sample.index:0{digits}d}.{image_format}"
        sample.image.save(path, pil_format, **options)
        meta = dict(sample.attributes)
        if extra_metadata:
            meta.update(demo_metadata(seed, sample.index))
        Path(f"{path}.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
        paths.append(path)
    return paths
