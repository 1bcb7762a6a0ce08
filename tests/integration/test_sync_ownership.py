"""A runner that lost its job (another took it over) stops and writes nothing to the job."""

from __future__ import annotations

from service.catalog.jobs import sync_lock
from service.jobs.runner import execute
from tests.images import solid


def _source(fake_catalog, tmp_path, n: int) -> None:
    root = tmp_path / "imgs"
    root.mkdir()
    for i in range(n):
        solid((i * 40, 10, 10)).save(root / f"{i}.png")
    fake_catalog.add_source("s", "local", {"path": str(root)})


def test_a_taken_over_sync_stops_without_touching_the_job(fake_catalog, tmp_path):
    _source(fake_catalog, tmp_path, 5)
    job = fake_catalog.jobs.create(
        "sync", source="s", lock_key=sync_lock("s"), state="running", owner="other-host:1"
    )
    result = execute(fake_catalog, job)
    assert result.state == "running" and result.owner == "other-host:1"
    assert result.counts == {}  # the other runner's job was not overwritten


def test_an_owned_sync_finishes(fake_catalog, tmp_path):
    _source(fake_catalog, tmp_path, 1)
    job = fake_catalog.jobs.create(
        "sync", source="s", lock_key=sync_lock("s"), state="running", owner=fake_catalog.owner
    )
    done = execute(fake_catalog, job)
    assert done.state == "succeeded" and done.counts["added"] == 1
    assert set(done.timings) >= {"list", "read", "decode", "encode", "upsert"}
