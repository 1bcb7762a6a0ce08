"""The state store on the PostgreSQL running here, as several replicas use it.

Replicas starting together create the schema once; sources, jobs and exports
survive a new StateStore; the one-active-job-per-source rule holds when threads
race to create jobs; each queued job is claimed by exactly one of many threads
in several processes; a running job whose runner stopped heartbeating is
re-queued and claimed by another owner, once, while a live runner keeps its job
through a silent phase longer than the stale period; and the password in
LOUPE_DATABASE_URL shows in no error. Each test runs in a private database with
a random name, dropped afterwards (tests/integration/sql_dbs.py).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from service.catalog.catalog import Catalog
from service.config import Settings
from service.errors import Conflict, InvalidConfig, LoupeError
from service.jobs.queue import JobQueue
from service.jobs.runner import JobContext, JobRunner
from service.state import JobRow, StateStore, utcnow
from tests.conftest import free_port
from tests.fakes import FakeEncoder
from tests.integration.sql_dbs import TestDB, private_database, unreachable_reason

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


@pytest.fixture
def pg() -> Iterator[TestDB]:
    reason = unreachable_reason("postgresql")
    if reason:
        pytest.skip(reason)
    with private_database("postgresql") as db:
        yield db


@pytest.fixture
def store(pg: TestDB) -> Iterator[StateStore]:
    s = StateStore(pg.url)
    yield s
    s.close()


def sync_job(store: StateStore, source: str, options: dict[str, Any] | None = None, **kw: Any) -> JobRow:
    """A sync job of `source`, holding its lock as the catalog's would."""
    return JobQueue(store).create(
        "sync", source=source, options=options or {}, lock_key=f"sync:{source}", **kw
    )


def claim(store: StateStore, owner: str, *, stale_after_s: float) -> JobRow | None:
    return JobQueue(store).claim(owner, kinds=["sync"], stale_after_s=stale_after_s)


def race(n: int, fn: Callable[[int], T]) -> list[T | BaseException]:
    """Run fn(0..n-1) in n threads released at the same instant; results or raised exceptions."""
    barrier = threading.Barrier(n)

    def run(i: int) -> T | BaseException:
        barrier.wait()
        try:
            return fn(i)
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(run, range(n)))


def job_rows(pg: TestDB) -> list[dict[str, Any]]:
    with pg.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT id, source, state, owner, detail FROM jobs ORDER BY created_at"))
        return [dict(r._mapping) for r in rows]


# -- restart -------------------------------------------------------------------


def test_sources_jobs_and_exports_survive_a_new_store(pg: TestDB) -> None:
    first = StateStore(pg.url)
    first.add_source("photos", "local", {"path": "/data/photos", "include": ["*.jpg"]})
    first.set_cursor("photos", "2024-05-01T00:00:00Z")
    done = sync_job(first, "photos", {"full": True, "prune": False})
    JobQueue(first).update(
        done.id,
        state="succeeded",
        counts={"seen": 3, "added": 2, "failed": 1},
        errors=[{"key": "bad.jpg", "reason": "truncated"}],
        progress=1.0,
        finished_at=utcnow(),
    )
    queued = sync_job(first, "photos", {"full": False, "prune": True})
    export = first.create_export("jsonl", {"ids": ["a", "b"], "path": "/tmp/out.jsonl"})
    first.update_export(export.id, state="succeeded", counts={"selected": 2, "sent": 2}, location="/tmp/x")
    first.close()

    second = StateStore(pg.url)  # a restarted process: new engine, schema already there
    try:
        (source,) = second.list_sources()
        assert (source.name, source.kind, source.cursor) == ("photos", "local", "2024-05-01T00:00:00Z")
        assert source.config == {"path": "/data/photos", "include": ["*.jpg"]}
        old = JobQueue(second).get(done.id)
        assert old.state == "succeeded" and old.options == {"full": True, "prune": False}
        assert old.counts == {"seen": 3, "added": 2, "failed": 1}
        assert old.errors == [{"key": "bad.jpg", "reason": "truncated"}]
        assert old.created_at == done.created_at and old.finished_at is not None
        assert old.created_at.tzinfo is not None, "timestamps come back timezone-aware"
        active = JobQueue(second).holder("sync:photos")
        assert active is not None and active.id == queued.id and active.state == "queued"
        assert [j.id for j in JobQueue(second).list(source="photos")] == [queued.id, done.id]
        kept = second.get_export(export.id)
        assert (kept.state, kept.counts, kept.location) == ("succeeded", {"selected": 2, "sent": 2}, "/tmp/x")
        assert kept.request == {"ids": ["a", "b"], "path": "/tmp/out.jsonl"}
        # The queued job is still there for whichever replica comes up first.
        claimed = claim(second, "restarted:1", stale_after_s=60)
        assert claimed is not None and claimed.id == queued.id
    finally:
        second.close()


