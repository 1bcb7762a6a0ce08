"""Starts and deletes evaluations: the request checked against the label sets and the index, then a job.

`begin()` refuses, before anything is written, what cannot be evaluated: an unknown set,
a ground-truth set given as predictions or the reverse, sets of different tasks, an IoU
outside (0, 1], a slice field that no asset has, or sets with no asset in common. It then
records the evaluation and its job (the same id); service/evals/jobs.py runs it. `delete()`
removes a finished one: its row and its outcome fields (with their payload indexes).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from service.errors import Conflict, InvalidQuery, JobNotFound
from service.evals.evaluate import Plan, in_set, scope
from service.evals.outcomes import clear
from service.evals.schemas import EvaluationCounts, EvaluationPublic, EvaluationRequest
from service.evals.slices import slice_keys
from service.evals.store import EvaluationRow, EvaluationStore
from service.index.filters import parse_filter
from service.jobs.runner import execute
from service.labels.store import LabelSetStore
from service.state import utcnow
from service.timestamps import rfc3339

if TYPE_CHECKING:
    from service.catalog.catalog import Catalog


def plan(catalog: Catalog, request: EvaluationRequest, *, evaluation_id: str, counts: bool = True) -> Plan:
    """The request checked (see the module docstring); a 4xx naming what is wrong otherwise."""
    sets = LabelSetStore(catalog.state)
    pred, gt = sets.get(request.predictions), sets.get(request.ground_truth)
    if pred.role != "predictions":
        raise InvalidQuery(
            f"label set {pred.name!r} is {pred.role}, not predictions; name a predictions set "
            "(a model run) as `predictions`",
            path="predictions",
        )
    if gt.role != "ground_truth":
        raise InvalidQuery(
            f"label set {gt.name!r} is {gt.role}, not ground_truth; "
            "name a ground-truth set as `ground_truth`",
            path="ground_truth",
        )
    if pred.task != gt.task:
        raise InvalidQuery(
            f"{pred.name!r} is a {pred.task} set and {gt.name!r} a {gt.task} set; evaluate sets of one task",
            path="predictions",
        )
    if not 0.0 < request.iou <= 1.0:
        raise InvalidQuery(f"expected an IoU in (0, 1], got {request.iou}", path="iou")
    parse_filter(request.filter)  # a malformed filter is a 422 naming its path, now
    keys = slice_keys(request.slice_by)
    for i, (name, key) in enumerate(keys if counts else ()):
        if catalog.index.count(parse_filter({key: {"exists": True}})) == 0:
            raise InvalidQuery(
                f"no asset has a field {name!r} (payload path {key}); GET /api/v1/fields lists the fields",
                path=f"slice_by[{i}]",
            )
    common = scope(request.filter, in_set(gt.name, gt.task), in_set(pred.name, pred.task))
    if counts and catalog.index.count(parse_filter(common)) == 0:
        under = " under the filter" if request.filter else ""
        raise InvalidQuery(
            f"label sets {gt.name!r} and {pred.name!r} have no asset in common{under}; "
            "import both for the same assets",
            path="predictions",
        )
    return Plan(
        evaluation_id=evaluation_id,
        predictions=pred.name,
        ground_truth=gt.name,
        task=gt.task,
        filter=request.filter,
        slices=keys,
        iou=request.iou,
    )


def begin(catalog: Catalog, request: EvaluationRequest, *, here: bool = False) -> EvaluationRow:
    """Check the request, record the evaluation and queue its job (with `here`, owned by this
    process and run by the caller with `execute`)."""
    evaluation_id = str(uuid.uuid4())
    checked = plan(catalog, request, evaluation_id=evaluation_id)
    store = EvaluationStore(catalog.state)
    row = store.create(
        EvaluationRow(
            id=evaluation_id,
            state="queued",
            task=checked.task,
            predictions=checked.predictions,
            ground_truth=checked.ground_truth,
            iou=request.iou,
            request=request.model_dump(mode="json"),
            result={},
            created_at=utcnow(),
        )
    )
    catalog.jobs.create(
        "evaluation",
        options={"request": request.model_dump(mode="json")},
        job_id=evaluation_id,
        state="running" if here else "queued",
        owner=catalog.owner if here else None,
    )
    return row


def run_now(catalog: Catalog, request: EvaluationRequest) -> EvaluationRow:
    """begin() and the evaluation's job in this thread (the CLI without a server)."""
    row = begin(catalog, request, here=True)
    execute(catalog, catalog.jobs.get(row.id))
    return EvaluationStore(catalog.state).get(row.id)


def delete(catalog: Catalog, evaluation_id: str) -> None:
    """Remove a finished evaluation: `evals.<id>` from every asset, its fields' payload indexes,
    then its row. EvaluationNotFound (404) for an unknown id; Conflict (409) while its job is
    queued or running (its write would bring the fields back)."""
    store = EvaluationStore(catalog.state)
    store.get(evaluation_id)
    try:
        job = catalog.jobs.get(evaluation_id)
    except JobNotFound:  # a job pruned from the history: nothing can be running
        job = None
    if job is not None and job.state in ("queued", "running"):
        raise Conflict(
            f"evaluation {evaluation_id} is {job.state}; wait for it to finish, or cancel it "
            f"(DELETE /api/v1/jobs/{evaluation_id}, `loupe jobs cancel {evaluation_id}`), then delete it"
        )
    clear(catalog.index, evaluation_id)
    catalog.index.flush()
    store.delete(evaluation_id)


def evaluation_public(row: EvaluationRow) -> EvaluationPublic:
    result: dict[str, Any] = dict(row.result or {})
    request: dict[str, Any] = dict(row.request or {})
    return EvaluationPublic(
        id=row.id,
        job_id=row.id,
        state=row.state,  # type: ignore[arg-type]
        task=row.task,  # type: ignore[arg-type]
        predictions=row.predictions,
        ground_truth=row.ground_truth,
        filter=request.get("filter"),
        slice_by=list(request.get("slice_by") or []),
        iou=row.iou,
        counts=EvaluationCounts(**(result.get("counts") or {})),
        metrics=result.get("metrics") or {},
        per_class=result.get("per_class") or {},
        confusion=result.get("confusion"),
        slices=result.get("slices") or [],
        outcomes=result.get("outcomes") or {},
        detail=row.detail,
        created_at=rfc3339(row.created_at),
        finished_at=rfc3339(row.finished_at),
    )
