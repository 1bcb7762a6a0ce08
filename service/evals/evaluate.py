"""One evaluation's numbers: the needed payload fields read in batches, scored by the libraries."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from service.evals import classification, detection
from service.evals.confusion import cell_key
from service.evals.confusion import confusion as detection_confusion
from service.evals.slices import payload_values, slice_values
from service.index.base import Filter, VectorIndex
from service.index.filters import parse_filter

BATCH = 4096


def presence_field(name: str, task: str) -> str:
    """The field every asset of a label set has: its label (classification) or box count."""
    return f"labels.{name}.label" if task == "classification" else f"labels.{name}.count"


def in_set(name: str, task: str) -> dict[str, Any]:
    return {presence_field(name, task): {"exists": True}}


def scope(*parts: dict[str, Any] | None) -> dict[str, Any]:
    """The AND of the given filters (None left out), as one filter of the language."""
    kept = [p for p in parts if p]
    return kept[0] if len(kept) == 1 else {"and": kept}


@dataclass
class Plan:
    """What to evaluate: the sets, the task, the user's filter and the slice fields (validated)."""

    evaluation_id: str
    predictions: str
    ground_truth: str
    task: str
    filter: dict[str, Any] | None
    slices: list[tuple[str, str]]  # (field as named, payload path)
    iou: float = 0.5


@dataclass
class Rows:
    """The matched assets, in scroll order, with what each metric needs."""

    ids: list[str] = field(default_factory=list)
    truth: list[Any] = field(default_factory=list)  # a label, or a list of boxes
    predicted: list[Any] = field(default_factory=list)
    slice_values: list[list[list[Any]]] = field(default_factory=list)  # per slice field, per asset
    assets: int = 0


def read(index: VectorIndex, plan: Plan, *, on_batch: Callable[[int], None] = lambda n: None) -> Rows:
    """Scroll the ground-truth set's assets under the filter, reading only the fields needed."""
    gt_key, pr_key = f"labels.{plan.ground_truth}", f"labels.{plan.predictions}"
    if plan.task == "classification":
        fields = [f"{gt_key}.label", f"{pr_key}.label"]
    else:
        fields = [f"{gt_key}.boxes", f"{pr_key}.boxes", f"{pr_key}.count"]
    fields += [key for _, key in plan.slices]
    flt = parse_filter(scope(plan.filter, in_set(plan.ground_truth, plan.task)))
    rows = Rows(slice_values=[[] for _ in plan.slices])
    # Per asset this loop runs once: the slice paths are split once, the lists bound once.
    slices = [(tuple(key.split(".")), rows.slice_values[i].append) for i, (_, key) in enumerate(plan.slices)]
    classify = plan.task == "classification"
    cursor: str | None = None
    while True:
        recs, cursor = index.scroll(filter=flt, limit=BATCH, cursor=cursor, fields=fields)
        rows.assets += len(recs)
        for rec in recs:
            labels = rec.payload.get("labels") or {}
            gt, pr = labels.get(plan.ground_truth) or {}, labels.get(plan.predictions)
            if pr is None:
                continue  # not scored: the predictions set says nothing about this asset
            rows.ids.append(rec.id)
            if classify:
                rows.truth.append(str(gt.get("label")))
                label = pr.get("label")
                rows.predicted.append(classification.NO_LABEL if label is None else str(label))
            else:
                rows.truth.append(gt.get("boxes") or [])
                rows.predicted.append(pr.get("boxes") or [])
            for parts, append in slices:
                append(payload_values(rec.payload, parts))
        on_batch(rows.assets)
        if cursor is None:
            return rows


def cell_filter(plan: Plan, truth: str, predicted: str) -> dict[str, Any]:
    """The assets of one confusion cell (the abstention column: a prediction without a label)."""
    pred_field = f"labels.{plan.predictions}.label"
    pred = (
        {pred_field: {"exists": False}, f"labels.{plan.predictions}": {"exists": True}}
        if predicted == classification.NO_LABEL
        else {pred_field: predicted}
    )
    return scope({f"labels.{plan.ground_truth}.label": truth}, pred, plan.filter)


def detection_cell_filter(plan: Plan, truth: str, predicted: str) -> dict[str, Any]:
    """The images that hold at least one box pair of a detection confusion cell."""
    return scope({f"evals.{plan.evaluation_id}.confusion": cell_key(truth, predicted)}, plan.filter)


