"""Deterministic benchmark image sets on disk (cached): photo-like JPEGs, 12 MP JPEGs, PNGs, tiny PNGs."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from benchmarks.common import CACHE

DATA = CACHE / "bench-data"
# kind -> (width, height, PIL format, save options, file suffix)
KINDS: dict[str, tuple[int, int, str, dict[str, object], str]] = {
    "jpeg-small": (640, 480, "JPEG", {"quality": 90}, "jpg"),
    "jpeg-12mp": (4000, 3000, "JPEG", {"quality": 90}, "jpg"),
    "png": (640, 480, "PNG", {"compress_level": 6}, "png"),
    "png-tiny": (16, 16, "PNG", {"compress_level": 1}, "png"),
    "jpeg-thumb": (96, 72, "JPEG", {"quality": 85}, "jpg"),
}


def photo(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """A smooth random colour field with shapes and fine grain: compresses like a photo, not like noise."""
    coarse = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    img = Image.fromarray(coarse, "RGB").resize((width, height), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(3, 9))):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        r = int(rng.integers(min(width, height) // 20, min(width, height) // 4))
        fill = tuple(int(c) for c in rng.integers(0, 256, 3))
        box = (x0 - r, y0 - r, x0 + r, y0 + r)
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=fill)
    grain = rng.normal(0, 6, size=(height, width, 1)).astype(np.int16)
    arr = np.clip(np.asarray(img, dtype=np.int16) + grain, 0, 255).astype(np.uint8)
    return Image.fromarray(arr, "RGB")


def image_set(kind: str, n: int, *, seed: int = 8, per_dir: int = 1000) -> Path:
    """A directory of `n` images of `kind` (generated once, then reused from the cache)."""
    width, height, fmt, options, suffix = KINDS[kind]
    root = DATA / f"{kind}-{n}-s{seed}"
    if (root / ".complete").exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        sub = root / f"d{i // per_dir:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        photo(rng, width, height).save(sub / f"img_{i:06d}.{suffix}", fmt, **options)
    (root / ".complete").write_text(str(n))
    return root


def files_of(root: Path) -> list[Path]:
    """The image files of a set, in listing order."""
    return sorted(p for p in root.rglob("img_*") if p.is_file())


# -- vectors and a model-free encoder ----------------------------------------------


def structured_vectors(n: int, *, dim: int = 512, seed: int = 8, clusters: int = 200) -> np.ndarray:
    """Unit vectors shaped like image embeddings, not isotropic noise.

    A shared offset (CLIP embeddings all lean one way), `clusters` centres in a
    64-dimensional subspace with unequal sizes, per-point spread inside the
    subspace and a little isotropic noise: neighbours are meaningful, and an
    index that only works on random vectors shows it.
    """
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(dim, 64)))[0].T  # 64 x dim, orthonormal rows
    centres = rng.normal(size=(clusters, 64)) * 1.0
    sizes = rng.dirichlet(np.full(clusters, 0.7))
    labels = rng.choice(clusters, size=n, p=sizes)
    local = centres[labels] + rng.normal(scale=0.6, size=(n, 64))
    vecs = local @ basis + rng.normal(scale=0.05, size=(n, dim)) + 6.0 * basis[0]
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    return vecs.astype(np.float32)


class StubEncoder:
    """A 512-d stand-in for the encoder where the network is beside the point.

    It embeds the image's 4x4 colour layout through a fixed random projection:
    the pipeline around it (list, fetch, decode, upsert) does its real work.
    """

    model_name = "bench-stub"
    pretrained = None
    identity = "bench-stub/none"
    image_size = 32

    def __init__(self, dim: int = 512, seed: int = 8) -> None:
        self.dim = dim
        self._proj = np.random.default_rng(seed).normal(size=(48, dim)).astype(np.float32)

    def prepare(self, image: Image.Image) -> np.ndarray:
        small = image.convert("RGB").resize((4, 4), Image.Resampling.BILINEAR)
        return np.asarray(small, dtype=np.float32).reshape(-1) / 255.0 - 0.5

    def encode_prepared(self, items: list[np.ndarray]) -> np.ndarray:
        out = np.stack(list(items)) @ self._proj
        return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)

    def encode_images(self, images: list[Image.Image]) -> np.ndarray:
        return self.encode_prepared([self.prepare(im) for im in images])

    def encode_text(self, text: str) -> np.ndarray:
        raise NotImplementedError("the benchmark stub encoder has no text tower")


# -- index points as the sync pipeline writes them ----------------------------------


def listed(root: Path, source: str) -> list[Any]:
    """The AssetRecords the local connector lists for `root` (sidecars off)."""
    from connectors.local import LocalConfig, LocalConnector

    conn = LocalConnector(source, LocalConfig(path=root, sidecars=False))
    return list(conn.list().records)


def pipeline_points(
    source: str,
    records: list[Any],
    vectors: np.ndarray,
    metadata: list[dict[str, Any]],
    size: tuple[int, int],
) -> list[Any]:
    """Points with the ids, versions and payloads a sync would write, and precomputed vectors."""
    from service.catalog.assets import asset_id, build_payload
    from service.catalog.decode import Decoded
    from service.index.base import Point

    out = []
    for rec, vec, meta in zip(records, vectors, metadata, strict=True):
        rec = replace(rec, metadata=meta)
        decoded = Decoded(image=None, width=size[0], height=size[1], format=None)  # type: ignore[arg-type]
        payload = build_payload(
            source=source, record=rec, decoded=decoded, extra_metadata={}, exports=[], media_type=None
        )
        out.append(Point(id=asset_id(source, rec.key), vector=vec, payload=payload))
    return out


def load_points(index: Any, points: list[Any], *, batch: int = 1000) -> None:
    for start in range(0, len(points), batch):
        index.upsert(points[start : start + batch])
    index.flush()
