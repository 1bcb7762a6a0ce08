"""The one job system on the embedded default (SQLite): kinds, cancel, takeover, the REST and CLI views.

Every kind gets the same mechanism: a sync cancelled mid-way keeps the batches it committed
and the next sync finishes the rest; an export cancelled before or while it runs records
exactly what it sent; a job whose process on this host is gone is taken over at once; a
store made by the previous Loupe opens with its jobs and their one-sync-per-source lock.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import numpy as np
import pytest

from service.api.app import create_app
from service.catalog.catalog import Catalog
from service.catalog.jobs import sync_lock
from service.config import IngestSettings, Settings
from service.errors import Conflict, JobNotFound
from service.export.runner import begin
from service.export.schemas import ExportRequest
from service.jobs.queue import JobQueue
from service.jobs.runner import cancel, execute
from service.processes import process_owner
from service.state import StateStore
from tests.conftest import LiveServer
from tests.fakes import FakeEncoder
from tests.images import gradient

N = 24
BATCH = 4


class GatedEncoder(FakeEncoder):
    """Blocks in batch number `hold_at` (1-based) until released, so a test can act mid-sync."""

    def __init__(self, hold_at: int) -> None:
        self.hold_at = hold_at
        self.batches = 0
        self.holding = threading.Event()
        self.release = threading.Event()

    def encode_prepared(self, items: Sequence[np.ndarray]) -> np.ndarray:
        self.batches += 1
        if self.batches == self.hold_at:
            self.holding.set()
            assert self.release.wait(30), "the test never released the encoder"
        return super().encode_prepared(items)


def photos(root: Path, n: int = N) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        gradient(i).save(root / f"img{i:02d}.png")
    return root


@pytest.fixture
def gated(tmp_path: Path) -> Iterator[tuple[Catalog, GatedEncoder]]:
    settings = Settings(  # type: ignore[call-arg]
        home=tmp_path / "home",
        ingest=IngestSettings(batch_size=BATCH, fetch_workers=2),
        _env_file=None,
    )
    encoder = GatedEncoder(hold_at=3)
    cat = Catalog(settings, encoder=encoder)  # type: ignore[arg-type]
    cat.add_source("photos", "local", {"path": str(photos(tmp_path / "photos"))})
    yield cat, encoder
    encoder.release.set()
    cat.close()


def dead_owner() -> str:
    """The owner string of a process of this host that has exited."""
    code = "from service.processes import process_owner; print(process_owner())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip()


# -- sync ----------------------------------------------------------------------------


def test_a_running_sync_cancelled_keeps_its_committed_batches_and_the_next_sync_finishes(gated):
    cat, encoder = gated
    job = cat.submit_sync("photos")
    claimed = cat.jobs.claim(cat.owner, kinds=["sync"], stale_after_s=30)
    assert claimed is not None and claimed.id == job.id
    result: dict[str, object] = {}
    worker = threading.Thread(target=lambda: result.update(row=execute(cat, claimed)))
    worker.start()
    assert encoder.holding.wait(30), "the sync never reached its third batch"
    asked = cancel(cat, job.id)
    assert asked.state == "running" and asked.cancel_requested
    encoder.release.set()
    worker.join(30)
    done = cat.jobs.get(job.id)
    assert done.state == "cancelled" and "cancelled by request" in (done.detail or "")
    # The batch in flight when the cancel came was committed, and nothing after it.
    assert done.counts["added"] == 3 * BATCH, done.counts
    assert cat.count({"source": "photos"}) == 3 * BATCH
    assert cat.jobs.holder(sync_lock("photos")) is None, "a cancelled sync holds no lock"
    with pytest.raises(Conflict, match="cancelled already"):
        cancel(cat, job.id)

    again = cat.sync("photos")
    assert again.state == "succeeded", again.detail
    assert again.counts["unchanged"] == 3 * BATCH and again.counts["added"] == N - 3 * BATCH
    assert cat.count({"source": "photos"}) == N


def test_a_queued_job_is_cancelled_at_once_and_never_runs(fake_catalog, tmp_path):
    cat = fake_catalog
    cat.add_source("photos", "local", {"path": str(photos(tmp_path / "photos", 3))})
    job = cat.submit_sync("photos")
    with pytest.raises(Conflict, match=f"already queued \\(job {job.id}\\).*DELETE /api/v1/jobs/{job.id}"):
        cat.submit_sync("photos")
    row = cancel(cat, job.id)
    assert row.state == "cancelled" and row.finished_at is not None
    assert cat.jobs.claim(cat.owner, kinds=["sync", "export"], stale_after_s=30) is None
    assert cat.count(None) == 0
    assert cat.submit_sync("photos").state == "queued", "the source takes a new sync"
    with pytest.raises(JobNotFound):
        cancel(cat, "no-such-job")


def test_a_job_whose_process_is_gone_is_taken_over_at_once(fake_catalog, tmp_path):
    cat = fake_catalog
    cat.add_source("photos", "local", {"path": str(photos(tmp_path / "photos", 5))})
    gone = dead_owner()
    job = cat.jobs.create("sync", source="photos", lock_key=sync_lock("photos"), state="running", owner=gone)
    # Its heartbeat is fresh, and the stale period an hour: only the dead pid can tell.
    claimed = cat.jobs.claim(cat.owner, kinds=["sync"], stale_after_s=3600)
    assert claimed is not None and claimed.id == job.id and claimed.owner == cat.owner
    assert claimed.detail == f"resumed: its process ({gone}) is gone"
    done = execute(cat, claimed)
    assert done.state == "succeeded" and done.counts["added"] == 5
    # A live owner on this host (this process) keeps its job.
    mine = cat.jobs.create(
        "sync", source="photos", lock_key=sync_lock("photos"), state="running", owner=cat.owner
    )
    assert cat.jobs.take_over(stale_after_s=3600) == 0 and cat.jobs.get(mine.id).state == "running"


def test_a_cancel_asked_of_a_job_whose_process_died_closes_it(fake_catalog):
    cat = fake_catalog
    job = cat.jobs.create("sync", source="x", lock_key=sync_lock("x"), state="running", owner=dead_owner())
    cat.jobs.cancel(job.id)
    assert cat.jobs.take_over(stale_after_s=3600) == 1
    row = cat.jobs.get(job.id)
    assert row.state == "cancelled" and "is gone before it could stop" in (row.detail or "")


def test_a_sync_from_the_cli_supersedes_the_queued_job_a_dead_server_left(fake_catalog, tmp_path):
    cat = fake_catalog
    cat.add_source("photos", "local", {"path": str(photos(tmp_path / "photos", 3))})
    left = cat.jobs.create(
        "sync", source="photos", lock_key=sync_lock("photos"), state="running", owner=dead_owner()
    )
    done = cat.sync("photos")
    assert done.state == "succeeded" and done.counts["added"] == 3
    old = cat.jobs.get(left.id)
    assert old.state == "failed" and "superseded by a sync started in process" in (old.detail or "")


# -- export --------------------------------------------------------------------------


def _synced(cat: Catalog, tmp_path: Path, n: int) -> None:
    cat.add_source("photos", "local", {"path": str(photos(tmp_path / "photos", n))})
    assert cat.sync("photos").state == "succeeded"


def test_an_export_is_a_job_and_cancelled_before_it_runs_records_nothing(fake_catalog, tmp_path):
    cat = fake_catalog
    _synced(cat, tmp_path, 4)
    out = tmp_path / "out.jsonl"
    row = begin(cat, ExportRequest(target="jsonl", filter={}, path=str(out)), base_url="http://x")
    job = cat.jobs.get(row.id)
    assert (job.kind, job.state, row.state) == ("export", "queued", "queued")
    cancel(cat, row.id)
    export = cat.state.get_export(row.id)
    assert export.state == "cancelled" and export.finished_at is not None
    assert not out.exists()
    assets, _ = cat.list_assets(filter=None, limit=10, cursor=None)
    assert all(not a["exports"] for a in assets)


def test_an_export_cancelled_while_it_runs_writes_no_file_and_records_nothing(fake_catalog, tmp_path):
    cat = fake_catalog
    _synced(cat, tmp_path, 4)
    out = tmp_path / "out.jsonl"
    row = begin(cat, ExportRequest(target="jsonl", filter={}, path=str(out)), base_url="http://x", here=True)
    cat.jobs.cancel(row.id)  # asked while it runs: seen at its first progress report
    done = execute(cat, cat.jobs.get(row.id))
    assert done.state == "cancelled"
    export = cat.state.get_export(row.id)
    assert export.state == "cancelled" and export.counts["sent"] == 0
    assert not out.exists() and not list(tmp_path.glob(".out.jsonl.*"))
    assets, _ = cat.list_assets(filter=None, limit=10, cursor=None)
    assert all(not a["exports"] for a in assets)


def test_the_export_job_keeps_the_token_and_the_api_shows_it_nowhere(fake_catalog, tmp_path):
    from service.export.jobs import job_options
    from service.schemas import job_public

    request = ExportRequest.model_validate(
        {
            "target": "label-studio",
            "filter": {},
            "label_studio": {"url": "http://ls:8080", "token": "s3cret-tok", "project_id": 3},
        }
    )
    options = job_options(request, base_url="http://x")
    assert options["request"]["label_studio"]["token"] == "s3cret-tok"  # to resume after a restart
    job = fake_catalog.jobs.create("export", options=options)
    assert "s3cret-tok" not in json.dumps(job_public(job).model_dump())
    assert "s3cret-tok" not in json.dumps(request.public())


# -- REST and CLI ----------------------------------------------------------------------


def test_jobs_over_rest_list_by_kind_show_and_cancel(fake_catalog, settings, tmp_path, monkeypatch, capsys):
    cat = fake_catalog
    _synced(cat, tmp_path, 3)
    with LiveServer(create_app(settings, catalog=cat)) as server, httpx.Client(base_url=server.url) as http:
        monkeypatch.setenv("LOUPE_URL", server.url)  # the CLI goes through the running server
        export = http.post("/api/v1/exports", json={"target": "jsonl", "filter": {}}).json()
        assert export["job_id"] == export["id"]
        deadline = time.monotonic() + 30
        while (job := http.get(f"/api/v1/jobs/{export['job_id']}").json())["state"] in ("queued", "running"):
            assert time.monotonic() < deadline, job
            time.sleep(0.05)
        assert job["kind"] == "export" and job["state"] == "succeeded" and job["source"] is None
        assert job["counts"] == {"selected": 3, "sent": 3, "skipped": 0, "failed": 0}
        syncs = http.get("/api/v1/jobs", params={"kind": "sync"}).json()["data"]
        assert [j["kind"] for j in syncs] == ["sync"] and syncs[0]["source"] == "photos"
        assert set(syncs[0]["timings"]) >= {"list", "read", "decode", "encode", "upsert"}
        exports = http.get("/api/v1/jobs", params={"kind": "export", "state": "succeeded"}).json()["data"]
        assert [j["id"] for j in exports] == [export["id"]]
        unknown = http.get("/api/v1/jobs", params={"kind": "nope"})
        assert unknown.status_code == 422 and "'export'" in unknown.json()["detail"], unknown.text
        assert "'sync'" in unknown.json()["detail"]
        finished = http.delete(f"/api/v1/jobs/{export['id']}")
        assert finished.status_code == 409 and finished.json()["error"] == "Conflict"
        assert http.delete("/api/v1/jobs/nope").status_code == 404
        assert http.get(f"/api/v1/exports/{export['id']}").json()["state"] == "succeeded"

        from service import cli

        capsys.readouterr()
        assert cli.main(["jobs", "list", "--kind", "export"]) == 0
        listed = capsys.readouterr().out
        assert export["id"] in listed and "succeeded" in listed and "3 sent" in listed
        assert syncs[0]["id"] not in listed
        assert cli.main(["jobs", "show", syncs[0]["id"]]) == 0
        shown = capsys.readouterr().out
        assert "sync photos" in shown and "timings: list" in shown and "3 added" in shown
        with pytest.raises(SystemExit) as failed:
            cli.main(["jobs", "cancel", export["id"]])
        assert failed.value.code == 1 and "succeeded already" in capsys.readouterr().err
        # A sync another host runs (its heartbeat fresh): asked to stop, it shows as cancelling.
        elsewhere = cat.jobs.create(
            "sync", source="photos", lock_key=sync_lock("photos"), state="running", owner="other-host:1:1"
        )
        assert cli.main(["jobs", "cancel", elsewhere.id]) == 0
        assert "running (cancelling)" in capsys.readouterr().out
        assert cli.main(["jobs", "show", elsewhere.id, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["cancel_requested"] is True


# -- upgrade -----------------------------------------------------------------------------

OLD_JOBS = """
CREATE TABLE jobs (
    id VARCHAR(36) NOT NULL PRIMARY KEY, source VARCHAR(200) NOT NULL, state VARCHAR(16) NOT NULL,
    options JSON NOT NULL, counts JSON NOT NULL, progress FLOAT NOT NULL, rate FLOAT NOT NULL,
    errors JSON NOT NULL, error_count INTEGER NOT NULL, detail TEXT, owner VARCHAR(200),
    created_at DATETIME NOT NULL, started_at DATETIME, finished_at DATETIME, heartbeat_at DATETIME
);
CREATE INDEX ix_jobs_source ON jobs (source);
CREATE INDEX ix_jobs_state ON jobs (state);
CREATE UNIQUE INDEX uq_jobs_active_source ON jobs (source) WHERE state IN ('queued', 'running');
INSERT INTO jobs VALUES ('old-done', 'photos', 'succeeded', '{}', '{"added": 2}', 1.0, 0.0, '[]', 0, NULL,
    NULL, '2026-01-01 00:00:00', NULL, '2026-01-01 00:01:00', NULL);
