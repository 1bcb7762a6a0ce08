"""The distributed sync on a real Ray cluster: the same catalog as a local sync, faults included.

The cluster is a real `ray start --head` on 127.0.0.1 with 2 CPUs (tests/integration/ray_head.py),
started once for this module and stopped by its own processes; where a head cannot start,
the tests fall back to Ray started inside the test process and say so. The model is the
shipped loupe-tiny (a real CLIP), so vectors are compared for real.
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
import numpy as np
import pytest

from service.catalog.catalog import Catalog
from service.config import OFFLINE_MODEL, Settings
from service.errors import InvalidConfig, InvalidQuery
from service.schemas import job_public
from service.state import StateStore
from service.synth import generate
from tests.conftest import LiveServer, free_port
from tests.images import write_bad, write_zoo
from tests.integration.ray_head import RayHead

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
SYNTH = 40  # generated images beside the zoo of formats and the bad files


@pytest.fixture(scope="module")
def address() -> Iterator[str | None]:
    head = RayHead()
    try:
        head.start()
    except RuntimeError as exc:  # no head on this machine: Ray inside the test process instead
        print(f"ray start --head failed ({exc}); using ray.init() in the test process")
        yield None
    else:
        print(f"this module started a Ray head at {head.address} (2 CPUs)")
        yield head.address
    finally:
        import ray

        ray.shutdown()
        head.stop()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("distributed") / "images"
    (root / "synth").mkdir(parents=True)
    for sample in generate(11, SYNTH):
        sample.image.save(root / "synth" / f"{sample.index:03d}.png")
    write_zoo(root / "zoo")
    write_bad(root / "bad")
    return root


def _settings(home: Path, address: str | None, **sync: Any) -> Settings:
    opts = {"ray_address": address, "ray_batch_size": 8, "ray_read_batch": 8, **sync}
    return Settings(home=home, model=OFFLINE_MODEL, sync=opts, _env_file=None)  # type: ignore[call-arg]


def _catalog_of(cat: Catalog) -> dict[str, tuple[dict[str, Any], np.ndarray]]:
    recs, cursor = cat.index.scroll(filter=None, limit=10_000, cursor=None)
    assert cursor is None
    vectors = {r.id: r.vector for r in cat.index.retrieve([r.id for r in recs], with_vectors=True)}
    out = {}
    for r in recs:
        payload = {k: v for k, v in r.payload.items() if k != "synced_at"}  # when, not what
        out[r.id] = (payload, np.asarray(vectors[r.id], dtype=np.float32))
    return out


def _assert_same_catalog(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert sorted(got) == sorted(want)
    for pid, (payload, vector) in want.items():
        assert got[pid][0] == payload, pid
        np.testing.assert_allclose(got[pid][1], vector, atol=2e-5)


@pytest.fixture(scope="module")
def reference(folder: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The catalog and job of a local (in-process) sync of the folder."""
    cat = Catalog(_settings(tmp_path_factory.mktemp("local") / "home", None))
    cat.add_source("imgs", "local", {"path": str(folder)})
    job = job_public(cat.sync("imgs", engine="local"))
    out = {"catalog": _catalog_of(cat), "job": job}
    cat.close()
    assert job.state == "succeeded" and job.counts["failed"] == 3
    return out


def test_a_distributed_sync_through_the_api_gives_the_local_catalog(
    address: str | None, folder: Path, reference: dict[str, Any], tmp_path: Path
) -> None:
    from service.api.app import create_app

    settings = _settings(tmp_path / "home", address)
    cat = Catalog(settings)
    with LiveServer(create_app(settings, catalog=cat)) as server, httpx.Client(base_url=server.url) as http:
        http.post("/api/v1/sources", json={"name": "imgs", "kind": "local", "config": {"path": str(folder)}})
        bad = http.post("/api/v1/sources/imgs/sync", json={"engine": "ray", "address": "ray://h:10001"})
        assert bad.status_code == 422 and "Ray Client" in bad.json()["detail"]
        resp = http.post("/api/v1/sources/imgs/sync", json={"engine": "ray", "address": address or "local"})
        assert resp.status_code == 202, resp.text
        job = resp.json()
        assert job["engine"] == "ray"
        _watch_on_the_page(server.url, added=reference["job"].counts["added"])
        deadline = time.monotonic() + 90
        while job["state"] in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(0.3)
            job = http.get(f"/api/v1/jobs/{job['id']}").json()
        want = reference["job"]
        assert job["state"] == "succeeded", job
        assert job["engine"] == "ray"
        assert job["counts"] == want.counts
        assert {e["key"]: e["reason"] for e in job["errors"]} == {e["key"]: e["reason"] for e in want.errors}
        assert set(job["timings"]) == {"list", "read", "decode", "encode", "upsert"}
        assert all(job["timings"][s] > 0 for s in ("read", "decode", "encode", "upsert")), job["timings"]
        _assert_same_catalog(_catalog_of(cat), reference["catalog"])


