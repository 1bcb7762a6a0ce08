"""Test data for evaluations: scikit-learn's digits with a small trained model, and synthetic
shape scenes with their boxes and a rule-based box predictor with known mistakes."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from service.catalog.catalog import Catalog
from service.index.base import Point
from service.labels import payload
from service.labels.schemas import LabelSetCreate
from service.labels.store import LabelSetStore
from service.synth import SHAPES
from service.synth.geometry import shape_mask

SITES = ("north", "south", "east")
NOW = "2026-01-01T00:00:00Z"


def add_points(catalog: Catalog, vectors: np.ndarray, metas: Sequence[dict[str, Any]]) -> list[str]:
    """Assets (with vectors and metadata) straight into the index, as a sync would leave them."""
    ids = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"asset-{i}")) for i in range(len(metas))]
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    points = [
        Point(
            ids[i],
            unit[i].astype(np.float32),
            {"source": "t", "key": f"a{i}.png", "uri": f"file:///a{i}.png", "status": "ok", "meta": dict(m)},
        )
        for i, m in enumerate(metas)
    ]
    catalog.index.upsert(points)
    return ids


def label_set(
    catalog: Catalog, name: str, *, role: str, task: str, values: Sequence[tuple[str, dict[str, Any]]]
) -> None:
    """A label set row and its per-asset values, written as the label-set importer writes them."""
    LabelSetStore(catalog.state).create(LabelSetCreate(name=name, role=role, task=task))  # type: ignore[arg-type]
    payload.ensure_indexes(catalog.index, name)
    payload.write(catalog.index, name, [(a, {**v, "imported_at": NOW}) for a, v in values])


def digits(train: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The digits images (as 48-d vectors), their labels, and the predictions of a logistic
    regression trained on the first `train` of them: a real model with real mistakes."""
    data = load_digits()
    x, y = data.data, data.target
    model = LogisticRegression(max_iter=200).fit(x[:train], y[:train])
    proj = np.random.default_rng(seed).normal(size=(64, 48))
    return x @ proj + 1e-3, y.astype(str), model.predict(x).astype(str)


def digit_metas(n: int) -> list[dict[str, Any]]:
    return [{"site": SITES[i % 3], "hour": i % 4, "night": i % 5 == 0} for i in range(n)]


def scene_boxes(n: int, *, seed: int = 0, size: int = 96) -> list[list[dict[str, Any]]]:
    """Per image, 1-4 synthetic shapes and each one's box: the bounds of its drawn mask."""
    rng = np.random.default_rng(seed)
    scenes = []
    for _ in range(n):
        boxes = []
        for _ in range(int(rng.integers(1, 5))):
            shape = SHAPES[int(rng.integers(len(SHAPES)))]
            radius = float(rng.uniform(6, 20))
            cx, cy = rng.uniform(radius, size - radius, 2)
            mask = shape_mask(
                shape, size=size, center=(cx, cy), radius=radius, angle=float(rng.uniform(-0.2, 0.2))
            )
            ys, xs = np.nonzero(mask > 0.5)
            x0, y0 = int(xs.min()), int(ys.min())
            boxes.append({"label": shape, "bbox": [x0, y0, int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1]})
        scenes.append(boxes)
    return scenes


