"""Evaluations of model predictions against ground truth: start, list, read, delete, compare, find more."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel

from service.api.deps import CatalogDep, RunnerDep
from service.evals.compare import compare
from service.evals.runner import begin, delete, evaluation_public
from service.evals.schemas import (
    CompareRequest,
    ComparisonPublic,
    EvaluationPublic,
    EvaluationRequest,
    SimilarRequest,
    SimilarResponse,
)
from service.evals.similar import similar
from service.evals.store import EvaluationStore

router = APIRouter(prefix="/evaluations", tags=["evaluations"])
_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No evaluation with that id"},
    409: {"description": "The evaluation's job is queued or running; wait for it or cancel it"},
}


class EvaluationsPublic(BaseModel):
    data: list[EvaluationPublic]
    next_cursor: str | None = None


@router.post("", status_code=202, response_model=EvaluationPublic)
def create_evaluation(body: EvaluationRequest, catalog: CatalogDep, runner: RunnerDep) -> EvaluationPublic:
    """Start an evaluation (a job of kind `evaluation`, with the same id); poll GET
    /evaluations/{id}. Sets that are unknown, of the wrong role or of different tasks, an IoU
    outside (0, 1], a slice field no asset has, or sets with no asset in common are a 4xx."""
    row = begin(catalog, body)
    runner.wake()
    return evaluation_public(row)


@router.get("", response_model=EvaluationsPublic)
def list_evaluations(
    catalog: CatalogDep, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> EvaluationsPublic:
    """Recent evaluations, newest first."""
    rows = EvaluationStore(catalog.state).list(limit=limit)
    return EvaluationsPublic(data=[evaluation_public(r) for r in rows])


@router.post("/compare", response_model=ComparisonPublic)
def compare_evaluations(body: CompareRequest, catalog: CatalogDep) -> ComparisonPublic:
    """B minus A on the same ground truth (else 422): every metric overall, per class and per
    slice, and the assets fixed and broken, each as a count and a filter."""
    return compare(catalog, body.a, body.b)


@router.get("/{evaluation_id}", response_model=EvaluationPublic)
def get_evaluation(evaluation_id: str, catalog: CatalogDep) -> EvaluationPublic:
    """One evaluation: state, counts, metrics, per class, confusion (with a filter per cell), slices."""
    return evaluation_public(EvaluationStore(catalog.state).get(evaluation_id))


@router.delete("/{evaluation_id}", status_code=204, responses=_ERRORS)
def delete_evaluation(evaluation_id: str, catalog: CatalogDep) -> Response:
    """Delete a finished evaluation and its outcome fields (`evals.<id>`) from every asset, with
    their payload indexes; other evaluations and the label sets stay. A 409 while it runs."""
    delete(catalog, evaluation_id)
    return Response(status_code=204)


@router.post("/{evaluation_id}/similar", response_model=SimilarResponse)
def similar_to_errors(evaluation_id: str, body: SimilarRequest, catalog: CatalogDep) -> SimilarResponse:
    """Unlabeled assets like a confusion cell's assets (or a slice's wrong ones): a search whose
    body comes back as `search`, ready for POST /exports."""
    return similar(catalog, evaluation_id, body)
