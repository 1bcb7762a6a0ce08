"""Data for the evaluation benchmarks: classification predictions with class probabilities and
three slice fields, and COCO-val-scale detection (5,000 images, ~36,000 boxes, up to 100
detections each), the same arrays for Loupe and for FiftyOne."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

CLASSES = [f"class_{i}" for i in range(10)]
SLICES = {
    "site": [f"site_{i}" for i in range(8)],
    "camera": [f"cam_{i}" for i in range(5)],
    "daypart": ["dawn", "day", "dusk", "night"],
}
WIDTH, HEIGHT = 640, 480
DET_CLASSES = [f"obj_{i}" for i in range(20)]


@dataclass
class Classified:
    truth: list[str]
    predicted: list[str]
    scores: np.ndarray  # n x classes, rows sum to 1
    slices: dict[str, list[str]]


def classification(n: int, *, seed: int = 3) -> Classified:
    """A model right ~80 % of the time overall, worse at night and on one camera."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(len(CLASSES), size=n)
    slices = {f: rng.integers(len(v), size=n) for f, v in SLICES.items()}
    hard = 0.15 + 0.2 * (slices["daypart"] == 3) + 0.1 * (slices["camera"] == 4)
    wrong = rng.random(n) < hard
    pred = np.where(wrong, (truth + rng.integers(1, len(CLASSES), size=n)) % len(CLASSES), truth)
    logits = rng.normal(size=(n, len(CLASSES)))
    logits[np.arange(n), pred] += 3.0
    scores = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return Classified(
        truth=[CLASSES[i] for i in truth],
        predicted=[CLASSES[i] for i in pred],
        scores=scores,
        slices={f: [SLICES[f][i] for i in v] for f, v in slices.items()},
    )


def detection(
    images: int, *, boxes_per_image: float = 7.3, max_dets: int = 100, seed: int = 5
) -> tuple[list[list[dict[str, Any]]], list[list[dict[str, Any]]]]:
    """Ground-truth boxes (COCO val: ~7.3 per image) and a detector's output: each true box found
    with jitter 85 % of the time, plus low-score clutter, at most `max_dets` per image."""
    rng = np.random.default_rng(seed)
    truth, pred = [], []
    for _ in range(images):
        n = int(min(40, rng.poisson(boxes_per_image)))
        w = rng.uniform(8, 200, n)
        h = rng.uniform(8, 200, n)
        x = rng.uniform(0, WIDTH - w)
        y = rng.uniform(0, HEIGHT - h)
        cls = rng.integers(len(DET_CLASSES), size=n)
        gt = [
            {"label": DET_CLASSES[c], "bbox": [float(a), float(b), float(c2), float(d)]}
            for a, b, c2, d, c in zip(x, y, w, h, cls, strict=True)
        ]
        dets = []
        for box in gt:
            if rng.random() < 0.85:
                bx, by, bw, bh = box["bbox"]
                j = rng.normal(0, 0.08, 4) * [bw, bh, bw, bh]
                nx, ny = min(max(0.0, bx + j[0]), WIDTH - 2), min(max(0.0, by + j[1]), HEIGHT - 2)
                nw, nh = min(max(1.0, bw + j[2]), WIDTH - nx), min(max(1.0, bh + j[3]), HEIGHT - ny)
                label = (
                    box["label"] if rng.random() > 0.05 else DET_CLASSES[int(rng.integers(len(DET_CLASSES)))]
                )
                dets.append({"label": label, "score": float(rng.uniform(0.4, 1.0)), "bbox": [nx, ny, nw, nh]})
        clutter = int(rng.integers(0, max_dets - len(dets) + 1)) if len(dets) < max_dets else 0
        for _ in range(clutter):
            cw, ch = rng.uniform(8, 120, 2)
            cx, cy = rng.uniform(0, WIDTH - cw), rng.uniform(0, HEIGHT - ch)
            dets.append(
                {
                    "label": DET_CLASSES[int(rng.integers(len(DET_CLASSES)))],
                    "score": float(rng.uniform(0.01, 0.5)),
                    "bbox": [float(cx), float(cy), float(cw), float(ch)],
                }
            )
        truth.append(gt)
        pred.append(dets[:max_dets])
    return truth, pred
