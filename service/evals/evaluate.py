"""One evaluation's numbers: the needed payload fields read in batches, scored by the libraries."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from service import collector
from service.evals import classification, detection
from service.evals.confusion import cell_key
from service.evals.confusion import confusion as detection_confusion
from service.evals.slices import positions, slice_key, slice_values
from service.index.base import Filter, VectorIndex
from service.index.filters import parse_filter

# Pages of 16,384: a fifth of the engine calls and progress reports of 4,096, same memory order
# (the fields read are a few short strings an asset).
BATCH = 16_384
# Each distinct outcome with the positions (in `Rows.ids`) of the assets that have it.
Outcomes = list[tuple[dict[str, Any], Sequence[int]]]


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
    slice_values: list[list[Any]] = field(default_factory=list)  # per slice field, per asset: raw
    assets: int = 0


def read(
    index: VectorIndex,
    plan: Plan,
    *,
    on_batch: Callable[[int], None] = lambda n: None,
    on_scrolled: Callable[[], None] = lambda: None,
) -> Rows:
    """Scroll the ground-truth set's assets under the filter, reading only the fields needed.

    The loop over the pages keeps the payloads of the scored assets and nothing else; labels
    and slice values are then taken out of them a field at a time (list comprehensions: a
    third of the time of a loop doing everything per asset). `on_scrolled` is called once the
    last page is in, before that Python-only part: the index is free again from there on.
    """
    # Hundreds of thousands of small dicts and no reference cycle: the cyclic collector would
    # only walk them, again and again as they pile up (a third of the read at 100,000 assets).
    with collector.paused():
        return _read(index, plan, on_batch, on_scrolled)


def _read(
    index: VectorIndex, plan: Plan, on_batch: Callable[[int], None], on_scrolled: Callable[[], None]
) -> Rows:
    gt_key, pr_key = f"labels.{plan.ground_truth}", f"labels.{plan.predictions}"
    classify = plan.task == "classification"
    value = "label" if classify else "boxes"
    fields = [f"{gt_key}.{value}", f"{pr_key}.{value}", *([] if classify else [f"{pr_key}.count"])]
    fields += [key for _, key in plan.slices]
    flt = parse_filter(scope(plan.filter, in_set(plan.ground_truth, plan.task)))
    rows = Rows()
    pr_name = plan.predictions
    kept: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        recs, cursor = index.scroll(filter=flt, limit=BATCH, cursor=cursor, fields=fields)
        rows.assets += len(recs)
        for rec in recs:
            # Without a value of the predictions set an asset is not scored.
            if (rec.payload.get("labels") or {}).get(pr_name) is not None:
                kept.append(rec.payload)
                rows.ids.append(rec.id)
        on_batch(rows.assets)
        if cursor is None:
            break
    on_scrolled()
    labels = [p["labels"] for p in kept]
    truth = [(gt or {}).get(value) for gt in (set_.get(plan.ground_truth) for set_ in labels)]
    predicted = [set_[pr_name].get(value) for set_ in labels]
    if classify:
        rows.truth = [v if type(v) is str else str(v) for v in truth]
        none = classification.NO_LABEL
        rows.predicted = [v if type(v) is str else none if v is None else str(v) for v in predicted]
    else:
        rows.truth = [v or [] for v in truth]
        rows.predicted = [v or [] for v in predicted]
    shared: dict[tuple[str, ...], list[Any]] = {}  # slice paths under one object walk it once
    rows.slice_values = [_at(kept, tuple(key.split(".")), shared) for _, key in plan.slices]
    return rows


def _at(payloads: list[Any], parts: tuple[str, ...], shared: dict[tuple[str, ...], list[Any]]) -> list[Any]:
    """The raw value at a payload path in each payload (None where the path stops); `shared`
    keeps the values at every prefix of the paths asked for."""
    if not parts:
        return payloads
    if parts not in shared:
        shared[parts] = [
            v.get(parts[-1]) if isinstance(v, dict) else None for v in _at(payloads, parts[:-1], shared)
        ]
    return shared[parts]


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


def score(
    index: VectorIndex, plan: Plan, rows: Rows, *, on_outcomes: Callable[[Outcomes], None] = lambda o: None
) -> tuple[dict[str, Any], Outcomes]:
    """The evaluation's results, and the assets of each distinct outcome (positions in `rows.ids`).

    `on_outcomes` gets the outcomes as soon as they are known, before the metrics of the slices
    (the job starts writing them back meanwhile)."""
    if plan.task == "classification":
        return _classification(index, plan, rows, on_outcomes)
    return _detection(index, plan, rows, on_outcomes)


def _classification(
    index: VectorIndex, plan: Plan, rows: Rows, on_outcomes: Callable[[Outcomes], None]
) -> tuple[dict[str, Any], Outcomes]:
    pairs = classification.Coded.of(rows.truth, rows.predicted)  # once, for every metric and slice
    correct = pairs.t == pairs.p
    groups = [({"correct": False}, np.flatnonzero(~correct)), ({"correct": True}, np.flatnonzero(correct))]
    outcomes: Outcomes = [(outcome, at.tolist()) for outcome, at in groups if len(at)]
    on_outcomes(outcomes)
    labels = classification.coded_label_order(pairs.names)
    result: dict[str, Any] = {
        "metrics": classification.coded_metrics(pairs.t, pairs.p),
        "per_class": classification.coded_per_class(pairs, labels),
        "confusion": {
            "labels": labels,
            "matrix": classification.coded_confusion(pairs, labels),
            "filters": [[cell_filter(plan, a, b) for b in labels] for a in labels],
        },
    }

    def metrics_of(members: np.ndarray) -> dict[str, Any]:
        return classification.coded_metrics(pairs.t[members], pairs.p[members])

    result["slices"] = _slices(index, plan, rows, metrics_of)
    return result, outcomes


def _detection(
    index: VectorIndex, plan: Plan, rows: Rows, on_outcomes: Callable[[Outcomes], None]
) -> tuple[dict[str, Any], Outcomes]:
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
    outcomes = grouped(
        {"tp": o.tp, "fp": o.fp, "fn": o.fn, "confusion": cells}
        for o, cells in zip(per_image, matrix.cells, strict=True)
    )
    on_outcomes(outcomes)
    result["confusion"] = {
        "labels": matrix.labels,
        "matrix": matrix.matrix,
        "filters": [[detection_cell_filter(plan, a, b) for b in matrix.labels] for a in matrix.labels],
    }

    def metrics_of(members: np.ndarray) -> dict[str, Any]:
        images = members.tolist()
        sub = detection.average_precision(data, images=[i + 1 for i in images])
        counts = detection.Outcome(
            tp=sum(per_image[i].tp for i in images),
            fp=sum(per_image[i].fp for i in images),
            fn=sum(per_image[i].fn for i in images),
        )
        return {"map": sub["map"], "map_50": sub["map_50"], **detection.summary(counts)}

    result["slices"] = _slices(index, plan, rows, metrics_of)
    return result, outcomes


def grouped(outcomes: Iterable[dict[str, Any]]) -> Outcomes:
    """Equal outcomes together (lists, such as a detection's cells, compared as tuples), in the
    order of their first asset, so that each is written with one set-payload."""
    groups: dict[tuple[Any, ...], list[int]] = {}
    for pos, outcome in enumerate(outcomes):
        key = tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in sorted(outcome.items()))
        groups.setdefault(key, []).append(pos)
    return [({k: list(v) if isinstance(v, tuple) else v for k, v in key}, at) for key, at in groups.items()]


def _slices(
    index: VectorIndex, plan: Plan, rows: Rows, metrics_of: Callable[[np.ndarray], dict[str, Any]]
) -> list[dict[str, Any]]:
    """One slice per value of each `slice_by` field, in the facet's order (most assets first)."""
    scope_filter: Filter | None = parse_filter(
        scope(plan.filter, in_set(plan.ground_truth, plan.task), in_set(plan.predictions, plan.task))
    )
    out = []
    for i, (name, key) in enumerate(plan.slices):
        members = positions(rows.slice_values[i])
        for value, _count in slice_values(index, key, scope=scope_filter, members=members):
            mine = members.get(slice_key(value))
            if mine is not None and len(mine):
                out.append({"field": name, "value": value, "count": len(mine), "metrics": metrics_of(mine)})
    return out
