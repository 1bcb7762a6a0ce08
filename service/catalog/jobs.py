"""Runs queued sync jobs in a background thread of the serving process."""

from __future__ import annotations

import logging
import queue
import threading

from service.catalog.catalog import Catalog
from service.errors import Conflict
from service.state import JobRow

log = logging.getLogger(__name__)


class JobRunner:
    """One worker thread: syncs run one at a time (they share the encoder's cores)."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="loupe-jobs", daemon=True)
        self._started = False

    def start(self) -> None:
        # Jobs a previous run of this process left behind cannot be running any more.
        n = self.catalog.state.fail_interrupted(owner=None)
        if n:
            log.warning("marked %d interrupted sync job(s) as failed", n)
        self._thread.start()
        self._started = True

    def stop(self) -> None:
        if self._started:
            self._queue.put(None)
            self._thread.join(timeout=30)

    def submit(self, source: str, *, full: bool, prune: bool) -> JobRow:
        """Queue a sync of `source`; refuse a second one while one is queued or running."""
        self.catalog.state.get_source(source)
        active = self.catalog.state.active_job(source)
        if active is not None:
            raise Conflict(
                f"a sync of {source!r} is already {active.state} (job {active.id}); wait for it to finish"
            )
        job = self.catalog.state.create_job(source, {"full": full, "prune": prune})
        self._queue.put(job.id)
        return job

    def _work(self) -> None:
        while True:
            job_id = self._queue.get()
            if job_id is None:
                return
            try:
                job = self.catalog.state.get_job(job_id)
                self.catalog.sync(
                    job.source,
                    full=bool(job.options.get("full")),
                    prune=bool(job.options.get("prune")),
                    job=job,
                )
            except Exception:
                log.exception("sync job %s crashed", job_id)
                self.catalog.state.update_job(job_id, state="failed", detail="internal error")