def _watch_on_the_page(url: str, *, added: int) -> None:
    """The page's job bar names the engine while the sync runs and once it is done (real Chromium)."""
    from tests.integration.web.test_page import ARGS, ARTIFACTS, CHROMIUM

    if CHROMIUM is None:
        print("chromium is not installed: the page's view of the Ray sync is not checked")
        return
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url + "/")
        running = page.locator("#jobs .job.running", has_text="Syncing imgs on Ray")
        running.wait_for(timeout=60_000)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "web-sync-on-ray.png"))
        done = page.locator("#jobs .job.succeeded", has_text=f"Synced imgs on Ray: {added} added")
        done.wait_for(timeout=90_000)
        page.screenshot(path=str(ARTIFACTS / "web-synced-on-ray.png"))
        browser.close()
    assert not errors, errors


def _encoder_actor_pids() -> list[int]:
    # The GCS actor table (ray.util.state needs the dashboard, which this cluster runs without).
    import ray._private.state as ray_state

    return [
        int(a["Pid"])
        for a in ray_state.actors().values()
        if "EncodeActor" in a["ActorClassName"] and a["State"] == "ALIVE" and a.get("Pid")
    ]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_cancelled_ray_sync_stops_its_actors_keeps_its_batches_and_the_next_sync_finishes(
    address: str | None, folder: Path, reference: dict[str, Any], tmp_path: Path
) -> None:
    from service.api.app import create_app

    want = reference["catalog"]
    # Blocks of two, so that the cancel lands with most of the folder still to do.
    cat = Catalog(_settings(tmp_path / "home", address, ray_batch_size=2, ray_read_batch=2))
    with (
        LiveServer(create_app(cat.settings, catalog=cat)) as server,
        httpx.Client(base_url=server.url) as http,
    ):
        http.post("/api/v1/sources", json={"name": "imgs", "kind": "local", "config": {"path": str(folder)}})
        job = http.post(
            "/api/v1/sources/imgs/sync", json={"engine": "ray", "address": address or "local"}
        ).json()
        deadline = time.monotonic() + 120
        while job["counts"].get("added", 0) == 0 and job["state"] in ("queued", "running"):
            assert time.monotonic() < deadline, f"the sync committed nothing in time: {job}"
            time.sleep(0.02)
            job = http.get(f"/api/v1/jobs/{job['id']}").json()
        actors = _encoder_actor_pids()
        assert actors, "no encoder actor while the sync runs"
        assert http.delete(f"/api/v1/jobs/{job['id']}").status_code in (200, 202)
        while job["state"] in ("queued", "running"):
            assert time.monotonic() < deadline, f"the cancelled sync did not stop: {job}"
            time.sleep(0.05)
            job = http.get(f"/api/v1/jobs/{job['id']}").json()
        assert job["state"] == "cancelled", job
        kept = job["counts"]["added"]
        assert 0 < kept < len(want), job["counts"]
        # The Ray work stops: the pool's actors exit, and nothing more reaches the index.
        stop_by = time.monotonic() + 30
        while (_encoder_actor_pids() or any(map(_alive, actors))) and time.monotonic() < stop_by:
            time.sleep(0.2)
        assert _encoder_actor_pids() == [] and not any(map(_alive, actors)), (
            "the encoder actors outlived the cancel"
        )
        assert cat.index.count(None) == kept  # the committed batches, kept
        time.sleep(1.0)
        assert cat.index.count(None) == kept
    cat.close()
    # The next sync skips what the cancelled one wrote and finishes the rest, once each (in blocks of
    # the default size: the small ones were for the cancel).
    cat = Catalog(_settings(tmp_path / "home", address))
    nxt = job_public(cat.sync("imgs", engine="ray")).model_dump()
    assert nxt["state"] == "succeeded", nxt
    assert nxt["counts"]["unchanged"] == kept
    assert nxt["counts"]["added"] + kept == len(want)
    assert nxt["counts"]["failed"] == reference["job"].counts["failed"]
    assert cat.index.count(None) == len(want)  # no duplicate points
    _assert_same_catalog(_catalog_of(cat), want)
    cat.close()


