"""The class confusion of detections, built the way FiftyOne's `evaluate_detections(...,
classwise=False)` builds its confusion matrix.

Per image, the detections (at most MAX_DETS per class, the highest scores, as COCO keeps them)
are taken in decreasing score order, and each is matched to the not yet matched ground-truth box
of highest IoU at or above the threshold, *whatever its class* (IoU by faster-coco-eval's
`mask.iou`, COCO's box IoU). A match counts once in the cell (its box's class, the detection's
class); a box left unmatched counts in its class's row and the column "(none)"; a detection left
unmatched in the row "(none)" and its class's column. A detection that matches only a crowd
region of its own class is set aside, as COCO sets it aside (neither tp nor fp). Cells count
boxes, not images.

Without crowd regions, a class's row holds all its ground-truth boxes (tp + fn of the per-class
counts) and its column all its kept detections (tp + fp). The diagonal is at most the tp count:
class-blind matching can give a box to a detection of another class that overlaps it more.

Each image records the cells its boxes fall in, so every cell has a filter: the images holding
at least one box pair of that cell (`evals.<id>.confusion`, a keyword per cell, see `cell_key`).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from faster_coco_eval.core import mask as coco_mask

from service.evals.detection import DEFAULT_SCORE, MAX_DETS

NONE = "(none)"
Box = dict[str, Any]


@dataclass
class DetectionConfusion:
    labels: list[str]  # the classes, sorted, then "(none)"
    matrix: list[list[int]]  # rows: ground truth; columns: prediction
    cells: list[list[str]] = field(default_factory=list)  # per image: the keys of the cells it holds


def cell_key(truth: str, predicted: str) -> str:
    """One cell as a keyword value: the JSON pair, unambiguous whatever the class names hold."""
    return json.dumps([truth, predicted], ensure_ascii=False)


def _score(box: Box) -> float:
    score = box.get("score")
    return DEFAULT_SCORE if score is None else float(score)


def _kept(predicted: Sequence[Box]) -> list[Box]:
    """The detections COCO evaluates: the best MAX_DETS of each class, then all by score (stable)."""
    by_class: dict[str, list[Box]] = {}
    for box in sorted(predicted, key=lambda b: -_score(b)):
        by_class.setdefault(box["label"], []).append(box)
    kept = [b for boxes in by_class.values() for b in boxes[:MAX_DETS]]
    return sorted(kept, key=lambda b: -_score(b))


def _ious(dets: Sequence[Box], truth: Sequence[Box]) -> np.ndarray:
    if not dets or not truth:
        return np.zeros((len(dets), len(truth)))
    crowd = [1 if b.get("iscrowd") else 0 for b in truth]
    dt = [[float(v) for v in b["bbox"]] for b in dets]
    gt = [[float(v) for v in b["bbox"]] for b in truth]
    return np.asarray(coco_mask.iou(dt, gt, crowd), dtype=np.float64).reshape(len(dets), len(truth))


def _image(truth: Sequence[Box], predicted: Sequence[Box], threshold: float) -> list[tuple[str, str]]:
    """The (truth, predicted) cell of every box of one image."""
    real = [b for b in truth if not b.get("iscrowd")]
    crowd = [b for b in truth if b.get("iscrowd")]
    dets = _kept(predicted)
    ious = _ious(dets, [*real, *crowd])
    taken: set[int] = set()
    out: list[tuple[str, str]] = []
    for d, det in enumerate(dets):
        best, best_iou = -1, threshold
        for g in range(len(real)):
            # COCO's rule: the last box at the highest IoU wins a tie.
            if g not in taken and ious[d, g] >= best_iou:
                best, best_iou = g, float(ious[d, g])
        if best >= 0:
            taken.add(best)
            out.append((real[best]["label"], det["label"]))
        elif not any(
            ious[d, len(real) + c] >= threshold and b["label"] == det["label"] for c, b in enumerate(crowd)
        ):
            out.append((NONE, det["label"]))
    out.extend((box["label"], NONE) for g, box in enumerate(real) if g not in taken)
    return out


def confusion(
    pairs: Sequence[tuple[Sequence[Box], Sequence[Box]]], *, iou: float, classes: Sequence[str]
) -> DetectionConfusion:
    """The matrix over `classes` (those of either side) and "(none)", and each image's cells."""
    threshold = min(iou, 1 - 1e-10)  # COCO's own clamp: an IoU of 1 still matches identical boxes
    labels = [*sorted(classes), NONE]
    at = {label: i for i, label in enumerate(labels)}
    counts: Counter[tuple[str, str]] = Counter()
    cells = []
    for truth, predicted in pairs:
        found = _image(truth, predicted, threshold)
        counts.update(found)
        cells.append(sorted({cell_key(t, p) for t, p in found}))
    matrix = [[0] * len(labels) for _ in labels]
    for (t, p), n in counts.items():
        matrix[at[t]][at[p]] += n
    return DetectionConfusion(labels=labels, matrix=matrix, cells=cells)
