"""Starts exports: checked and connected at once, then run as a job (`export` kind).

`begin()` does everything that can fail fast — the request's shape, the target's
reachability, credentials and project — so that `POST /exports` answers a wrong token
with an error rather than a failed export; it creates the export record and its job
(the same id). A runner then sends the selection (service/export/jobs.py); a server
restarted mid-export resumes it, and `DELETE /api/v1/jobs/{id}` cancels it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from service.errors import InvalidQuery, LoupeError
from service.export.base import ExportContext, exporter_for, validate_selection
from service.export.jobs import job_options
from service.export.schemas import ExportCounts, ExportPublic, ExportRequest
from service.jobs.runner import execute
from service.state import ExportRow, utcnow
from service.timestamps import rfc3339 as timestamp

if TYPE_CHECKING:
    from service.catalog.catalog import Catalog


def begin(catalog: Catalog, request: ExportRequest, *, base_url: str, here: bool = False) -> ExportRow:
    """Validate, reach the destination, record the export and queue its job.

    With `here`, the job is created running and owned by this process (run it with
    `execute`), for the CLI without a server.

    Raises:
        InvalidQuery: the request cannot run as written (nothing is recorded).
        ExportError: the destination failed (the export is recorded as failed).
    """
    exporter = exporter_for(request.target)
    validate_selection(request, catalog=catalog)
    if request.search is not None and not ((request.search.text or "").strip() or request.search.like):
        raise InvalidQuery(
            "a search needs `text` or `like` asset ids; to export by filter use `filter`", path="search"
        )
    exporter.check(request)
    row = catalog.state.create_export(request.target, request.public())
    base_url = base_url.rstrip("/")
    ctx = ExportContext(catalog=catalog, request=request, export_id=row.id, base_url=base_url)
    try:
        exporter.prepare(ctx)
    except LoupeError as exc:
        catalog.state.update_export(row.id, state="failed", detail=exc.detail, finished_at=utcnow())
        raise
    finally:
        exporter.close()
    catalog.state.update_export(row.id, location=ctx.location)
    catalog.jobs.create(
        "export",
        options=job_options(request, base_url=base_url),
        job_id=row.id,
        state="running" if here else "queued",
        owner=catalog.owner if here else None,
    )
    return catalog.state.get_export(row.id)


def run_now(catalog: Catalog, request: ExportRequest, *, base_url: str) -> ExportRow:
    """begin() and the export's job in this thread (the CLI without a server)."""
    row = begin(catalog, request, base_url=base_url, here=True)
    execute(catalog, catalog.jobs.get(row.id))
    return catalog.state.get_export(row.id)


def export_public(row: ExportRow) -> ExportPublic:
    counts = ExportCounts(
        **{k: int(v) for k, v in (row.counts or {}).items() if k in ExportCounts.model_fields}
    )
    request = {k: v for k, v in (row.request or {}).items() if k != "owner"}  # older stores kept one
    return ExportPublic(
        id=row.id,
        job_id=row.id,
        target=row.target,
        state=row.state,  # type: ignore[arg-type]
        counts=counts,
        location=row.location,
        detail=row.detail,
        request=request,
        created_at=timestamp(row.created_at),
        finished_at=timestamp(row.finished_at),
    )
