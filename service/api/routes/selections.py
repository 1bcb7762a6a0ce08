"""Selections: choose what to label next under a budget; list, read and remove them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from service.api.deps import CatalogDep, RunnerDep
from service.selections.jobs import begin, delete, selection_public
from service.selections.schemas import SelectionPublic, SelectionRequest, SelectionsPublic
from service.selections.store import SelectionStore

router = APIRouter(prefix="/selections", tags=["selections"])
_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No selection (or label set) of that name"},
    409: {"description": "The name is taken"},
    422: {"description": "The request cannot run as written; the detail names the field"},
}


@router.post("", status_code=202, response_model=SelectionPublic, responses=_ERRORS)
def create_selection(body: SelectionRequest, catalog: CatalogDep, runner: RunnerDep) -> SelectionPublic:
    """Choose `budget` assets by the strategies (a job of kind `selection`); poll GET
    /selections/{name}. A taken name is a 409; an unknown set, a predictions set without scores,
    a field no candidate has, or a filter that leaves nothing to choose is a 422 naming the field.
    Assets an earlier selection or export holds are not chosen again unless `include_selected` /
    `include_exported`; a budget above the candidates takes them all and `detail` says so."""
    row = begin(catalog, body)
    runner.wake()
    return selection_public(row)


@router.get("", response_model=SelectionsPublic)
def list_selections(catalog: CatalogDep, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> SelectionsPublic:
    """Recent selections, newest first."""
    rows = SelectionStore(catalog.state).list(limit=limit)
    return SelectionsPublic(data=[selection_public(r) for r in rows])


@router.get("/{name}", response_model=SelectionPublic, responses={404: _ERRORS[404]})
def get_selection(name: str, catalog: CatalogDep) -> SelectionPublic:
    """One selection: state, counts, and the chosen ids in the order they were chosen."""
    return selection_public(SelectionStore(catalog.state).get(name))


@router.delete("/{name}", status_code=204, responses={404: _ERRORS[404]})
def delete_selection(name: str, catalog: CatalogDep) -> Response:
    """Remove a selection (cancelling its job if it runs) and its name from every asset."""
    delete(catalog, name)
    return Response(status_code=204)
