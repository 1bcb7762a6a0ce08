"""Detection metrics of per-asset boxes, computed by faster-coco-eval (COCO's bbox protocol).

`map` is COCO's mAP@[.5:.95] and `map_50` its mAP@.5 (all areas, 100 detections per image),
per-class `ap` COCO's AP@[.5:.95] of that class. `tp`, `fp` and `fn` come from a second COCO
run at the evaluation's one IoU threshold: COCO matches each image's detections of a class
to its boxes of that class greedily, highest score first, each box taken at most once; a
matched detection is a true positive, an unmatched one a false positive, an unmatched box a
false negative (a box predicted with the wrong class is therefore one fp and one fn).
Precision, recall and f1 per class follow from those counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from faster_coco_eval import COCO, COCOeval_faster

ALL_AREAS = [[0.0, 1e10]]
MAX_DETS = 100
DEFAULT_SCORE = 1.0  # a predicted box without a score ranks as certain


@dataclass
class Outcome:
    """One asset's counts at the evaluation's IoU."""

    tp: int = 0
    fp: int = 0
    fn: int = 0


@dataclass
class DetectionData:
    """The boxes of the matched assets, in COCO's shape (image ids are positions, from 1)."""

    classes: list[str]
    truth: list[dict[str, Any]] = field(default_factory=list)
    predicted: list[dict[str, Any]] = field(default_factory=list)
    images: int = 0


def coco_data(pairs: Sequence[tuple[Sequence[dict[str, Any]], Sequence[dict[str, Any]]]]) -> DetectionData:
    """COCO annotations and results from (truth boxes, predicted boxes) per asset."""
    classes = sorted({b["label"] for gt, pr in pairs for b in (*gt, *pr)})
    cat = {name: i + 1 for i, name in enumerate(classes)}
    data = DetectionData(classes=classes, images=len(pairs))
    for image, (gt, pr) in enumerate(pairs, start=1):
        for box in gt:
            x, y, w, h = (float(v) for v in box["bbox"])
            data.truth.append(
                {
                    "id": len(data.truth) + 1,
                    "image_id": image,
                    "category_id": cat[box["label"]],
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    # A crowd region: COCO lets any number of detections match it, none counted.
                    "iscrowd": 1 if box.get("iscrowd") else 0,
                }
            )
        for box in pr:
            score = box.get("score")
            data.predicted.append(
                {
                    "image_id": image,
                    "category_id": cat[box["label"]],
                    "bbox": [float(v) for v in box["bbox"]],
                    "score": DEFAULT_SCORE if score is None else float(score),
                }
            )
    return data


def _coco(data: DetectionData) -> tuple[COCO, COCO]:
    gt = COCO(
        {
            "images": [{"id": i} for i in range(1, data.images + 1)],
            "categories": [{"id": i + 1, "name": n} for i, n in enumerate(data.classes)],
            # COCO's loaders add keys to the annotations they are given: give them copies.
            "annotations": [dict(a) for a in data.truth],
        }
    )
    dt = gt.loadRes([dict(a) for a in data.predicted]) if data.predicted else COCO()
    return gt, dt


def _quiet(gt: COCO, dt: COCO, *, extra: bool = False) -> COCOeval_faster:
    return COCOeval_faster(gt, dt, "bbox", print_function=lambda *_: None, extra_calc=extra)


Marked = tuple[COCO, COCO]  # ground truth and detections, each annotation marked tp / fp / fn


def average_precision(
    data: DetectionData, *, images: Sequence[int] | None = None, marks: bool = False
) -> dict[str, Any]:
    """`map`, `map_50` and each class's `ap` (None where a class has no box to find).

    With `marks`, also "marked": the annotations marked at IoU 0.5 by the same run (COCO's
    matches at its first threshold), which spares `matches` a second run at the default IoU.
    """
    if not data.truth or not data.predicted:
        return {"map": None if not data.truth else 0.0, "map_50": None if not data.truth else 0.0, "ap": {}}
    gt, dt = _coco(data)
    ev = _quiet(gt, dt, extra=marks)
    if images is not None:
        ev.params.imgIds = list(images)
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    stats = [float(v) for v in ev.stats[:2]]
    precision = ev.eval["precision"]  # [iou, recall, class, area, max dets]
    ap: dict[str, float | None] = {}
    for k, name in enumerate(data.classes):
        p = precision[:, :, k, 0, -1]
        p = p[p > -1]
        ap[name] = float(np.mean(p)) if p.size else None
    out: dict[str, Any] = {"map": _stat(stats[0]), "map_50": _stat(stats[1]), "ap": ap}
    if marks and ev.matched:
        out["marked"] = (gt, dt)
    return out


def _stat(value: float) -> float | None:
    return None if value < 0 else value  # COCO's -1: nothing to measure


def matches(
    data: DetectionData, *, iou: float, marked: Marked | None = None
) -> tuple[list[Outcome], dict[str, Outcome]]:
    """Per asset (in input order) and per class: tp, fp, fn at `iou` (see the module docstring);
    `marked` (from average_precision) is used when `iou` is COCO's first threshold, 0.5."""
    per_image = [Outcome() for _ in range(data.images)]
    per_class = {name: Outcome() for name in data.classes}
    if not data.truth and not data.predicted:
        return per_image, per_class
    if not data.predicted or not data.truth:
        for a in data.truth:
            per_image[a["image_id"] - 1].fn += 1
            per_class[data.classes[a["category_id"] - 1]].fn += 1
        for a in data.predicted:
            per_image[a["image_id"] - 1].fp += 1
            per_class[data.classes[a["category_id"] - 1]].fp += 1
        return per_image, per_class
    if marked is not None and np.isclose(iou, 0.5):
        gt, dt = marked
    else:
        gt, dt = _coco(data)
        ev = _quiet(gt, dt, extra=True)
        ev.params.iouThrs = np.array([iou])
        ev.params.areaRng = ALL_AREAS
        ev.params.areaRngLbl = ["all"]
        ev.params.maxDets = [MAX_DETS]
        ev.evaluate()
        ev.accumulate()  # marks each annotation tp / fp / fn (math_matches)
    for ann in dt.anns.values():
        image, cls = per_image[ann["image_id"] - 1], per_class[data.classes[ann["category_id"] - 1]]
        if ann.get("tp"):
            image.tp += 1
            cls.tp += 1
        elif ann.get("fp"):
            image.fp += 1
            cls.fp += 1
    for ann in gt.anns.values():
        if ann.get("fn"):
            per_image[ann["image_id"] - 1].fn += 1
            per_class[data.classes[ann["category_id"] - 1]].fn += 1
    return per_image, per_class


def summary(counts: Outcome) -> dict[str, Any]:
    """precision, recall, f1 from counts (None where undefined), with the counts."""
    precision = counts.tp / (counts.tp + counts.fp) if counts.tp + counts.fp else None
    recall = counts.tp / (counts.tp + counts.fn) if counts.tp + counts.fn else None
    f1 = (
        2 * precision * recall / (precision + recall)
        if precision is not None and recall is not None and precision + recall
        else (0.0 if precision is not None and recall is not None else None)
    )
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "tp": counts.tp,
        "fp": counts.fp,
        "fn": counts.fn,
    }
