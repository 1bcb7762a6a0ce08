"""Per-asset outcomes written back as payload fields `evals.<id>.*`, indexed for filters.

Classification writes `correct` (bool); detection `tp`, `fp`, `fn` (integers at the
evaluation's IoU) and `confusion` (the keys of the confusion cells the image's boxes fall in,
service/evals/confusion.py). `{"evals.<id>.correct": false}` is then every wrong prediction, as a
search filter, a listing and an export selection.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from service.evals.evaluate import Outcomes, Plan
from service.index.base import FieldType, VectorIndex

BATCH = 10_000
FIELDS = {
    "classification": {"correct": FieldType.bool},
    "detection": {**dict.fromkeys(("tp", "fp", "fn"), FieldType.integer), "confusion": FieldType.keyword},
}


def root(evaluation_id: str) -> str:
    return f"evals.{evaluation_id}"


def prepare(index: VectorIndex, plan: Plan) -> None:
    """Index the evaluation's outcome fields (before any asset has them: the engine then keeps
    the indexes up to date as the values are written, and filters on them are served by it)."""
    key = root(plan.evaluation_id)
    for name, kind in FIELDS[plan.task].items():
        index.ensure_field(f"{key}.{name}", kind)


def write(
    index: VectorIndex,
    plan: Plan,
    ids: Sequence[str],
    outcomes: Outcomes,
    *,
    on_batch: Callable[[float], None] = lambda f: None,
) -> None:
    """Index the fields first (`prepare`, at once if done already), then set them: one
    set-payload by ids per distinct outcome (`outcomes`: each with its assets' positions in
    `ids`; two for classification), not one per asset."""
    prepare(index, plan)
    key = root(plan.evaluation_id)
    done = 0
    for payload, at in outcomes:
        members = [ids[i] for i in at]
        for start in range(0, len(members), BATCH):
            index.set_payload(members[start : start + BATCH], payload, key=key)
            done += len(members[start : start + BATCH])
            on_batch(done / max(1, len(ids)))


def clear(index: VectorIndex, evaluation_id: str) -> None:
    """Remove an evaluation's outcome fields from every asset, and their payload indexes (an
    index per field of every evaluation ever run would pile up in the engine)."""
    index.delete_keys([root(evaluation_id)])
    key = root(evaluation_id)
    for name in {n for fields in FIELDS.values() for n in fields}:
        index.drop_field(f"{key}.{name}")


def wrong(evaluation_id: str, task: str) -> dict[str, Any]:
    """The assets the evaluation scored with at least one error."""
    key = root(evaluation_id)
    if task == "classification":
        return {f"{key}.correct": False}
    return {"or": [{f"{key}.fp": {"gt": 0}}, {f"{key}.fn": {"gt": 0}}]}


def right(evaluation_id: str, task: str) -> dict[str, Any]:
    """The assets the evaluation scored without an error."""
    key = root(evaluation_id)
    if task == "classification":
        return {f"{key}.correct": True}
    return {f"{key}.fp": 0, f"{key}.fn": 0}


def outcome_filters(plan: Plan) -> dict[str, Any]:
    """What the evaluation wrote, and the filters that select its wrong and right assets."""
    return {
        "fields": [f"{root(plan.evaluation_id)}.{name}" for name in FIELDS[plan.task]],
        "wrong": wrong(plan.evaluation_id, plan.task),
        "right": right(plan.evaluation_id, plan.task),
    }