def test_an_encoder_actor_killed_mid_run_is_replaced_and_every_asset_lands_once(
    address: str | None, folder: Path, reference: dict[str, Any], tmp_path: Path
) -> None:
    cat = Catalog(_settings(tmp_path / "home", address, ray_batch_size=4))
    cat.add_source("imgs", "local", {"path": str(folder)})
    killed: list[tuple[int, int, int]] = []

    def kill_once(report: Any) -> None:
        if killed or report.done == 0:
            return
        pids = _encoder_actor_pids()
        assert pids, "no live encoder actor to kill"
        os.kill(pids[0], signal.SIGKILL)
        killed.append((pids[0], report.done, report.total))

    job = job_public(cat.sync("imgs", engine="ray", on_progress=kill_once))
    assert killed, "the sync ended before an actor could be killed"
    pid, done_at_kill, total = killed[0]
    assert done_at_kill < total, "the kill came after the last block"
    assert job.state == "succeeded", job.detail
    assert job.counts == reference["job"].counts  # every asset once: none lost, none counted twice
    _assert_same_catalog(_catalog_of(cat), reference["catalog"])
    assert cat.index.count(None) == len(reference["catalog"])
    assert pid not in _encoder_actor_pids()
    cat.close()


def test_a_driver_killed_mid_sync_leaves_a_job_the_next_sync_resumes_to_the_same_catalog(
    address: str | None, folder: Path, reference: dict[str, Any], tmp_path: Path
) -> None:
    if address is None:
        pytest.skip("needs a Ray head the killed driver and the next one both join")
    want = reference["catalog"]
    settings = _settings(tmp_path / "home", address, ray_batch_size=2, ray_read_batch=2)
    cat = Catalog(settings)
    cat.add_source("imgs", "local", {"path": str(folder)})
    cat.close()
    env = dict(
        os.environ,
        LOUPE_HOME=str(settings.home),
        LOUPE_MODEL=OFFLINE_MODEL,
        LOUPE_SYNC__RAY_BATCH_SIZE="2",
        LOUPE_SYNC__RAY_READ_BATCH="2",
        RAY_USAGE_STATS_ENABLED="0",
    )
    env.pop("LOUPE_URL", None)
    cmd = [sys.executable, "-m", "service.cli", "sync", "imgs", "--engine", "ray", "--address", address]
    driver = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    state = StateStore(settings.state_url)
    try:
        committed = _wait_for_commits(state, driver)
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=30)
    finally:
        if driver.poll() is None:
            driver.kill()
    state.close()
    assert 0 < committed < len(want)

    cat = Catalog(_settings(settings.home, address))  # blocks of the default size: the kill is over
    job = job_public(cat.sync("imgs", engine="ray"))
    assert job.state == "succeeded", job.detail
    assert job.counts["unchanged"] >= committed  # what the killed driver wrote is kept, not redone
    assert job.counts["unchanged"] + job.counts["added"] == len(want)
    assert job.counts["failed"] == reference["job"].counts["failed"]
    _assert_same_catalog(_catalog_of(cat), want)
    assert cat.index.count(None) == len(want)  # no duplicate points
    jobs = cat.jobs.list(kind="sync", source="imgs")
    first = jobs[-1]
    assert first.state == "failed" and "gone" in (first.detail or ""), (
        first.detail
    )  # taken over, not left running
    local = job_public(cat.sync("imgs", engine="local"))  # the local engine agrees: nothing left to do
    assert local.counts["unchanged"] == len(want) and local.counts["added"] == 0
    cat.close()


def _wait_for_commits(state: StateStore, driver: subprocess.Popen[bytes], timeout_s: float = 180) -> int:
    from service.jobs.queue import JobQueue

    queue = JobQueue(state)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if driver.poll() is not None:
            err = driver.stderr.read().decode() if driver.stderr else ""
            raise AssertionError(f"the driver ended before it could be killed: {err[-2000:]}")
        jobs = queue.list(kind="sync", source="imgs", limit=1)
        if jobs and (jobs[0].counts or {}).get("added", 0) > 0:
            return int(jobs[0].counts["added"])
        time.sleep(0.02)
    raise AssertionError("the driver committed nothing in time")


