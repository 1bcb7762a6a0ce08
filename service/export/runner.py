"""Runs exports: checked and connected at once, then written in a background thread (API) or
in the caller's thread (CLI without a server).

`begin()` does everything that can fail fast — the request's shape, the target's
reachability, credentials and project — so that `POST /exports` answers a wrong token
with an error rather than a failed job; it creates the export row. `finish()` resolves
the selection, writes or pushes it and closes the row with its counts. Every export of a
process runs on one worker thread, so two exports to the same project never interleave.

The request is stored without secrets, so an export interrupted by a restart cannot be
resumed; a restarted server marks its own leftovers failed (`fail_orphans`).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from service.errors import InvalidQuery, LoupeError
from service.export.base import ExportContext, Exporter, exporter_for, select, validate_selection
from service.export.schemas import ExportCounts, ExportPublic, ExportRequest
from service.processes import alive as _alive
from service.state import ExportRow, utcnow

if TYPE_CHECKING:
    from service.catalog.catalog import Catalog

log = logging.getLogger(__name__)


@dataclass
class PreparedExport:
    """An export whose destination answered; `finish()` runs it."""

    exporter: Exporter
    ctx: ExportContext


def begin(catalog: Catalog, request: ExportRequest, *, base_url: str) -> PreparedExport:
    """Validate, record the export (queued) and reach its destination.

    Raises:
        InvalidQuery: the request cannot run as written (nothing is recorded).
        ExportError: the destination failed (the export is recorded as failed).
    """
    exporter = exporter_for(request.target)
    validate_selection(request)
    if request.search is not None and not ((request.search.text or "").strip() or request.search.like):
        raise InvalidQuery(
            "a search needs `text` or `like` asset ids; to export by filter use `filter`", path="search"
        )
    exporter.check(request)
    stored = {**request.public(), "owner": _owner()}
    row = catalog.state.create_export(request.target, stored)
    ctx = ExportContext(catalog=catalog, request=request, export_id=row.id, base_url=base_url.rstrip("/"))
    try:
        exporter.prepare(ctx)
    except LoupeError as exc:
        _close(ctx, state="failed", detail=exc.detail)
        raise
    catalog.state.update_export(row.id, location=ctx.location)
    return PreparedExport(exporter=exporter, ctx=ctx)


def finish(prepared: PreparedExport) -> ExportRow:
    """Run a prepared export to its end; the row says how it went (this never raises LoupeError)."""
    ctx = prepared.ctx
    ctx.catalog.state.update_export(ctx.export_id, state="running")
    try:
        prepared.exporter.run(ctx, select(ctx.catalog, ctx.request, ctx=ctx))
    except LoupeError as exc:
        _close(ctx, state="failed", detail=exc.detail)
    except Exception as exc:
        log.exception("export %s crashed", ctx.export_id)
        _close(ctx, state="failed", detail=f"internal error: {exc}")
    else:
        all_failed = ctx.counts.selected > 0 and ctx.counts.failed == ctx.counts.selected
        _close(ctx, state="failed" if all_failed else "succeeded", detail=ctx.detail())
    return ctx.catalog.state.get_export(ctx.export_id)


def run_now(catalog: Catalog, request: ExportRequest, *, base_url: str) -> ExportRow:
    """begin() and finish() in this thread (the CLI without a server)."""
    return finish(begin(catalog, request, base_url=base_url))


def _close(ctx: ExportContext, *, state: str, detail: str | None) -> None:
    c = ctx.counts
    if state == "failed":
        # What was selected but neither sent, skipped nor failed yet was not exported either.
        c.failed += max(0, c.selected - c.sent - c.skipped - c.failed)
        if ctx.errors and detail and detail != ctx.detail():
            detail = f"{detail}; {ctx.detail()}"
    ctx.catalog.state.update_export(
        ctx.export_id,
        state=state,
        counts=c.model_dump(),
        location=ctx.location,
        detail=detail,
        finished_at=utcnow(),
    )


class ExportRunner:
    """One worker thread per serving process."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="loupe-export")

    def submit(self, prepared: PreparedExport) -> Future[ExportRow]:
        return self._pool.submit(finish, prepared)

    def shutdown(self, *, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait)


_runner_lock = threading.Lock()


def runner_for(holder: object) -> ExportRunner:
    """The runner kept on `holder` (the app's state), created on first use."""
    with _runner_lock:
        runner = getattr(holder, "export_runner", None)
        if runner is None:
            runner = ExportRunner()
            holder.export_runner = runner  # type: ignore[attr-defined]
        return runner  # type: ignore[no-any-return]


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def fail_orphans(catalog: Catalog) -> int:
    """Mark failed the unfinished exports of dead processes on this host; returns how many."""
    host = socket.gethostname()
    count = 0
    for row in catalog.state.list_exports(states=("queued", "running")):
        owner = str(row.request.get("owner", ""))
        name, _, pid = owner.rpartition(":")
        if name != host or not pid.isdigit() or _alive(int(pid)):
            continue
        catalog.state.update_export(
            row.id, state="failed", detail="interrupted: the process running it stopped", finished_at=utcnow()
        )
        count += 1
    return count


def export_public(row: ExportRow) -> ExportPublic:
    counts = ExportCounts(
        **{k: int(v) for k, v in (row.counts or {}).items() if k in ExportCounts.model_fields}
    )
    request = {k: v for k, v in (row.request or {}).items() if k != "owner"}
    return ExportPublic(
        id=row.id,
        target=row.target,
        state=row.state,  # type: ignore[arg-type]
        counts=counts,
        location=row.location,
        detail=row.detail,
        request=request,
        created_at=row.created_at.isoformat() if row.created_at else None,
        finished_at=row.finished_at.isoformat() if row.finished_at else None,
    )
