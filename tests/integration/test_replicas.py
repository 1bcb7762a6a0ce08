"""Two real `loupe serve` processes sharing one PostgreSQL state database.

Each replica is `python -m tests.integration.replica_server serve` (the real
CLI, `serve` and app lifespan with its job runner; only the encoder is the
FakeEncoder) against a private PostgreSQL database. Each has its own LOUPE_HOME
and so its own embedded index: the embedded engine belongs to one process, and
qdrant-client's local mode cannot be shared between processes either. So these
tests prove the state sharing and the claim logic (sources, jobs and exports
seen by both, one active sync per source, every sync run exactly once, a killed
replica's sync taken over) and not a shared index. The separate indexes are
what tells which replica really ran a sync: its assets land in that one only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from service.processes import owner_of
from tests.conftest import free_port
from tests.images import gradient
from tests.integration.sql_dbs import TestDB, private_database, unreachable_reason

ROOT = Path(__file__).resolve().parents[2]
STALE_AFTER_S = 2.0


class Replica:
    """One `loupe serve` subprocess on 127.0.0.1 with its own home; output kept in a log file."""

    def __init__(self, name: str, *, home: Path, env: dict[str, str]) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        home.mkdir(parents=True, exist_ok=True)  # a restart reuses the home
        self.log_path = home.parent / f"{name}.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.replica_server", "serve", "--port", str(self.port)],
            cwd=ROOT,
            env={**env, "LOUPE_HOME": str(home)},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.client = httpx.Client(base_url=self.url, timeout=30)

    @property
    def owner(self) -> str:
        """The owner its catalog records on the jobs it runs."""
        return self._owner

    def remember_owner(self) -> None:
        self._owner = owner_of(self.proc.pid)  # while it runs: the start time is read from /proc

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"replica {self.name} exited {self.proc.returncode}:\n{self.output()}")
            try:
                if self.client.get("/health/live", timeout=1).status_code == 200:
                    self.remember_owner()
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"replica {self.name} did not start:\n{self.output()}")

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text()

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        self._log.close()


def _private_pg() -> Iterator[TestDB]:
    reason = unreachable_reason("postgresql")
    if reason:
        pytest.skip(reason)
    with private_database("postgresql") as db:
        yield db


pg = pytest.fixture(scope="module")(_private_pg)
# The kill test's own database: the shared pair's runners must not claim its job.
own_pg = pytest.fixture(_private_pg)


def start_pair(
    tmp_path: Path, pg: TestDB, *, encode_delay_s: float, stale_after_s: float = STALE_AFTER_S
) -> tuple[Replica, Replica]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOUPE_")}
    env.update(
        LOUPE_DATABASE_URL=pg.url,
        LOUPE_JOBS_STALE_AFTER_S=str(stale_after_s),
        LOUPE_INGEST__BATCH_SIZE="2",
        LOUPE_INGEST__FETCH_WORKERS="2",
        LOUPE_INDEX__OPTIMIZE_AFTER_SYNC="false",
        LOUPE_TEST_ENCODE_DELAY_S=str(encode_delay_s),
    )
    pair = (
        Replica("a", home=tmp_path / "a" / "home", env=env),
        Replica("b", home=tmp_path / "b" / "home", env=env),
    )
    try:
        for replica in pair:
            replica.wait_ready()
    except BaseException:
        for replica in pair:
            replica.stop()
        raise
    return pair


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, pg: TestDB) -> Iterator[tuple[Replica, Replica]]:
    """Two replicas shared by the tests that kill neither (each uses its own sources)."""
    replicas = start_pair(tmp_path_factory.mktemp("pair"), pg, encode_delay_s=0.05)
    yield replicas
    for replica in replicas:
        replica.stop()
    for replica in replicas:
        assert "Traceback" not in replica.output(), replica.output()


def photos(root: Path, n: int, *, seed: int = 0) -> Path:
    root.mkdir(parents=True)
    for i in range(n):
        gradient(seed + i).save(root / f"img_{i:03d}.png")
    return root


def add_source(replica: Replica, name: str, path: Path) -> None:
    resp = replica.client.post(
        "/api/v1/sources", json={"name": name, "kind": "local", "config": {"path": str(path)}}
    )
    assert resp.status_code == 201, resp.text


def submit(replica: Replica, name: str) -> dict[str, Any]:
    resp = replica.client.post(f"/api/v1/sources/{name}/sync", json={})
    assert resp.status_code == 202, resp.text
    return resp.json()  # type: ignore[no-any-return]


def wait_done(replica: Replica, job_id: str, *, timeout_s: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        job = replica.client.get(f"/api/v1/jobs/{job_id}").json()
        if job["state"] not in ("queued", "running"):
            return job  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, job
        time.sleep(0.1)


def assets_of(replica: Replica, source: str) -> set[str]:
    resp = replica.client.get("/api/v1/assets", params={"filter": f'{{"source": "{source}"}}', "limit": 1000})
    assert resp.status_code == 200, resp.text
    assert resp.json()["next_cursor"] is None
    return {a["key"] for a in resp.json()["data"]}


def job_rows(pg: TestDB, source: str | None = None) -> list[dict[str, Any]]:
    query = "SELECT id, source, state, owner, detail, counts FROM jobs"
    with pg.engine.connect() as conn:
        if source is None:
            rows = conn.execute(sa.text(query))
        else:
            rows = conn.execute(sa.text(query + " WHERE source = :s"), {"s": source})
        return [dict(r._mapping) for r in rows]


def test_sources_jobs_and_exports_are_shared_and_one_sync_per_source_is_accepted(
    pair: tuple[Replica, Replica], tmp_path: Path, pg: TestDB
) -> None:
    a, b = pair
    add_source(a, "photos", photos(tmp_path / "photos", 24))
    listed = b.client.get("/api/v1/sources").json()["data"]
    assert "photos" in [s["name"] for s in listed]
    assert b.client.get("/api/v1/sources/photos").json()["config"]["path"] == str(tmp_path / "photos")
    again = b.client.post(
        "/api/v1/sources", json={"name": "photos", "kind": "local", "config": {"path": str(tmp_path)}}
    )
    assert again.status_code == 409 and again.json()["error"] == "SourceExists", again.text

    # 12 batches of 2 at 50 ms each: the first sync is still active when B is asked for another.
    job = submit(a, "photos")
    second = b.client.post("/api/v1/sources/photos/sync", json={})
    assert second.status_code == 409, second.text
    assert second.json()["error"] == "Conflict" and job["id"] in second.json()["detail"]
    done = wait_done(b, job["id"])  # B follows a job A accepted
    assert done["state"] == "succeeded" and done["counts"]["added"] == 24, done
    (row,) = job_rows(pg, "photos")
    assert row["owner"] in (a.owner, b.owner)

    # Once it has finished, either replica accepts the next one.
    later = submit(b, "photos")
    assert wait_done(a, later["id"])["state"] == "succeeded"
    assert len(job_rows(pg, "photos")) == 2

    out = tmp_path / "export.jsonl"
    export = a.client.post("/api/v1/exports", json={"target": "jsonl", "filter": {}, "path": str(out)})
    assert export.status_code == 202, export.text
    deadline = time.monotonic() + 30
    while (seen := b.client.get(f"/api/v1/exports/{export.json()['id']}").json())["state"] in (
        "queued",
        "running",
    ):
        assert time.monotonic() < deadline, seen
        time.sleep(0.1)
    assert seen["state"] == "succeeded" and seen["target"] == "jsonl", seen


def test_many_syncs_through_both_replicas_each_run_exactly_once(
    pair: tuple[Replica, Replica], tmp_path: Path, pg: TestDB
) -> None:
    a, b = pair
    names = [f"cam-{i:02d}" for i in range(12)]
    for i, name in enumerate(names):
        add_source((a, b)[i % 2], name, photos(tmp_path / name, 3, seed=100 + 3 * i))
    jobs = {name: submit((a, b)[i % 2], name)["id"] for i, name in enumerate(names)}
    for name, job_id in jobs.items():
        job = wait_done(a, job_id)
        assert job["state"] == "succeeded" and job["counts"]["added"] == 3, (name, job)

    rows = [r for r in job_rows(pg) if r["source"] in jobs]
    assert sorted(r["source"] for r in rows) == names, "one job row per sync, no more"
    owners = {r["source"]: r["owner"] for r in rows}
    assert set(owners.values()) == {a.owner, b.owner}, "both replicas should have taken syncs"
    # The index of the replica that ran a sync holds its 3 assets, the other's none: run once, not twice.
    for name in names:
        on_a, on_b = assets_of(a, name), assets_of(b, name)
        ran, other = (on_a, on_b) if owners[name] == a.owner else (on_b, on_a)
        assert len(ran) == 3 and not other, (name, owners[name], on_a, on_b)


def test_a_replica_killed_mid_sync_leaves_a_job_the_other_takes_over(tmp_path: Path, own_pg: TestDB) -> None:
    pg = own_pg
    # 20 batches, about 3 s of sync; a stale period far longer than the takeover may take.
    a, b = start_pair(tmp_path, pg, encode_delay_s=0.15, stale_after_s=120)
    try:
        add_source(a, "slow", photos(tmp_path / "photos", 40))
        job = submit(a, "slow")
        deadline = time.monotonic() + 30
        while (current := a.client.get(f"/api/v1/jobs/{job['id']}").json())["counts"]["added"] < 6:
            assert current["state"] in ("queued", "running") and time.monotonic() < deadline, current
            time.sleep(0.05)
        (row,) = job_rows(pg, "slow")
        victim, survivor = (a, b) if row["owner"] == a.owner else (b, a)
        assert row["owner"] == victim.owner and row["state"] == "running"
        victim.kill()
        killed_at = time.monotonic()

        # Both run on this host, so the survivor can tell the victim's process is gone: it takes
        # the job over at its next claim (a second or so), not after the stale period.
        while (row := job_rows(pg, "slow")[0])["owner"] in (victim.owner, None):
            assert time.monotonic() - killed_at < 15, row
            time.sleep(0.05)
        assert row["owner"] == survivor.owner, row
        assert f"resumed: its process ({victim.owner}) is gone" == row["detail"], row
        # While it runs there, a second sync of the source is refused, naming the job to wait for.
        again = survivor.client.post("/api/v1/sources/slow/sync", json={})
        assert again.status_code == 409 and job["id"] in again.json()["detail"], again.text

        done = wait_done(survivor, job["id"])
        assert done["state"] == "succeeded" and done["detail"] is None, done
        # The survivor's own index was empty: it embedded everything, and holds it all once.
        assert done["counts"]["added"] == 40 and done["counts"]["failed"] == 0, done
        assert len(assets_of(survivor, "slow")) == 40
        assert len(job_rows(pg, "slow")) == 1, "the job was resumed, not duplicated"
        rerun = wait_done(survivor, submit(survivor, "slow")["id"])
        assert rerun["counts"]["unchanged"] == 40 and rerun["counts"]["added"] == 0, rerun
    finally:
        a.stop()
        b.stop()
    assert "Traceback" not in survivor.output(), survivor.output()
