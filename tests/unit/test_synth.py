"""The synthetic shape generator: determinism, ground truth that matches pixels, sidecars."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from service.synth import (
    BACKGROUNDS,
    COLORS,
    RARE_SHAPES,
    SHAPES,
    SIZES,
    describe,
    generate,
    query,
    random_caption,
    render,
    write_dataset,
)
from service.synth.geometry import shape_mask


def test_same_seed_gives_the_same_pixels_and_attributes() -> None:
    first = list(generate(11, 20, edge_cases=True))
    again = list(generate(11, 20, edge_cases=True))
    assert [s.image.tobytes() for s in first] == [s.image.tobytes() for s in again]
    assert [s.attributes for s in first] == [s.attributes for s in again]


def test_other_seeds_differ_and_streams_can_be_sliced() -> None:
    a = [s.image.tobytes() for s in generate(11, 10)]
    b = [s.image.tobytes() for s in generate(12, 10)]
    assert not set(a) & set(b)
    tail = [s.image.tobytes() for s in generate(11, 4, start=6)]
    assert tail == a[6:]


def test_attributes_cover_the_vocabulary() -> None:
    samples = list(generate(3, 400))
    assert {s.attributes["shape"] for s in samples} == set(SHAPES)
    assert {s.attributes["color"] for s in samples} == set(COLORS)
    assert {s.attributes["size"] for s in samples} == set(SIZES)
    assert {s.attributes["background"] for s in samples} == set(BACKGROUNDS)
    assert {s.attributes["kind"] for s in samples} == {"normal"}
    assert all(s.image.size == (128, 128) and s.image.mode == "RGB" for s in samples)


def test_caption_states_every_attribute() -> None:
    for s in generate(5, 50, edge_cases=True):
        a = s.attributes
        assert s.caption == a["caption"] == describe(a)
        assert f"{a['size']} {a['color']} {a['shape']}" in s.caption
        assert s.caption.endswith(f"on a {a['background']} background")
        assert ("partly covered" in s.caption) == (a["kind"] == "occluded")
    triangle = {"shape": "triangle", "color": "red", "size": "small", "background": "grey"}
    assert describe(triangle) == "a small red triangle on a grey background"
    assert query("orange", "star") == "an orange star"


SOLID = [name for name, rgb in BACKGROUNDS.items() if rgb is not None]


def _solid_samples(seed: int, n: int) -> list[tuple[np.ndarray, dict[str, str]]]:
    """(pixels of the drawn shape, attributes) of the images on a plain background."""
    found = []
    for sample in generate(seed, n):
        if sample.attributes["background"] not in SOLID:
            continue  # noise and stripes defeat a simple background threshold
        pixels = np.asarray(sample.image, dtype=np.float32)
        background = np.asarray(BACKGROUNDS[sample.attributes["background"]], dtype=np.float32)
        shape = np.abs(pixels - background).sum(axis=2) > 90
        found.append((pixels[shape], sample.attributes))
    return found


def test_the_named_colour_is_the_colour_drawn() -> None:
    samples = _solid_samples(21, 60)
    assert len(samples) > 30
    for shape, attrs in samples:
        mean = np.median(shape, axis=0)  # edge pixels blend into the background
        nearest = min(COLORS, key=lambda c: float(np.abs(np.subtract(COLORS[c], mean)).sum()))
        assert nearest == attrs["color"], attrs


def test_the_named_size_orders_the_drawn_area() -> None:
    areas: dict[str, list[int]] = {name: [] for name in SIZES}
    for shape, attrs in _solid_samples(8, 200):
        areas[attrs["size"]].append(len(shape))
    small, medium, large = (float(np.mean(areas[name])) for name in ("small", "medium", "large"))
    assert 0 < small < medium < large < 128 * 128 / 2


def test_every_shape_draws_a_distinct_silhouette() -> None:
    masks = {
        name: shape_mask(name, size=64, center=(32, 32), radius=20, angle=0.3) > 0.5
        for name in SHAPES + RARE_SHAPES
    }
    for name, mask in masks.items():
        assert 150 < mask.sum() < 64 * 64 / 2, name
    names = list(masks)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert (masks[a] ^ masks[b]).sum() > 60, (a, b)


def test_edge_cases_are_rare_and_labelled() -> None:
    kinds = Counter()
    for s in generate(2, 1500, size=32, edge_cases=True):
        kind = s.attributes["kind"]
        kinds[kind] += 1
        assert (s.attributes["shape"] in RARE_SHAPES) == (kind == "rare")
    assert 5 <= kinds["rare"] <= 30  # about 1%
    assert 15 <= kinds["occluded"] <= 50  # about 2%


def test_training_captions_vary_and_keep_to_the_truth() -> None:
    attrs = render(4, 0).attributes
    rng = np.random.default_rng(0)
    captions = {random_caption(attrs, rng) for _ in range(300)}
    assert len(captions) > 20
    assert f"{attrs['color']} {attrs['shape']}" in " ".join(captions)
    others = (set(COLORS) - {attrs["color"]}) | (set(SHAPES) - {attrs["shape"]})
    for caption in captions:
        words = set(re.findall(r"[a-z]+", caption))
        assert not words & others, caption


def test_write_dataset_writes_images_and_sidecars(tmp_path: Path) -> None:
    paths = write_dataset(tmp_path / "set", 12, seed=9)
    assert [p.name for p in paths][:2] == ["img_00000.jpg", "img_00001.jpg"]
    for path, sample in zip(paths, generate(9, 12, edge_cases=True), strict=True):
        meta = json.loads(Path(f"{path}.json").read_text())
        assert {"shape", "color", "size", "background", "kind", "caption"} <= meta.keys()
        assert {k: meta[k] for k in sample.attributes} == sample.attributes
        assert meta["site"] and meta["split"] in ("train", "val", "test")
        assert datetime.fromisoformat(meta["captured_at"]).tzinfo is not None
        assert meta["captured_at"].endswith("Z")
        with Image.open(path) as image:
            assert image.format == "JPEG" and image.size == (128, 128)


def test_write_dataset_is_byte_for_byte_repeatable(tmp_path: Path) -> None:
    one = write_dataset(tmp_path / "a", 5, seed=1, image_format="png", extra_metadata=False)
    two = write_dataset(tmp_path / "b", 5, seed=1, image_format="png", extra_metadata=False)
    for a, b in zip(one, two, strict=True):
        assert a.read_bytes() == b.read_bytes()
        assert Path(f"{a}.json").read_bytes() == Path(f"{b}.json").read_bytes()
    assert "site" not in json.loads(Path(f"{one[0]}.json").read_text())
    with pytest.raises(ValueError, match="image_format"):
        write_dataset(tmp_path / "c", 1, seed=1, image_format="gif")
