"""The `export` job kind: an export's selection sent to its target, resumable after a restart.

The job keeps the whole request, the Label Studio token included, so that a server
restarted mid-export can finish it: the token is kept like a source's secrets (in the
state store, never returned by the API); the export record (`GET /exports/{id}`) keeps
the request without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from service.export.base import ExportContext, exporter_for, select
from service.export.schemas import ExportCounts, ExportRequest
from service.jobs.kinds import JobKind, register
from service.jobs.runner import JobContext
from service.state import JobRow, utcnow

if TYPE_CHECKING:
    from service.catalog.catalog import Catalog


def job_options(request: ExportRequest, *, base_url: str) -> dict[str, Any]:
    """What the job needs to run (and resume) the export, secrets included."""
    stored = request.model_dump(mode="json", exclude_none=True)
    if request.label_studio is not None:
        stored["label_studio"]["token"] = request.label_studio.token.get_secret_value()
    return {"request": stored, "base_url": base_url}


def _run(job: JobContext) -> None:
    catalog = job.catalog
    request = ExportRequest.model_validate(job.options["request"])
    exporter = exporter_for(request.target)
    ctx = ExportContext(
        catalog=catalog, request=request, export_id=job.job.id, base_url=job.options["base_url"], job=job
    )
    catalog.state.update_export(ctx.export_id, state="running")
    try:
        exporter.prepare(ctx)
        exporter.run(ctx, select(catalog, request, ctx=ctx))
    finally:
        exporter.close()
        job.remember(counts=ctx.counts.model_dump(), progress=ctx.fraction_done())
        catalog.state.update_export(ctx.export_id, counts=ctx.counts.model_dump(), location=ctx.location)
    c = ctx.counts
    if c.selected > 0 and c.failed == c.selected:
        job.outcome = ("failed", ctx.detail())
    else:
        job.outcome = ("succeeded", ctx.detail())


def _closed(catalog: object, row: JobRow) -> None:
    """The export record follows its job to the end."""
    cat: Catalog = catalog  # type: ignore[assignment]
    export = cat.state.get_export(row.id)
    counts = ExportCounts(**{k: int(v) for k, v in (row.counts or export.counts or {}).items()})
    if row.state == "failed" and row.detail and "asset(s) failed" not in row.detail:
        # The export as a whole failed: what was selected but not handled was not exported either.
        counts.failed += max(0, counts.selected - counts.sent - counts.skipped - counts.failed)
    cat.state.update_export(
        row.id, state=row.state, counts=counts.model_dump(), detail=row.detail, finished_at=utcnow()
    )


EXPORT = register(JobKind(name="export", run=_run, counts=tuple(ExportCounts.model_fields), closed=_closed))
