"""Two evaluations on one ground truth: B minus A, and the assets fixed and broken between them.

Classification: fixed = wrong under A and right under B; broken = right under A, wrong
under B. Detection: an asset is wrong when it has any false positive or false negative at
its evaluation's IoU; fixed = wrong under A with no fp and no fn under B, broken = the
reverse. Both are filters over the `evals.<id>.*` fields, so they list and export as is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from service.errors import Conflict, InvalidQuery
from service.evals.outcomes import right, wrong
from service.evals.schemas import AssetChange, ComparisonPublic, SliceDelta
from service.evals.store import EvaluationRow, EvaluationStore

if TYPE_CHECKING:
    from service.catalog.catalog import Catalog

DEFINITIONS = {
    "classification": "fixed: wrong under a, right under b; broken: right under a, wrong under b",
    "detection": "an asset is wrong with any fp or fn at the IoU; fixed: wrong under a, "
    "no fp and no fn under b; broken: the reverse",
}


def _done(store: EvaluationStore, evaluation_id: str, path: str) -> EvaluationRow:
    row = store.get(evaluation_id)
    if row.state != "succeeded":
        raise Conflict(
            f"{path}: evaluation {evaluation_id} is {row.state}; compare evaluations that succeeded"
        )
    return row


def delta(a: dict[str, Any], b: dict[str, Any]) -> dict[str, float | None]:
    """b - a for every numeric entry either side has (None where one side has no number)."""
    out: dict[str, float | None] = {}
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if _number(va) and _number(vb):
            out[key] = float(vb) - float(va)  # type: ignore[arg-type]
        elif _number(va) or _number(vb) or (va is None and vb is None):
            out[key] = None
    return out


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def compare(catalog: Catalog, a_id: str, b_id: str) -> ComparisonPublic:
    store = EvaluationStore(catalog.state)
    a, b = _done(store, a_id, "a"), _done(store, b_id, "b")
    if a.ground_truth != b.ground_truth:
        raise InvalidQuery(
            f"evaluation {a.id} used ground truth {a.ground_truth!r} and {b.id} used {b.ground_truth!r}; "
            "compare evaluations on the same ground truth",
            path="b",
        )
    if a.task != b.task:
        raise InvalidQuery(f"evaluation {a.id} is {a.task} and {b.id} is {b.task}", path="b")
    ra, rb = a.result or {}, b.result or {}
    classes_a, classes_b = ra.get("per_class") or {}, rb.get("per_class") or {}
    per_class = {
        name: delta(classes_a.get(name) or {}, classes_b.get(name) or {})
        for name in sorted(set(classes_a) | set(classes_b))
    }
    slices_a = {(s["field"], _key(s["value"])): s for s in ra.get("slices") or []}
    slices = []
    for s in rb.get("slices") or []:
        other = slices_a.get((s["field"], _key(s["value"])))
        if other is not None:
            slices.append(
                SliceDelta(
                    field=s["field"],
                    value=s["value"],
                    a=other["metrics"],
                    b=s["metrics"],
                    delta=delta(other["metrics"], s["metrics"]),
                )
            )
    fixed = {"and": [wrong(a.id, a.task), right(b.id, b.task)]}
    broken = {"and": [right(a.id, a.task), wrong(b.id, b.task)]}
    return ComparisonPublic(
        a=a.id,
        b=b.id,
        task=a.task,  # type: ignore[arg-type]
        ground_truth=a.ground_truth,
        metrics=delta(ra.get("metrics") or {}, rb.get("metrics") or {}),
        per_class=per_class,
        slices=slices,
        fixed=AssetChange(count=catalog.count(fixed), filter=fixed),
        broken=AssetChange(count=catalog.count(broken), filter=broken),
        definition=DEFINITIONS[a.task],
    )


def _key(value: Any) -> Any:
    return (type(value) is bool, value)
