"""A runner that lost its job (another took it over) stops and writes nothing to the job."""

from __future__ import annotations

from tests.images import solid


def test_a_taken_over_sync_stops_without_touching_the_job(fake_catalog, tmp_path):
    root = tmp_path / "imgs"
    root.mkdir()
    for i in range(5):
        solid((i * 40, 10, 10)).save(root / f"{i}.png")
    fake_catalog.add_source("s", "local", {"path": str(root)})
    job = fake_catalog.state.create_job("s", {}, state="running", owner="other-host:1")
    result = fake_catalog.sync("s", job=job)
    assert result.state == "running" and result.owner == "other-host:1"
    assert result.counts == {}  # the other runner's job was not overwritten


def test_an_owned_sync_finishes(fake_catalog, tmp_path):
    root = tmp_path / "imgs"
    root.mkdir()
    solid((1, 2, 3)).save(root / "a.png")
    fake_catalog.add_source("s", "local", {"path": str(root)})
    job = fake_catalog.state.create_job("s", {}, state="running", owner=fake_catalog.owner)
    assert fake_catalog.sync("s", job=job).state == "succeeded"
