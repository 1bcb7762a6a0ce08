"""Signals on the index (duplicates, uniqueness, outliers, typicality, label issues, clusters)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from service.api.deps import CatalogDep, FilterDep, RunnerDep
from service.schemas import UUID_PATTERN, JobPublic, job_public
from service.signals import views
from service.signals.plan import begin, check_kind
from service.signals.schemas import (
    DuplicateGroupPublic,
    DuplicatesPublic,
    KeepRequest,
    SignalKind,
    SignalRequest,
    SignalsPublic,
)

router = APIRouter(tags=["signals"])
_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "A label set or duplicate group of that name does not exist"},
    409: {"description": "The same signal over the same scope is already queued or running"},
    422: {
        "description": "Unknown kind, k or threshold out of range, a set of the wrong role, an empty filter"
    },
}


@router.post("/signals/{kind}", status_code=202, response_model=JobPublic, responses=_ERRORS)
def compute_signal(kind: str, body: SignalRequest, catalog: CatalogDep, runner: RunnerDep) -> JobPublic:
    """Compute a signal (kind: duplicates, uniqueness, outliers, typicality, label_issues, clusters)
    over the assets under `filter`: a job of kind `signal` whose fields land on the assets as
    `signals.*`. Everything wrong with the request is a 4xx before anything is queued."""
    job = begin(catalog, check_kind(kind), body)
    runner.wake()
    return job_public(job)


@router.get("/signals", response_model=SignalsPublic)
def list_signals(
    catalog: CatalogDep,
    kind: Annotated[SignalKind | None, Query(description="Only this kind.")] = None,
) -> SignalsPublic:
    """Each computed signal: its filter, space, parameters, when, over how many assets, and
    whether assets synced since lack it (`stale`, `stale_count`)."""
    return SignalsPublic(data=views.list_signals(catalog, kind=kind))


@router.get("/duplicates", response_model=DuplicatesPublic)
def list_duplicates(
    catalog: CatalogDep,
    filter: FilterDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[
        str | None, Query(pattern=UUID_PATTERN, description="`next_cursor` of the previous page.")
    ] = None,
) -> DuplicatesPublic:
    """Duplicate groups (from POST /signals/duplicates) whose kept asset matches the filter: the
    group, the kept id, and the members under the filter, kept one first."""
    return views.duplicate_groups(catalog, filter=filter, limit=limit, cursor=cursor)


@router.post("/duplicates/{group}/keep", response_model=DuplicateGroupPublic, responses=_ERRORS)
def keep_duplicate(group: str, body: KeepRequest, catalog: CatalogDep) -> DuplicateGroupPublic:
    """Keep one member of a group; the others get `signals.duplicate_excluded` and leave search
    and export (unless a filter names that field), or all come back with `exclude_others: false`."""
    return views.keep(catalog, group, keep_id=body.keep, exclude_others=body.exclude_others)
