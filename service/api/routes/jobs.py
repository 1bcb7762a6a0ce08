"""Jobs of every kind (sync, export, ...): state, counts, progress, errors, and cancel."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Query

from service.api.deps import CatalogDep, RunnerDep
from service.jobs.kinds import kinds
from service.jobs.runner import cancel
from service.schemas import JobPublic, JobState, Page, job_public

router = APIRouter(prefix="/jobs", tags=["jobs"])
# The kinds this server runs, as an enum the OpenAPI document declares.
JobKindName = StrEnum("JobKindName", {name: name for name in sorted(kinds())})  # type: ignore[misc]


@router.get("", response_model=Page)
def list_jobs(
    catalog: CatalogDep,
    kind: Annotated[JobKindName | None, Query(description="Only jobs of this kind.")] = None,
    source: Annotated[str | None, Query(description="Only the sync jobs of this source.")] = None,
    state: Annotated[JobState | None, Query(description="Only jobs in this state.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Page:
    """Recent jobs, newest first."""
    rows = catalog.jobs.list(
        kind=None if kind is None else kind.value,
        source=source,
        states=None if state is None else [state],
        limit=limit,
    )
    return Page(data=[job_public(r).model_dump() for r in rows])


@router.get("/{job_id}", response_model=JobPublic)
def get_job(job_id: str, catalog: CatalogDep) -> JobPublic:
    """One job: kind, state, counts, progress, per-stage timings, errors, and why it failed."""
    return job_public(catalog.jobs.get(job_id))


@router.delete("/{job_id}", status_code=202, response_model=JobPublic)
def cancel_job(job_id: str, catalog: CatalogDep, runner: RunnerDep) -> JobPublic:
    """Cancel a queued job (at once) or a running one (it stops at its next step, keeping what it
    had committed: a sync its batches and cursor, an export the assets it sent). 409 once finished."""
    row = cancel(catalog, job_id)
    runner.wake()
    return job_public(row)
