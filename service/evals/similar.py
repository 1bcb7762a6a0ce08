"""From an error to more like it: a confusion cell or a slice's errors as examples of a search
for unlabeled assets.

The examples are the error group's most representative members: with more than the search
takes (MAX_EXAMPLES), those nearest the group's mean vector (up to MAX_READ members read),
so one odd asset does not steer the search. The search keeps assets outside the ground-truth
set (`not` its presence field) whose status is ok; the body it ran comes back with the hits,
ready for POST /exports as `search`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from service.errors import Conflict, InvalidQuery
from service.evals.evaluate import in_set, scope
from service.evals.outcomes import wrong
from service.evals.schemas import SimilarRequest, SimilarResponse
from service.evals.store import EvaluationRow, EvaluationStore
from service.index.filters import parse_filter
from service.schemas import MAX_EXAMPLES, SearchRequest

if TYPE_CHECKING:
    from service.catalog.catalog import Catalog

MAX_READ = 5000
BATCH = 1024


def errors_filter(row: EvaluationRow, req: SimilarRequest) -> dict[str, Any]:
    """The assets of the chosen cell, or the wrong assets of the chosen slice."""
    result = row.result or {}
    if (req.cell is None) == (req.slice is None):
        raise InvalidQuery("give either `cell` [ground-truth label, predicted label] or `slice`", path="cell")
    if req.cell is not None:
        confusion = result.get("confusion")
        if not confusion:
            raise InvalidQuery(
                f"a {row.task} evaluation has no confusion cells; choose a `slice` instead", path="cell"
            )
        labels = confusion["labels"]
        for i, label in enumerate(req.cell):
            if label not in labels:
                raise InvalidQuery(
                    f"{label!r} is not a label of this evaluation; its labels are {', '.join(labels)}",
                    path=f"cell[{i}]",
                )
        cell: dict[str, Any] = confusion["filters"][labels.index(req.cell[0])][labels.index(req.cell[1])]
        return cell
    assert req.slice is not None
    fields = (row.request or {}).get("slice_by") or []
    if req.slice.field not in fields:
        raise InvalidQuery(
            f"the evaluation was not sliced by {req.slice.field!r}; its slices are by "
            f"{', '.join(fields) or 'nothing'}",
            path="slice.field",
        )
    return scope({req.slice.field: req.slice.value}, wrong(row.id, row.task))


def representatives(catalog: Catalog, flt: dict[str, Any]) -> tuple[list[str], int]:
    """Up to MAX_EXAMPLES ids of the group nearest its mean vector, and the group's size."""
    parsed = parse_filter(flt)
    total = catalog.index.count(parsed)
    ids: list[str] = []
    vectors: list[np.ndarray] = []
    cursor: str | None = None
    while len(ids) < MAX_READ:
        recs, cursor = catalog.index.scroll(
            filter=parsed, limit=BATCH, cursor=cursor, fields=["status"], with_vectors=True
        )
        for rec in recs:
            if rec.vector is not None:
                ids.append(rec.id)
                vectors.append(rec.vector)
        if cursor is None:
            break
    if len(ids) <= MAX_EXAMPLES:
        return ids, total
    matrix = np.stack(vectors[:MAX_READ])
    centre = matrix.mean(axis=0)
    order = np.argsort(-(matrix @ centre), kind="stable")[:MAX_EXAMPLES]
    return [ids[int(i)] for i in order], total


def similar(catalog: Catalog, evaluation_id: str, req: SimilarRequest) -> SimilarResponse:
    row = EvaluationStore(catalog.state).get(evaluation_id)
    if row.state != "succeeded":
        raise Conflict(f"evaluation {evaluation_id} is {row.state}; wait until it has succeeded")
    examples, total = representatives(catalog, errors_filter(row, req))
    if not examples:
        raise InvalidQuery(
            "that cell or slice holds no asset to search by", path="cell" if req.cell else "slice"
        )
    unlabeled = {"and": [{"not": in_set(row.ground_truth, row.task)}, {"status": "ok"}]}
    search = SearchRequest(like=examples, filter=unlabeled, limit=req.limit)
    hits, nxt = catalog.search(search)
    return SimilarResponse.model_validate(
        {"hits": hits, "next_offset": nxt, "search": search, "examples": len(examples), "errors": total}
    )
