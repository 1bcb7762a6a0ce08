"""Sync jobs: state, counts, progress and errors."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from service.api.deps import CatalogDep
from service.schemas import JobPublic, Page, job_public

router = APIRouter(prefix="/jobs", tags=["jobs"])


@router.get("", response_model=Page)
def list_jobs(
    catalog: CatalogDep,
    source: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Page:
    """Recent sync jobs, newest first."""
    rows = catalog.state.list_jobs(source=source, limit=limit)
    return Page(data=[job_public(r).model_dump() for r in rows])


@router.get("/{job_id}", response_model=JobPublic)
def get_job(job_id: str, catalog: CatalogDep) -> JobPublic:
    """One sync job."""
    return job_public(catalog.state.get_job(job_id))
