"""The `sync` job kind: one source's sync, in the ingest lane (it fills the encoder's cores)."""

from __future__ import annotations

from service.jobs.kinds import JobKind, register
from service.jobs.runner import JobContext

SYNC_COUNTS = ("seen", "added", "updated", "unchanged", "missing", "failed", "deleted", "restored")


def sync_lock(source: str) -> str:
    """The lock key that keeps one sync of a source queued or running at a time."""
    return f"sync:{source}"


def _run(ctx: JobContext) -> None:
    ctx.catalog.run_sync(ctx)


SYNC = register(JobKind(name="sync", run=_run, counts=SYNC_COUNTS, lane="ingest"))
