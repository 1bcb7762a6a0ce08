"""Loupe's durable job queue (issue 13): enqueue, claim and pickup on SQLite and PostgreSQL.

The same three measurements were made on queue libraries (procrastinate, RQ, huey)
for the issue's choice; RESULTS.md says how. Here, for Loupe's own queue:

* enqueue: N jobs created one by one by one client (jobs/s, ms per create);
* drain: W worker processes (1 and 2) claim and finish N queued no-op jobs until the
  queue is empty, as a runner does (claim with SKIP LOCKED, then mark succeeded);
  jobs/s over the whole drain, ms per claim, and a check that every job ran once;
* pickup: one idle worker polling as the runner does across processes (claim, then
  wait the runner's poll period when there is nothing); jobs arrive at random gaps
  and the time from create to claim is recorded. (A job submitted to the runner of
  the same process is claimed at once: the runner is woken.)

The queue is the one this tree has: service.jobs.queue.JobQueue, or the StateStore
methods it replaced (create_job / claim_job) in trees from before issue 13.
PostgreSQL runs in a private database created and dropped here; SQLite in a temp file.

    python -m benchmarks.bench_jobs [--full] [--jobs N] [--pickups N]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import random
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.common import Profile, Table, loadavg, ms, percentile, report
from service.state import StateStore, utcnow
from tests.integration.sql_dbs import private_database, unreachable_reason

STALE_AFTER_S = 3600.0  # nothing goes stale during a run
KIND = "bench"


class Jobs:
    """Create, claim and finish through whichever job-queue API this tree has."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self.queue: Any = None
        self.legacy: Any = store  # before issue 13 the queue was StateStore's own methods
        try:
            from service.jobs.queue import JobQueue
        except ImportError:
            pass
        else:
            self.queue = JobQueue(store)
        self.api = "JobQueue" if self.queue is not None else "StateStore"

    def create(self, i: int) -> str:
        if self.queue is not None:
            return str(self.queue.create(KIND, options={"i": i}).id)
        return str(self.legacy.create_job(f"bench-{i}", {"i": i}).id)  # one active job per source

    def claim(self, owner: str) -> str | None:
        if self.queue is not None:
            row = self.queue.claim(owner, kinds=(KIND,), stale_after_s=STALE_AFTER_S)
        else:
            row = self.legacy.claim_job(owner, stale_after_s=STALE_AFTER_S)
        return None if row is None else str(row.id)

    def finish(self, job_id: str, owner: str) -> None:
        update = self.queue.update if self.queue is not None else self.legacy.update_job
        update(job_id, owner=owner, state="succeeded", progress=1.0, finished_at=utcnow())


def poll_s() -> float:
    try:
        from service.jobs.runner import POLL_S
    except ImportError:
        return 1.0  # the runner's poll period before issue 13
    return float(POLL_S)


# -- workers (separate processes: each replica has its own engine and GIL) --------------


def _drain_worker(url: str, owner: str, start: Any, out: Any) -> None:
    jobs = Jobs(StateStore(url))
    claimed: list[str] = []
    claim_s: list[float] = []
    start.wait()
    while True:
        t0 = time.perf_counter()
        job_id = jobs.claim(owner)
        claim_s.append(time.perf_counter() - t0)
        if job_id is None:
            break
        jobs.finish(job_id, owner)
        claimed.append(job_id)
    jobs.store.close()
    out.put((claimed, claim_s, time.perf_counter()))


def _pickup_worker(url: str, expected: int, period_s: float, ready: Any, out: Any) -> None:
    jobs = Jobs(StateStore(url))
    seen: dict[str, float] = {}
    ready.set()
    while len(seen) < expected:
        job_id = jobs.claim("pickup:1")
        if job_id is None:
            time.sleep(period_s)
            continue
        seen[job_id] = time.time()
        jobs.finish(job_id, "pickup:1")
    jobs.store.close()
    out.put(seen)


# -- measurements ------------------------------------------------------------------------