def predict_boxes(
    scenes: Sequence[list[dict[str, Any]]], *, seed: int, drop: float = 0.15
) -> list[list[dict[str, Any]]]:
    """A rule-based detector: jitters each true box, drops some, names some wrongly, adds
    spurious low-score boxes; scores fall with the jitter."""
    rng = np.random.default_rng(seed)
    out = []
    for boxes in scenes:
        pred = []
        for b in boxes:
            if rng.random() < drop:
                continue
            x, y, w, h = b["bbox"]
            j = rng.normal(0, 0.12, 4) * [w, h, w, h]
            label = b["label"] if rng.random() > 0.1 else SHAPES[int(rng.integers(len(SHAPES)))]
            score = float(np.clip(1 - np.abs(j).mean() / max(w, h) * 4 + rng.normal(0, 0.05), 0.05, 1.0))
            pred.append(
                {
                    "label": label,
                    "score": score,
                    "bbox": [x + j[0], y + j[1], max(1.0, w + j[2]), max(1.0, h + j[3])],
                }
            )
        for _ in range(int(rng.integers(0, 3))):
            x, y = rng.uniform(0, 70, 2)
            pred.append(
                {
                    "label": SHAPES[int(rng.integers(len(SHAPES)))],
                    "score": float(rng.uniform(0.05, 0.5)),
                    "bbox": [float(x), float(y), float(rng.uniform(8, 25)), float(rng.uniform(8, 25))],
                }
            )
        out.append(pred)
    return out


def detection_value(boxes: list[dict[str, Any]]) -> dict[str, Any]:
    scored = [b["score"] for b in boxes if "score" in b]
    return {
        "label": None,
        "score": max(scored) if scored else None,
        "classes": sorted({b["label"] for b in boxes}),
        "count": len(boxes),
        "boxes": boxes,
    }


def write_scenes(directory: Any, n: int, *, seed: int, size: int = 96) -> list[list[dict[str, Any]]]:
    """`scene_00000.png ...`: each scene's shapes drawn on grey, with the boxes of its masks."""
    from pathlib import Path

    from PIL import Image

    from service.synth import COLORS

    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    colours = list(COLORS.values())
    out = []
    for i in range(n):
        pixels = np.full((size, size, 3), 128.0, dtype=np.float32)
        boxes = []
        for _ in range(int(rng.integers(1, 4))):
            shape = SHAPES[int(rng.integers(len(SHAPES)))]
            radius = float(rng.uniform(7, 18))
            cx, cy = rng.uniform(radius + 1, size - radius - 1, 2)
            mask = shape_mask(shape, size=size, center=(cx, cy), radius=radius, angle=0.0)
            rgb = np.asarray(colours[int(rng.integers(len(colours)))], dtype=np.float32)
            pixels = pixels * (1 - mask[..., None]) + rgb * mask[..., None]
            ys, xs = np.nonzero(mask > 0.5)
            x0, y0 = int(xs.min()), int(ys.min())
            boxes.append({"label": shape, "bbox": [x0, y0, int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1]})
        Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(root / f"scene_{i:05d}.png")
        out.append(boxes)
    return out


def coco_files(
    names: Sequence[str],
    truth: Sequence[list[dict[str, Any]]],
    pred: Sequence[list[dict[str, Any]]],
    size: int,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A COCO instances file for `truth` and a COCO file of scored detections for `pred`."""
    classes = sorted({b["label"] for boxes in (*truth, *pred) for b in boxes})
    cats = [{"id": i + 1, "name": c} for i, c in enumerate(classes)]
    cat = {c: i + 1 for i, c in enumerate(classes)}
    images = [{"id": i + 1, "file_name": n, "width": size, "height": size} for i, n in enumerate(names)]

    def annotations(per_image: Sequence[list[dict[str, Any]]], scored: bool) -> list[dict[str, Any]]:
        anns = []
        for i, boxes in enumerate(per_image):
            for b in boxes:
                x, y, w, h = (float(v) for v in b["bbox"])
                # Clipped to the image, as a detector's output is.
                x, y = max(0.0, x), max(0.0, y)
                w, h = min(w, size - x), min(h, size - y)
                ann = {
                    "id": len(anns) + 1,
                    "image_id": i + 1,
                    "category_id": cat[b["label"]],
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
                if scored:
                    ann["score"] = b["score"]
                anns.append(ann)
        return anns

    gt = {"images": images, "categories": cats, "annotations": annotations(truth, False)}
    dt = {"images": images, "categories": cats, "annotations": annotations(pred, True)}
    return gt, dt