INSERT INTO jobs VALUES ('old-queued', 'photos', 'queued', '{"full": false}', '{}', 0.0, 0.0, '[]', 0, NULL,
    NULL, '2026-01-02 00:00:00', NULL, NULL, '2026-01-02 00:00:00');
"""


def test_a_store_made_by_the_previous_loupe_opens_with_its_jobs_and_their_locks(tmp_path):
    path = tmp_path / "state.db"
    with sqlite3.connect(path) as db:
        db.executescript(OLD_JOBS)
    store = StateStore(f"sqlite:///{path}")
    try:
        jobs = JobQueue(store)
        done, queued = jobs.get("old-done"), jobs.get("old-queued")
        assert (done.kind, done.state, done.counts, done.cancel_requested) == (
            "sync",
            "succeeded",
            {"added": 2},
            False,
        )
        assert queued.lock_key == "sync:photos"
        with pytest.raises(Conflict, match="old-queued"):
            jobs.create("sync", source="photos", lock_key="sync:photos")
        # Jobs of no source (exports) are not held back by the old one-per-source index.
        first, second = jobs.create("export"), jobs.create("export")
        assert first.id != second.id
        claimed = jobs.claim(process_owner(), kinds=["sync"], stale_after_s=30)
        assert claimed is not None and claimed.id == "old-queued"
    finally:
        store.close()
    StateStore(f"sqlite:///{path}").close()  # and a second open finds nothing left to upgrade