def _enqueue(jobs: Jobs, n: int) -> tuple[list[str], list[float]]:
    ids, seconds = [], []
    for i in range(n):
        t0 = time.perf_counter()
        ids.append(jobs.create(i))
        seconds.append(time.perf_counter() - t0)
    return ids, seconds


def _drain(url: str, ids: list[str], workers: int) -> tuple[float, list[float]]:
    ctx = mp.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_drain_worker, args=(url, f"w{w}:{w}", start, out)) for w in range(workers)]
    for p in procs:
        p.start()
    time.sleep(2.0)  # every worker has imported and connected (spawn takes ~1 s)
    t0 = time.perf_counter()
    start.set()
    results = [out.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    wall = max(done for _, _, done in results) - t0
    claimed = Counter(job_id for got, _, _ in results for job_id in got)
    assert set(claimed) == set(ids), "a job was never claimed"
    assert max(claimed.values()) == 1, "a job was claimed twice"
    return wall, [s for _, claims, _ in results for s in claims]


def _pickup(url: str, jobs: Jobs, n: int) -> list[float]:
    period = poll_s()
    ctx = mp.get_context("spawn")
    ready, out = ctx.Event(), ctx.Queue()
    proc = ctx.Process(target=_pickup_worker, args=(url, n, period, ready, out))
    proc.start()
    ready.wait(60)
    created: dict[str, float] = {}
    rng = random.Random(13)
    for i in range(n):
        time.sleep(rng.uniform(0, period))
        job_id = jobs.create(100_000 + i)
        created[job_id] = time.time()
    seen = out.get(timeout=120)
    proc.join(timeout=60)
    return [seen[job_id] - t for job_id, t in created.items()]


def _backend(name: str, url: str, *, n: int, pickups: int, table: Table) -> None:
    store = StateStore(url)
    jobs = Jobs(store)
    try:
        lags = _pickup(url, jobs, pickups)  # first, on an empty queue
        pickup: list[Any] = [ms(percentile(lags, 50)), ms(max(lags))]
        for workers in (1, 2):
            ids, create_s = _enqueue(jobs, n)
            wall, claim_s = _drain(url, ids, workers)
            table.add(
                f"Loupe {jobs.api} ({name})", workers, n / sum(create_s), ms(percentile(create_s, 50)),
                n / wall, ms(percentile(claim_s, 50)), ms(percentile(claim_s, 95)),
                *(pickup if workers == 1 else ["-", "-"]),
            )  # fmt: skip
    finally:
        store.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_jobs", description=__doc__)
    p.add_argument("--full", action="store_true", help="10x the jobs")
    p.add_argument("--jobs", type=int, default=None, help="jobs per drain (default 2,000; --full 20,000)")
    p.add_argument("--pickups", type=int, default=20, help="jobs in the pickup-latency run")
    args = p.parse_args(argv)
    profile = Profile("full" if args.full else "quick")
    n = args.jobs or profile.pick(2_000, 20_000)
    started_load = loadavg()
    table = Table(
        f"job queue: {n:,} no-op jobs; pickup over {args.pickups} jobs with a {poll_s():g} s poll",
        ["queue (store)", "workers", "enqueue jobs/s", "enqueue p50 ms", "drain jobs/s",
         "claim p50 ms", "claim p95 ms", "pickup p50 ms", "pickup max ms"],
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="loupe-bench-jobs-") as tmp:
        _backend("SQLite", f"sqlite:///{Path(tmp) / 'state.db'}", n=n, pickups=args.pickups, table=table)
    reason = unreachable_reason("postgresql")
    if reason is None:
        with private_database("postgresql") as db:
            _backend("PostgreSQL", db.url, n=n, pickups=args.pickups, table=table)
    else:
        table.notes.append(f"PostgreSQL skipped: {reason}")
    table.notes.append(
        "drain = claim + mark succeeded per job, W worker processes on one queue; pickup = create "
        "to claim by an idle worker in another process (the row of 1 worker)"
    )
    report("Job queue (issue 13)", profile, [table], started_load=started_load)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