def test_replicas_starting_together_on_an_empty_database_all_open_it(pg: TestDB) -> None:
    stores = race(6, lambda _i: StateStore(pg.url))
    try:
        assert all(isinstance(s, StateStore) for s in stores), stores
    finally:
        for s in stores:
            if isinstance(s, StateStore):
                s.close()


# -- one active job per source ---------------------------------------------------


def test_one_active_job_per_source_when_threads_race(store: StateStore, pg: TestDB) -> None:
    store.add_source("photos", "local", {"path": "/p"})
    results = race(12, lambda i: sync_job(store, "photos", {"n": i}))
    created = [r for r in results if isinstance(r, JobRow)]
    refused = [r for r in results if isinstance(r, Conflict)]
    assert len(created) == 1 and len(refused) == 11, results
    assert all(created[0].id in r.detail for r in refused), refused[0].detail
    assert [r["id"] for r in job_rows(pg)] == [created[0].id]

    # Different sources never block each other.
    results = race(8, lambda i: sync_job(store, f"other-{i}", {}))
    assert all(isinstance(r, JobRow) for r in results), results

    # Once the job has finished, the source takes a new one; a running one blocks like a queued one.
    JobQueue(store).update(created[0].id, state="succeeded", finished_at=utcnow())
    again = sync_job(store, "photos", {}, state="running", owner="cli:1")
    with pytest.raises(Conflict, match=again.id):
        sync_job(store, "photos", {})


# -- claims ----------------------------------------------------------------------

CLAIMER = """
import json, sys, threading
from service.jobs.queue import JobQueue
from service.state import StateStore

url, name, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = StateStore(url)
jobs = JobQueue(store)
claims, barrier = [], threading.Barrier(threads)

def work(t):
    owner = f"{name}-t{t}"
    barrier.wait()
    while (job := jobs.claim(owner, kinds=["sync"], stale_after_s=3600)) is not None:
        claims.append([job.id, owner])

print("ready", flush=True)
sys.stdin.readline()  # "go", once every process is up
pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
for th in pool:
    th.start()
for th in pool:
    th.join()
store.close()
print(json.dumps(claims), flush=True)
"""


def test_each_job_is_claimed_once_by_many_threads_in_several_processes(store: StateStore, pg: TestDB) -> None:
    ids = {sync_job(store, f"src-{i:03d}", {}).id for i in range(120)}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIMER, pg.url, f"p{n}", "3"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(3)
    ]
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready", p.stderr
        # This process claims too, through its own store, while the others do.
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        local = race(3, lambda t: _claim_all(store, f"main-t{t}"))
        outputs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
    claims = [(c[0], c[1]) for out, _ in outputs for c in json.loads(out)]
    for got in local:
        assert isinstance(got, list), got
        claims += got
    claimed_ids = [job_id for job_id, _ in claims]
    assert len(claimed_ids) == len(set(claimed_ids)), "a job was claimed twice"
    assert set(claimed_ids) == ids, "a job was never claimed"
    # What each claimer was told matches what the database recorded.
    recorded = {r["id"]: (r["state"], r["owner"]) for r in job_rows(pg)}
    assert all(recorded[job_id] == ("running", owner) for job_id, owner in claims)
    owners = {owner.split("-")[0] for _, owner in claims}
    assert len(owners) >= 2, f"no contention between processes: only {owners} claimed"


def _claim_all(store: StateStore, owner: str) -> list[tuple[str, str]]:
    got = []
    while (job := claim(store, owner, stale_after_s=3600)) is not None:
        got.append((job.id, owner))
    return got


# -- stale jobs ------------------------------------------------------------------


def test_a_silent_runners_job_is_requeued_and_claimed_by_another_owner_once(store: StateStore) -> None:
    job = sync_job(store, "photos", {"full": False})
    claimed = claim(store, "replica-a:11", stale_after_s=0.6)
    assert claimed is not None and claimed.id == job.id
    # While replica A heartbeats, nobody takes its job.
    for _ in range(5):
        time.sleep(0.25)
        assert JobQueue(store).heartbeat(job.id, "replica-a:11")
        assert claim(store, "replica-b:22", stale_after_s=0.6) is None
    # A stops answering; once the stale period passes, exactly one of many claimers takes the job.
    time.sleep(0.8)
    results = race(8, lambda i: claim(store, f"replica-{i}:{i}", stale_after_s=0.6))
    winners = [r for r in results if isinstance(r, JobRow)]
    assert len(winners) == 1 and all(r is None for r in results if r is not winners[0]), results
    taken = winners[0]
    assert taken.id == job.id and taken.state == "running" and taken.owner != "replica-a:11"
    assert "replica-a:11" in (taken.detail or "") and "stopped answering" in (taken.detail or "")
    assert taken.started_at == claimed.started_at, "the job keeps when it first started"
    # A, should it come back, learns that the job is no longer its own.
    assert not JobQueue(store).heartbeat(job.id, "replica-a:11")
    assert JobQueue(store).heartbeat(job.id, taken.owner or "")
    assert (
        JobQueue(store).holder("sync:photos") is not None and len(JobQueue(store).list(source="photos")) == 1
    )


