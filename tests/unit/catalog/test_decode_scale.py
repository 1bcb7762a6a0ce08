"""Decode hands the encoder about its own size: JPEG draft and integer reduce, never below the target."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from service.catalog.decode import decode
from tests.images import gradient

MAX_PIXELS = 100_000_000


def encoded(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **({"quality": 92} if fmt == "JPEG" else {}))
    return buf.getvalue()


def encoder_view(img: Image.Image, size: int = 224) -> np.ndarray:
    """What a CLIP preprocess makes of an image: short side to `size` (bicubic), centre crop."""
    w, h = img.size
    scale = size / min(w, h)
    img = img.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.Resampling.BICUBIC)
    left, top = (img.size[0] - size) // 2, (img.size[1] - size) // 2
    return np.asarray(img.crop((left, top, left + size, top + size)), dtype=np.float32)


@pytest.mark.parametrize(("fmt", "size"), [("JPEG", (640, 480)), ("PNG", (640, 480)), ("PNG", (1000, 800))])
def test_large_images_come_out_near_the_target_with_the_original_size_reported(fmt, size):
    d = decode(encoded(gradient(3, size), fmt), target=224, max_pixels=MAX_PIXELS)
    assert (d.width, d.height) == size
    assert 224 <= min(d.image.size) < 2 * 224  # reduced, never below what the encoder needs
    assert d.image.mode == "RGB"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_small_images_are_left_alone(fmt):
    d = decode(encoded(gradient(4, (300, 200)), fmt), target=224, max_pixels=MAX_PIXELS)
    assert d.image.size == (300, 200)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_the_encoder_sees_the_same_pixels_as_from_a_full_decode(fmt):
    data = encoded(gradient(5, (1280, 960)), fmt)
    reduced = decode(data, target=224, max_pixels=MAX_PIXELS).image
    assert min(reduced.size) < 960
    full = Image.open(io.BytesIO(data)).convert("RGB")
    diff = np.abs(encoder_view(reduced) - encoder_view(full))
    assert diff.mean() < 2.0  # of 255: the reduction is a low-pass filter the resize applies anyway
