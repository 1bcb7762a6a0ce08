"""Labeling functions: auto-label assets like examples or like their labelled neighbours."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from service.api.deps import CatalogDep, RunnerDep
from service.labelfns.runner import begin
from service.labelfns.schemas import (
    CurvePublic,
    LabelingFunctionCreate,
    LabelingFunctionPublic,
    LabelingFunctionRun,
    LabelingFunctionsPublic,
)
from service.labelfns.store import LabelingFunctionStore, function_public, run_public

router = APIRouter(prefix="/labeling-functions", tags=["labeling-functions"])
_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No labeling function of that name"},
    409: {"description": "The function is running, or its `into` set is being written"},
    422: {"description": "The request cannot run; the detail names the field"},
}


@router.post("", status_code=202, response_model=LabelingFunctionRun, responses=_ERRORS)
def create_labeling_function(
    body: LabelingFunctionCreate, catalog: CatalogDep, runner: RunnerDep
) -> LabelingFunctionRun:
    """Define (or redefine) a labeling function and run it (a job of kind `labeling_function`,
    `job_id`); poll GET /labeling-functions/{name}. With `target_precision` the threshold is
    chosen on ground truth by 5-fold cross-validation and the estimate is reported."""
    row = begin(catalog, body)
    runner.wake()
    return run_public(row)


@router.get("", response_model=LabelingFunctionsPublic)
def list_labeling_functions(catalog: CatalogDep) -> LabelingFunctionsPublic:
    """Every labeling function with its definition and last run, by name."""
    rows = LabelingFunctionStore(catalog.state).all()
    return LabelingFunctionsPublic(data=[function_public(r) for r in rows])


@router.get("/{name}", response_model=LabelingFunctionPublic, responses={404: _ERRORS[404]})
def get_labeling_function(name: str, catalog: CatalogDep) -> LabelingFunctionPublic:
    """One labeling function: its definition and its last run (state, counts, threshold, estimate)."""
    return function_public(LabelingFunctionStore(catalog.state).get(name))


@router.get("/{name}/curve", response_model=CurvePublic, responses={404: _ERRORS[404]})
def get_curve(name: str, catalog: CatalogDep) -> CurvePublic:
    """Held-out precision and coverage against threshold from the last run (empty without ground truth)."""
    run = run_public(LabelingFunctionStore(catalog.state).get(name))
    return CurvePublic(name=name, estimated_from=run.estimated_from, threshold=run.threshold, curve=run.curve)
