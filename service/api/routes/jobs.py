"""Sync jobs: state, counts, progress and errors."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from service.api.deps import CatalogDep
from service.models import JobPublic, Page
from service.state import JobRow

router = APIRouter(prefix="/jobs", tags=["jobs"])


def job_public(row: JobRow) -> JobPublic:
    counts = {
        k: int(row.counts.get(k, 0)) for k in ("seen", "added", "updated", "unchanged", "missing", "failed")
    }
    return JobPublic(
        id=row.id,
        source=row.source,
        state=row.state,  # type: ignore[arg-type]
        counts=counts,
        progress=row.progress or 0.0,
        rate=row.rate or 0.0,
        errors=row.errors or [],
        error_count=row.error_count or 0,
        detail=row.detail,
        created_at=row.created_at.isoformat() if row.created_at else None,
        started_at=row.started_at.isoformat() if row.started_at else None,
        finished_at=row.finished_at.isoformat() if row.finished_at else None,
    )


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