def score(index: VectorIndex, plan: Plan, rows: Rows) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The evaluation's results, and each matched asset's outcome fields (in `rows.ids` order)."""
    if plan.task == "classification":
        return _classification(index, plan, rows)
    return _detection(index, plan, rows)


def _classification(
    index: VectorIndex, plan: Plan, rows: Rows
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    truth, pred = rows.truth, rows.predicted
    labels = classification.label_order(truth, pred)
    result: dict[str, Any] = {
        "metrics": classification.metrics(truth, pred),
        "per_class": classification.per_class(truth, pred, labels),
        "confusion": {
            "labels": labels,
            "matrix": classification.confusion(truth, pred, labels),
            "filters": [[cell_filter(plan, a, b) for b in labels] for a in labels],
        },
    }

    coded_truth, coded_pred = classification.encode(truth, pred)  # once, not once per slice

    def metrics_of(members: Sequence[int]) -> dict[str, Any]:
        at = np.asarray(members, dtype=np.int64)
        return classification.coded_metrics(coded_truth[at], coded_pred[at])

    result["slices"] = _slices(index, plan, rows, metrics_of)
    outcomes = [{"correct": t == p} for t, p in zip(truth, pred, strict=True)]
    return result, outcomes


def _detection(index: VectorIndex, plan: Plan, rows: Rows) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    pairs = list(zip(rows.truth, rows.predicted, strict=True))
    data = detection.coco_data(pairs)
    ap = detection.average_precision(data, marks=True)
    per_image, per_class = detection.matches(data, iou=plan.iou, marked=ap.get("marked"))
    total = detection.Outcome(
        tp=sum(o.tp for o in per_image), fp=sum(o.fp for o in per_image), fn=sum(o.fn for o in per_image)
    )
    result: dict[str, Any] = {
        "metrics": {"map": ap["map"], "map_50": ap["map_50"], **detection.summary(total)},
        "per_class": {
            name: {**detection.summary(c), "support": c.tp + c.fn, "ap": ap["ap"].get(name)}
            for name, c in per_class.items()
        },
    }
    matrix = detection_confusion(pairs, iou=plan.iou, classes=data.classes)
    result["confusion"] = {
        "labels": matrix.labels,
        "matrix": matrix.matrix,
        "filters": [[detection_cell_filter(plan, a, b) for b in matrix.labels] for a in matrix.labels],
    }

    def metrics_of(members: Sequence[int]) -> dict[str, Any]:
        sub = detection.average_precision(data, images=[i + 1 for i in members])
        counts = detection.Outcome(
            tp=sum(per_image[i].tp for i in members),
            fp=sum(per_image[i].fp for i in members),
            fn=sum(per_image[i].fn for i in members),
        )
        return {"map": sub["map"], "map_50": sub["map_50"], **detection.summary(counts)}

    result["slices"] = _slices(index, plan, rows, metrics_of)
    outcomes = [
        {"tp": o.tp, "fp": o.fp, "fn": o.fn, "confusion": cells}
        for o, cells in zip(per_image, matrix.cells, strict=True)
    ]
    return result, outcomes


def _slices(
    index: VectorIndex, plan: Plan, rows: Rows, metrics_of: Callable[[Sequence[int]], dict[str, Any]]
) -> list[dict[str, Any]]:
    """One slice per value of each `slice_by` field, in the facet's order (most assets first)."""
    scope_filter: Filter | None = parse_filter(
        scope(plan.filter, in_set(plan.ground_truth, plan.task), in_set(plan.predictions, plan.task))
    )
    out = []
    for i, (name, key) in enumerate(plan.slices):
        seen = rows.slice_values[i]
        members: dict[Any, list[int]] = {}
        for pos, values in enumerate(seen):
            for v in values if len(values) < 2 else set(values):
                members.setdefault(_hashable(v), []).append(pos)
        for value, _count in slice_values(index, key, scope=scope_filter, seen=seen):
            mine = members.get(_hashable(value), [])
            if mine:
                out.append({"field": name, "value": value, "count": len(mine), "metrics": metrics_of(mine)})
    return out


def _hashable(value: Any) -> Any:
    # True == 1 in a dict: keep a boolean slice apart from an integer one.
    return (type(value) is bool, value)
