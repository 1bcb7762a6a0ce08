"""Runs queued sync jobs in a background thread of each serving process.

Jobs live in the state store. Every replica's runner claims the oldest queued
job (row locks make the claim exclusive), heartbeats while it runs, and
re-queues jobs whose runner stopped heartbeating, so a replica killed mid-sync
leaves a job another replica resumes (asset ids are deterministic, so the
resumed sync skips what was already written).
"""

from __future__ import annotations

import logging
import threading

from service.catalog.catalog import Catalog
from service.processes import background_priority
from service.state import JobRow

log = logging.getLogger(__name__)
POLL_S = 1.0
HEARTBEAT_S = 5.0
STALE_AFTER_S = 30.0


class JobRunner:
    """One worker thread per process: syncs run one at a time (they share the encoder's cores)."""

    def __init__(self, catalog: Catalog, *, stale_after_s: float = STALE_AFTER_S, nice: int = 0) -> None:
        self.catalog = catalog
        # Syncs are background work: the job thread and every thread it starts (fetch and decode
        # workers, the encoder's batches) run at this niceness, so searches keep their cores.
        self.nice = nice
        self.stale_after_s = stale_after_s
        # Several beats per stale period, or a live runner's job is taken from it between two beats.
        self.heartbeat_s = min(HEARTBEAT_S, stale_after_s / 3)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name="loupe-jobs", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=60)

    def submit(self, source: str, *, full: bool, prune: bool) -> JobRow:
        """Queue a sync of `source`; Conflict while one is queued or running."""
        self.catalog.state.get_source(source)
        job = self.catalog.state.create_job(source, {"full": full, "prune": prune})
        self._wake.set()
        return job

    def _work(self) -> None:
        background_priority(self.nice)
        while not self._stop.is_set():
            try:
                job = self.catalog.state.claim_job(self.catalog.owner, stale_after_s=self.stale_after_s)
            except Exception:
                log.exception("cannot claim sync jobs from the state store")
                job = None
            if job is None:
                self._wake.wait(POLL_S)
                self._wake.clear()
                continue
            self._run(job)

    def _run(self, job: JobRow) -> None:
        done = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(job.id, done), daemon=True)
        beat.start()
        try:
            self.catalog.sync(
                job.source,
                full=bool(job.options.get("full")),
                prune=bool(job.options.get("prune")),
                job=job,
            )
        except Exception as exc:
            log.exception("sync job %s crashed", job.id)
            self.catalog.state.update_job(
                job.id, owner=self.catalog.owner, state="failed", detail=f"internal error: {exc}"
            )
        finally:
            done.set()
            beat.join()

    def _heartbeat(self, job_id: str, done: threading.Event) -> None:
        while not done.wait(self.heartbeat_s):
            try:
                self.catalog.state.heartbeat(job_id, self.catalog.owner)
            except Exception:
                log.warning("heartbeat of job %s failed", job_id)
