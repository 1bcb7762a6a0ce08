"""The map through the REST API on a real index: a finished signal renews the colour columns and leaves
the points (and the reduction) alone; a sync that adds assets lays the map out again.

Real parts throughout: qdrant-edge, a local source synced with the FakeEncoder (the model is beside
the point), the uniqueness signal run by the job runner, UMAP; the projector's own counter of
reductions is the evidence that none ran.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from service.api.routes.projector import decode_frame
from service.catalog.catalog import Catalog
from service.catalog.projector import Projector
from service.config import Settings
from service.synth import write_dataset
from tests.conftest import LiveServer
from tests.fakes import FakeEncoder
from tests.jobs import wait_job as wait_ended

N = 60


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("map") / "shapes"
    write_dataset(root, N, seed=2, size=48, edge_cases=False, image_format="png")
    settings = Settings(home=tmp_path_factory.mktemp("home"), _env_file=None)  # type: ignore[call-arg]
    catalog = Catalog(settings, encoder=FakeEncoder())
    catalog.add_source("shapes", "local", {"path": str(root)})
    assert catalog.sync("shapes").state == "succeeded"
    from service.api.app import create_app

    app = create_app(settings, catalog=catalog)
    with (
        LiveServer(app) as server,
        httpx.Client(base_url=f"{server.url}/api/v1", timeout=60) as client,
    ):
        yield {"client": client, "catalog": catalog, "app": app, "root": root, "settings": settings}
    catalog.close()


def settled(client: httpx.Client) -> dict[str, Any]:
    """The status once nothing is being computed (UMAP's first fit compiles: minutes under load)."""
    deadline = time.monotonic() + 600
    while True:
        st = client.get("/projector").json()
        if st["state"] in ("ready", "failed"):
            return st
        assert time.monotonic() < deadline, st
        time.sleep(0.05)


wait_job = functools.partial(wait_ended, timeout_s=300, succeeded=True)


def test_a_finished_signal_recolours_the_map_and_a_sync_lays_it_out_again(world: dict[str, Any]) -> None:
    client: httpx.Client = world["client"]
    projector: Projector = world["app"].state.projector
    before = settled(client)
    assert before["state"] == "ready" and before["count"] == N and before["method"] == "umap"
    assert "signals.uniqueness" not in {c["field"] for c in before["colors"]}
    points = client.get("/projector/points").content
    reductions = projector.reductions
    assert reductions == 1

    resp = client.post("/signals/uniqueness", json={})
    assert resp.status_code == 202, resp.text
    wait_job(client, resp.json())
    st = client.get("/projector").json()
    assert st["stale"] and st["available"]  # the columns are being re-read; the old ones still serve
    after = settled(client)
    assert after["state"] == "ready" and not after["stale"]
    assert "signals.uniqueness" in {c["field"] for c in after["colors"]}
    assert after["colors_version"] != before["colors_version"]
    # The same points, byte for byte, and no reduction ran.
    for name in ("version", "computed_at", "seconds", "count", "view"):
        assert after[name] == before[name], name
    assert client.get("/projector/points").content == points
    assert projector.reductions == reductions

    # The new column holds each asset's stored score, in layout order.
    frame = client.get("/projector/colors", params={"field": "signals.uniqueness"})
    assert frame.status_code == 200
    header, arrays = decode_frame(frame.content)
    assert header["version"] == after["version"] and header["colors_version"] == after["colors_version"]
    _, pts = decode_frame(points)
    ids = [str(uuid.UUID(bytes=row.tobytes())) for row in pts["ids"].reshape(-1, 16)]
    stored = {r.id: r.payload["signals"]["uniqueness"] for r in world["catalog"].index.retrieve(ids)}
    np.testing.assert_allclose(
        arrays["values"] + header["offset"], [stored[i] for i in ids], rtol=1e-6, atol=1e-6
    )
    # A page holding the old colours gets the new ones, not a 304 on the old tag.
    old_tag = f'"{before["version"]}-{before["colors_version"]}-' + frame.headers["etag"].split("-")[-1]
    again = client.get(
        "/projector/colors", params={"field": "signals.uniqueness"}, headers={"If-None-Match": old_tag}
    )
    assert again.status_code == 200
    same = client.get(
        "/projector/colors",
        params={"field": "signals.uniqueness"},
        headers={"If-None-Match": frame.headers["etag"]},
    )
    assert same.status_code == 304

    # A sync that adds assets moves the points: a new reduction.
    write_dataset(world["root"] / "more", 12, seed=9, size=48, edge_cases=False, image_format="png")
    wait_job(client, client.post("/sources/shapes/sync", json={}).json())
    grown = settled(client)
    assert grown["state"] == "ready" and grown["count"] == N + 12 and grown["version"] != before["version"]
    assert projector.reductions == reductions + 1
    assert "signals.uniqueness" in {c["field"] for c in grown["colors"]}


def test_a_restart_keeps_the_points_and_the_renewed_colours(world: dict[str, Any]) -> None:
    catalog: Catalog = world["catalog"]
    served = settled(world["client"])
    again = Projector(
        index=catalog.index, state=catalog.state, directory=world["settings"].home / "projector"
    )
    st = again.status()
    assert st["state"] == "ready" and not st["stale"] and again.reductions == 0
    assert (st["version"], st["colors_version"]) == (served["version"], served["colors_version"])
    assert "signals.uniqueness" in {c["field"] for c in st["colors"]}
    again.close()