def test_a_live_runner_keeps_its_job_through_a_long_silent_phase(pg: TestDB, tmp_path: Path) -> None:
    """A sync step longer than the stale period (a slow listing, a big batch) reports no progress;
    the runner's own heartbeat must keep the job from being handed to another replica meanwhile."""
    settings = Settings(home=tmp_path, database_url=SecretStr(pg.url), _env_file=None)  # type: ignore[call-arg]
    cat = Catalog(settings, encoder=FakeEncoder())
    released = threading.Event()

    def silent_sync(ctx: JobContext) -> None:
        released.wait(10)

    cat.run_sync = silent_sync  # type: ignore[method-assign]
    runner = JobRunner(cat, stale_after_s=0.9)
    runner.start()
    try:
        cat.state.add_source("photos", "local", {"path": str(tmp_path)})
        job = cat.submit_sync("photos")
        runner.wake()
        while JobQueue(cat.state).get(job.id).state == "queued":
            time.sleep(0.02)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:  # more than three stale periods without progress
            assert claim(cat.state, "other:1", stale_after_s=0.9) is None
            time.sleep(0.1)
        assert JobQueue(cat.state).get(job.id).owner == cat.owner
    finally:
        released.set()
        runner.stop()
        cat.close()
    assert JobQueue(cat.state).get(job.id).state == "succeeded"


# -- passwords -------------------------------------------------------------------


def _no_password(exc: BaseException, password: str) -> str:
    text = "".join(traceback.format_exception(exc))
    assert password not in text, text
    return str(exc)


def test_unreachable_database_error_names_the_url_without_its_password(tmp_path: Path) -> None:
    password = "pw-" + secrets.token_urlsafe(12)
    port = free_port()  # nothing listens there
    url = f"postgresql+psycopg://loupe:{password}@127.0.0.1:{port}/state"
    with pytest.raises(LoupeError) as info:
        StateStore(url)
    message = _no_password(info.value, password)
    assert f"postgresql+psycopg://loupe:***@127.0.0.1:{port}/state" in message
    assert "refused" in message and "LOUPE_DATABASE_URL" in message and "\n" not in message

    # (The catalog's way to the store is the CLI test below: Catalog imports torch first.)
    settings = Settings(home=tmp_path, database_url=SecretStr(url), _env_file=None)  # type: ignore[call-arg]
    assert password not in repr(settings) and password not in str(settings.model_dump())


def test_missing_database_and_bad_urls_are_clear_and_keep_the_password(pg: TestDB) -> None:
    assert pg.password and pg.password in pg.url  # the fixture's URL does carry one
    absent = sa.engine.make_url(pg.url).set(database=f"loupe_absent_{secrets.token_hex(4)}")
    with pytest.raises(LoupeError, match="does not exist") as info:
        StateStore(absent.render_as_string(hide_password=False))
    assert "***" in _no_password(info.value, pg.password)

    cases = {
        f"postgresql+psycopg://u:{pg.password}@127.0.0.1:notaport/db": "not a database URL",
        f"nosuchdialect://u:{pg.password}@127.0.0.1/db": "nosuchdialect://u:***@127.0.0.1/db",
        f"mysql+nosuchdriver://u:{pg.password}@127.0.0.1/db": "install its driver",
    }
    for url, expected in cases.items():
        with pytest.raises(InvalidConfig) as bad:
            StateStore(url)
        assert expected in _no_password(bad.value, pg.password), url


def test_cli_with_an_unreachable_database_prints_one_line_without_the_password(tmp_path: Path) -> None:
    password = "pw-" + secrets.token_urlsafe(12)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOUPE_")}
    env.update(
        LOUPE_HOME=str(tmp_path / "home"),
        LOUPE_DATABASE_URL=f"postgresql+psycopg://loupe:{password}@127.0.0.1:{port}/state",
    )
    # The real CLI with the encoder stubbed (replica_server): the store fails before any model loads,
    # and importing torch would only add seconds.
    proc = subprocess.run(
        [sys.executable, "-m", "tests.integration.replica_server", "source", "list"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    assert password not in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert f"loupe:***@127.0.0.1:{port}/state" in proc.stderr
