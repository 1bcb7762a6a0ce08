"""The SQL connector's vector column: a table's embeddings land in a user space at every sync."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from service.config import OFFLINE_MODEL, Settings
from tests.conftest import LiveServer
from tests.images import gradient

DIM = 4


@pytest.fixture
def table(tmp_path: Path) -> Path:
    images = tmp_path / "images"
    images.mkdir()
    db = tmp_path / "rows.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE shots (id TEXT PRIMARY KEY, path TEXT, site TEXT, emb TEXT)")
        for i in range(5):
            gradient(40 + i).save(images / f"{i}.png")
            vector = json.dumps([float(i), 1.0, 0.0, 0.0]) if i != 4 else json.dumps([1.0, 2.0])
            conn.execute("INSERT INTO shots VALUES (?, ?, ?, ?)", (f"s{i}", f"{i}.png", "a", vector))
    return db


@pytest.fixture
def client(tmp_path: Path) -> Iterator[httpx.Client]:
    from service.api.app import create_app
    from service.catalog.catalog import Catalog

    settings = Settings(home=tmp_path / "home", model=OFFLINE_MODEL, _env_file=None)  # type: ignore[call-arg]
    catalog = Catalog(settings)
    try:
        with LiveServer(create_app(settings, catalog=catalog)) as live:
            with httpx.Client(base_url=f"{live.url}/api/v1", timeout=60) as c:
                yield c
    finally:
        catalog.close()


def sync(client: httpx.Client) -> dict:
    job = client.post("/sources/shots/sync", json={}).json()
    deadline = time.monotonic() + 60
    while job["state"] in ("queued", "running"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
        job = client.get(f"/jobs/{job['id']}").json()
    return job


def test_a_vector_column_fills_its_space_at_every_sync(client: httpx.Client, table: Path) -> None:
    assert (
        client.post("/vector-spaces", json={"name": "emb", "dim": DIM, "distance": "dot"}).status_code == 201
    )
    config = {"url": f"sqlite:///{table}", "table": "shots", "key": "id", "uri_column": "path"}
    config["root"] = str(table.parent / "images")
    config.update(vector_column="emb", vector_space="emb")
    resp = client.post("/sources", json={"name": "shots", "kind": "sql", "config": config})
    assert resp.status_code == 201, resp.text
    job = sync(client)
    # Every image syncs; the row whose vector has the wrong length is reported by its key.
    assert job["counts"]["added"] == 5 and job["error_count"] == 1, json.dumps(job)
    assert job["errors"][0]["key"] == "s4" and "dimension 4" in job["errors"][0]["reason"]
    hits = client.post("/search", json={"vector": [1.0, 0.0, 0.0, 0.0], "space": "emb"}).json()["hits"]
    assert [h["asset"]["key"] for h in hits] == ["s3", "s2", "s1", "s0"]
    assert [h["score"] for h in hits] == pytest.approx([3.0, 2.0, 1.0, 0.0])
    assert all("emb" not in h["asset"]["metadata"] for h in hits)  # the column is not metadata
    # A changed vector is a changed row: the next sync writes it, fresh (not stale).
    with sqlite3.connect(table) as conn:
        conn.execute("UPDATE shots SET emb = ? WHERE id = 's0'", (json.dumps([10.0, 0, 0, 0]),))
    job = sync(client)
    assert job["counts"]["updated"] == 1 and job["counts"]["unchanged"] == 4
    hits = client.post("/search", json={"vector": [1.0, 0.0, 0.0, 0.0], "space": "emb"}).json()["hits"]
    assert hits[0]["asset"]["key"] == "s0" and hits[0]["score"] == pytest.approx(10.0)
    space = next(s for s in client.get("/vector-spaces").json()["data"] if s["name"] == "emb")
    assert (space["count"], space["stale"]) == (4, 0)
    np.testing.assert_allclose(hits[1]["score"], 3.0)


def test_the_vector_column_needs_its_space(client: httpx.Client, table: Path) -> None:
    config = {"url": f"sqlite:///{table}", "table": "shots", "key": "id", "uri_column": "path"}
    config["root"] = str(table.parent / "images")
    resp = client.post(
        "/sources", json={"name": "shots", "kind": "sql", "config": {**config, "vector_column": "emb"}}
    )
    assert resp.status_code == 422 and "vector_space" in resp.json()["detail"]
    config.update(vector_column="nope", vector_space="emb")
    resp = client.post("/sources", json={"name": "shots", "kind": "sql", "config": config})
    assert resp.status_code == 422 and "'nope'" in resp.json()["detail"]
