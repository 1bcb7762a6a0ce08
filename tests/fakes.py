"""A deterministic stand-in encoder for tests where the model is beside the point.

It embeds an image as its normalised coarse colour layout, so similar images
are near each other; it never claims to understand text.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
from PIL import Image


class FakeEncoder:
    model_name = "fake"
    pretrained = "colour-layout"
    identity = "fake/colour-layout"
    image_size = 32
    dim = 48  # 4x4 cells x RGB

    def prepare(self, image: Image.Image) -> np.ndarray:
        small = image.convert("RGB").resize((4, 4), Image.Resampling.BILINEAR)
        return np.asarray(small, dtype=np.float32).reshape(-1) / 255.0 + 0.01

    def encode_prepared(self, items: Sequence[np.ndarray]) -> np.ndarray:
        arr = np.stack(list(items)).astype(np.float32)
        return arr / np.linalg.norm(arr, axis=1, keepdims=True)

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self.encode_prepared([self.prepare(im) for im in images])

    def encode_text(self, text: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
        vec = np.random.default_rng(seed).random(self.dim).astype(np.float32)
        return vec / np.linalg.norm(vec)
