"""Runs jobs of every kind: one worker thread per lane in each serving process, or the caller's
thread (`execute`, for the CLI without a server).

Every replica's runner claims the oldest queued job of its lane's kinds from the state
store, heartbeats while it runs, and takes over jobs whose runner went silent or whose
process on this host is gone, so a replica killed mid-job leaves a job that another
replica (or the same one restarted) resumes. A cancel requested through the API is seen
at the job's next `ctx.report()`; the kind stops there, keeping what it had committed.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from service.errors import JobCancelled, JobLost, LoupeError, StateUnavailable
from service.jobs.kinds import JobKind, kind_for, kinds, lanes
from service.jobs.queue import JobQueue
from service.processes import background_priority
from service.state import JobRow, utcnow

if TYPE_CHECKING:
    from service.catalog.catalog import Catalog

log = logging.getLogger(__name__)
POLL_S = 1.0
HEARTBEAT_S = 5.0
STALE_AFTER_S = 30.0


class JobContext:
    """What a running job sees: its row, the catalog, and the one way to report (and be stopped)."""

    def __init__(self, *, catalog: Catalog, job: JobRow, kind: JobKind) -> None:
        self.catalog = catalog
        self.job = job
        self.kind = kind
        self.options: dict[str, Any] = dict(job.options or {})
        self.checkpoint: dict[str, Any] = dict(job.checkpoint or {})
        # A kind may close a run as failed without raising (e.g. an export whose every asset failed).
        self.outcome: tuple[str, str | None] | None = None
        self._last: dict[str, Any] = {}

    @property
    def queue(self) -> JobQueue:
        return self.catalog.jobs

    def report(self, **fields: Any) -> None:
        """Save progress fields (counts, progress, errors, error_count, rate, timings) to the job.

        Each call is one write and the check for a cancel or a takeover, so kinds call it once
        per step (a sync per committed batch, an export per pushed batch), not per item.

        Raises:
            JobCancelled: a user asked to cancel this job.
            JobLost: another runner took the job over; this one must stop without writing.
        """
        self._last.update(fields)
        if "counts" in self._last:
            self._last["counts"] = _with_zeros(self._last["counts"], self.kind.counts)
        signal = self.queue.update(self.job.id, owner=self.catalog.owner, **self._last)
        if signal == "lost":
            raise JobLost(
                f"job {self.job.id} was taken over by another runner after missed heartbeats; "
                "this runner stops so the job never runs twice"
            )
        if signal == "cancel":
            raise JobCancelled(f"job {self.job.id} was cancelled")

    def remember(self, **fields: Any) -> None:
        """Keep progress fields for the job's final write without writing (or checking) now."""
        self._last.update(fields)

    def save_checkpoint(self, **values: Any) -> None:
        """Persist what a resumed run needs (never secrets: the API does not show it, but still)."""
        self.checkpoint.update(values)
        self.queue.update(self.job.id, owner=self.catalog.owner, checkpoint=dict(self.checkpoint))

    def final_fields(self) -> dict[str, Any]:
        out = dict(self._last)
        if "counts" in out:
            out["counts"] = _with_zeros(out["counts"], self.kind.counts)
        return out


def _with_zeros(counts: dict[str, Any], names: tuple[str, ...]) -> dict[str, int]:
    return {**dict.fromkeys(names, 0), **{k: int(v) for k, v in counts.items()}}


def execute(catalog: Catalog, job: JobRow, *, heartbeat_s: float = HEARTBEAT_S) -> JobRow:
    """Run a claimed (running, owned) job to its end in this thread; the row says how it went."""
    kind = kind_for(job.kind)
    ctx = JobContext(catalog=catalog, job=job, kind=kind)
    done = threading.Event()
    beat = threading.Thread(
        target=_heartbeat, args=(catalog, job.id, done, heartbeat_s), name="loupe-heartbeat", daemon=True
    )
    beat.start()
    state, detail = "succeeded", None
    try:
        kind.run(ctx)
        if ctx.outcome is not None:
            state, detail = ctx.outcome
    except JobLost:
        log.warning("job %s was taken over by another runner; stopping", job.id)
        return catalog.jobs.get(job.id)
    except JobCancelled:
        state, detail = "cancelled", "cancelled by request; what it had finished before stopping is kept"
    except LoupeError as exc:
        state, detail = "failed", exc.detail
    except Exception as exc:
        log.exception("%s job %s crashed", job.kind, job.id)
        state, detail = "failed", f"internal error: {exc}"
    finally:
        done.set()
        beat.join()
    fields = ctx.final_fields()
    if state == "succeeded":
        fields["progress"] = 1.0
    catalog.jobs.update(
        job.id, owner=catalog.owner, state=state, detail=detail, finished_at=utcnow(), **fields
    )
    row = catalog.jobs.get(job.id)
    close(catalog, row)
    return row


def close(catalog: Catalog, row: JobRow) -> None:
    """Run the kind's `closed` hook for a job in a final state."""
    kind = kinds().get(row.kind)
    if kind is not None and kind.closed is not None and row.state in ("succeeded", "failed", "cancelled"):
        try:
            kind.closed(catalog, row)
        except Exception:
            log.exception("closing %s job %s failed", row.kind, row.id)


def cancel(catalog: Catalog, job_id: str) -> JobRow:
    """Cancel a job (see JobQueue.cancel); one cancelled before it started is closed at once."""
    row = catalog.jobs.cancel(job_id)
    if row.state == "cancelled":
        close(catalog, row)
    return row


def _heartbeat(catalog: Catalog, job_id: str, done: threading.Event, every_s: float) -> None:
    while not done.wait(every_s):
        try:
            catalog.jobs.heartbeat(job_id, catalog.owner)
        except Exception:
            log.warning("heartbeat of job %s failed", job_id)


class JobRunner:
    """The serving process's workers: one thread per lane, each running its lane's jobs in turn."""

    def __init__(self, catalog: Catalog, *, stale_after_s: float = STALE_AFTER_S, nice: int = 0) -> None:
        self.catalog = catalog
        # Jobs are background work: the job threads and every thread they start (fetch and decode
        # workers, the encoder's batches) run at this niceness, so searches keep their cores.
        self.nice = nice
        self.stale_after_s = stale_after_s
        # Several beats per stale period, or a live runner's job is taken from it between two beats.
        self.heartbeat_s = min(HEARTBEAT_S, stale_after_s / 3)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._work, args=(tuple(names),), name=f"loupe-jobs-{lane}", daemon=True)
            for lane, names in sorted(lanes().items())
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=60)

    def wake(self) -> None:
        """A job was queued: claim it now rather than at the next poll."""
        self._wake.set()

    def _work(self, names: tuple[str, ...]) -> None:
        background_priority(self.nice)
        down = False
        while not self._stop.is_set():
            try:
                job = self.catalog.jobs.claim(
                    self.catalog.owner, kinds=names, stale_after_s=self.stale_after_s
                )
                down = False
            except StateUnavailable as exc:  # an outage: one line when it starts, not one a second
                if not down:
                    log.warning("cannot claim jobs: %s; trying again every %.0f s", exc.detail, POLL_S)
                down, job = True, None
            except Exception:
                log.exception("cannot claim jobs from the state store")
                job = None
            if job is None:
                self._wake.wait(POLL_S)
                self._wake.clear()
                continue
            try:
                execute(self.catalog, job, heartbeat_s=self.heartbeat_s)
            except Exception:
                log.exception("job %s could not be closed", job.id)