# -- bad input: the job fails at once with the reason, and nothing is written -------------------


def test_an_unreachable_address_fails_the_job_at_once(folder: Path, tmp_path: Path) -> None:
    cat = Catalog(_settings(tmp_path / "home", f"127.0.0.1:{free_port()}"))
    cat.add_source("imgs", "local", {"path": str(folder)})
    t0 = time.monotonic()
    job = cat.sync("imgs", engine="ray")
    assert time.monotonic() - t0 < 15
    assert job.state == "failed" and "no Ray cluster answers" in (job.detail or ""), job.detail
    assert cat.index.count(None) == 0
    cat.close()


def test_addresses_that_cannot_work_are_refused_before_a_job_exists(fake_catalog: Any) -> None:
    fake_catalog.add_source("imgs", "local", {"path": str(Path(__file__).parent)})
    with pytest.raises(InvalidConfig, match="Ray Client"):
        fake_catalog.sync("imgs", engine="ray", address="ray://127.0.0.1:10001")
    with pytest.raises(InvalidConfig, match="not HOST:PORT"):
        fake_catalog.submit_sync("imgs", engine="ray", address="no-port")
    # A server starts no Ray of its own unless asked to (address "local").
    with pytest.raises(InvalidQuery, match="engine ray needs a Ray cluster"):
        fake_catalog.submit_sync("imgs", engine="ray")
    with pytest.raises(InvalidQuery, match="add engine=ray"):
        fake_catalog.submit_sync("imgs", address="127.0.0.1:6379")
    assert fake_catalog.jobs.list(kind="sync") == []


def test_gpus_asked_of_a_cluster_without_any_fail_the_job_with_the_reason(
    address: str | None, folder: Path, tmp_path: Path
) -> None:
    cat = Catalog(_settings(tmp_path / "home", address, ray_num_gpus=1))
    cat.add_source("imgs", "local", {"path": str(folder)})
    job = cat.sync("imgs", engine="ray")
    assert job.state == "failed" and "0 GPUs" in (job.detail or ""), job.detail
    assert cat.index.count(None) == 0
    cat.close()


def test_a_model_that_cannot_load_on_a_worker_fails_the_job_with_the_reason(
    address: str | None, folder: Path, tmp_path: Path
) -> None:
    from tests.fakes import FakeEncoder

    # The driver runs with an encoder of its own; the workers load LOUPE_MODEL, which does not exist.
    settings = _settings(tmp_path / "home", address).model_copy(update={"model": "no-such-model"})
    cat = Catalog(settings, encoder=FakeEncoder())
    cat.add_source("imgs", "local", {"path": str(folder)})
    t0 = time.monotonic()
    job = cat.sync("imgs", engine="ray")
    assert job.state == "failed" and "unknown model 'no-such-model'" in (job.detail or ""), job.detail
    assert time.monotonic() - t0 < 60
    assert cat.index.count(None) == 0
    cat.close()


def _no_docker() -> str | None:
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return None
    except Exception as exc:  # docker missing, engine absent or unreachable
        return f"no Docker engine for a Qdrant server container ({type(exc).__name__}: {exc})"


def test_with_a_qdrant_server_the_workers_write_and_the_catalog_is_the_local_one(
    address: str | None, folder: Path, reference: dict[str, Any], tmp_path: Path
) -> None:
    reason = _no_docker()
    if reason is not None:
        pytest.skip(reason)
    from testcontainers.qdrant import QdrantContainer

    from tests.integration.index.test_congruence import QDRANT_IMAGE

    with QdrantContainer(image=QDRANT_IMAGE) as qdrant:
        settings = _settings(tmp_path / "home", address).model_copy(
            update={"qdrant_url": f"http://{qdrant.rest_host_address}"}
        )
        cat = Catalog(settings)
        cat.add_source("imgs", "local", {"path": str(folder)})
        job = job_public(cat.sync("imgs", engine="ray"))
        assert job.state == "succeeded", job.detail
        assert job.counts == reference["job"].counts
        assert job.timings["upsert"] > 0  # the actors' writes, timed where they ran
        _assert_same_catalog(_catalog_of(cat), reference["catalog"])
        cat.close()
