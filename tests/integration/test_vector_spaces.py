"""Vector spaces through the REST API, on a catalog of real images encoded by loupe-tiny.

What the issue checks: imported vectors make a raw-vector query return those assets in
exact order of distance; a search by example in a user space ranks by the imported vectors,
not the encoder's; a wrong-dimension file is refused whole. And every kind of bad input.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from service.config import OFFLINE_MODEL, Settings
from tests.conftest import LiveServer
from tests.images import gradient, solid, write_zoo

DIM = 5


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    from service.api.app import create_app
    from service.catalog.catalog import Catalog

    home = tmp_path_factory.mktemp("spaces")
    settings = Settings(home=home / "home", model=OFFLINE_MODEL, _env_file=None)  # type: ignore[call-arg]
    photos = home / "photos"
    write_zoo(photos)
    for i in range(6):
        gradient(20 + i).save(photos / f"grad{i}.png")
    solid((250, 250, 250)).save(photos / "white.png")
    catalog = Catalog(settings)
    try:
        with LiveServer(create_app(settings, catalog=catalog)) as live:
            with httpx.Client(base_url=f"{live.url}/api/v1", timeout=60) as c:
                body = {"name": "photos", "kind": "local", "config": {"path": str(photos)}}
                assert c.post("/sources", json=body).status_code == 201
                job = wait(c, c.post("/sources/photos/sync", json={}).json())
                assert job["state"] == "succeeded", job
            yield live
    finally:
        catalog.close()


@pytest.fixture
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{server.url}/api/v1", timeout=60) as c:
        yield c


def wait(client: httpx.Client, job: dict) -> dict:
    deadline = time.monotonic() + 60
    while job["state"] in ("queued", "running"):
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
        job = client.get(f"/jobs/{job['id']}").json()
    return job


def assets(client: httpx.Client) -> list[dict]:
    return client.get("/assets", params={"limit": 100}).json()["data"]


def space(client: httpx.Client, name: str, *, dim: int = DIM, distance: str = "cosine") -> dict:
    resp = client.post("/vector-spaces", json={"name": name, "dim": dim, "distance": distance})
    assert resp.status_code == 201, resp.text
    return resp.json()


def jsonl(rows: list[dict]) -> bytes:
    return "\n".join(json.dumps(r) for r in rows).encode()


def upload(client: httpx.Client, name: str, data: bytes, filename: str) -> httpx.Response:
    return client.post(f"/vector-spaces/{name}/vectors", files={"file": (filename, data)})


def imported(client: httpx.Client, name: str, data: bytes, filename: str = "v.jsonl") -> dict:
    resp = upload(client, name, data, filename)
    assert resp.status_code == 202, resp.text
    assert resp.json()["kind"] == "vector_import"
    return wait(client, resp.json())


def listed(client: httpx.Client, name: str) -> dict:
    return next(s for s in client.get("/vector-spaces").json()["data"] if s["name"] == name)


def test_raw_vector_query_returns_imported_assets_in_exact_order(client: httpx.Client) -> None:
    space(client, "exact")
    chosen = assets(client)[:6]
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(6, DIM))
    rows = [
        {"source": a["source"], "key": a["key"], "vector": v.tolist()}
        for a, v in zip(chosen, vectors, strict=True)
    ]
    job = imported(client, "exact", jsonl(rows))
    assert job["state"] == "succeeded", job
    assert job["counts"] == {"received": 6, "imported": 6, "unknown_asset": 0, "invalid": 0}
    query = rng.normal(size=DIM)
    hits = client.post("/search", json={"vector": query.tolist(), "space": "exact", "limit": 50}).json()[
        "hits"
    ]
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    cosines = unit @ (query / np.linalg.norm(query))
    order = np.argsort(-cosines)
    # Only the assets with a vector in the space, in numpy's order, with numpy's cosines.
    assert [h["id"] for h in hits] == [chosen[i]["id"] for i in order]
    np.testing.assert_allclose([h["score"] for h in hits], cosines[order], atol=1e-5)
    assert all("exact" in h["asset"]["vectors"] for h in hits)
    info = listed(client, "exact")
    assert (info["count"], info["dim"], info["distance"], info["encoder"]) == (6, DIM, "cosine", False)


def test_search_by_example_ranks_by_the_imported_vectors(client: httpx.Client) -> None:
    space(client, "mine", distance="euclid")
    everything = assets(client)
    anchor = everything[0]
    encoder_order = [
        h["id"] for h in client.post("/search", json={"like": [anchor["id"]], "limit": 50}).json()["hits"]
    ]
    # Imported vectors that put the encoder's ranking backwards: the farthest there is nearest here.
    ranked = [anchor["id"], *reversed(encoder_order)]
    by_id = {a["id"]: a for a in everything}
    rows = [{"asset_id": pid, "vector": [float(n), 0.0, 0.0, 0.0, 1.0]} for n, pid in enumerate(ranked)]
    assert imported(client, "mine", jsonl(rows))["state"] == "succeeded"
    hits = client.post("/search", json={"like": [anchor["id"]], "space": "mine", "limit": 50}).json()["hits"]
    assert [h["id"] for h in hits] == ranked[1:]
    assert [h["score"] for h in hits] == pytest.approx([float(n) for n in range(1, len(ranked))], abs=1e-4)
    assert [h["id"] for h in hits] != encoder_order
    assert by_id[hits[0]["id"]]["key"]  # real assets, with their payload


def test_a_wrong_dimension_file_is_refused_whole(client: httpx.Client) -> None:
    space(client, "strict")
    before = len(client.get("/jobs", params={"kind": "vector_import", "limit": 500}).json()["data"])
    chosen = assets(client)[:4]
    rows = [{"asset_id": a["id"], "vector": [1.0] * DIM} for a in chosen]
    rows[2]["vector"] = [1.0] * (DIM + 1)
    resp = upload(client, "strict", jsonl(rows), "v.jsonl")
    assert resp.status_code == 422
    assert resp.json()["detail"].startswith("line 3: vector: has 6 components; the space has dimension 5")
    # Nothing was written, and no job started.
    assert listed(client, "strict")["count"] == 0
    after = client.get("/jobs", params={"kind": "vector_import", "limit": 500}).json()["data"]
    assert len(after) == before


@pytest.mark.parametrize(
    ("vector", "where", "says"),
    [
        ("NaN", "line 2: vector", "NaN or infinite"),
        ("1e999", "line 2: vector", "NaN or infinite"),
        ("zero", "line 2: vector", "all zeros"),
        ("text", "line 2: vector", "list of numbers"),
    ],
)
def test_bad_components_refuse_the_file(client: httpx.Client, vector: str, where: str, says: str) -> None:
    name = f"bad-{vector.lower().replace('.', '')}"
    space(client, name)
    chosen = assets(client)[:3]
    lines = [json.dumps({"asset_id": a["id"], "vector": [0.5] * DIM}) for a in chosen]
    bad = {"NaN": "[NaN, 1, 1, 1, 1]", "1e999": "[1e999, 1, 1, 1, 1]", "zero": "[0, 0, 0, 0, 0]"}
    lines[1] = lines[1].replace("[0.5, 0.5, 0.5, 0.5, 0.5]", bad.get(vector, '"abc"'))
    resp = upload(client, name, "\n".join(lines).encode(), "v.jsonl")
    assert resp.status_code == 422, resp.text
    assert resp.json()["detail"].startswith(where) and says in resp.json()["detail"]
    assert listed(client, name)["count"] == 0


def test_zero_vectors_are_fine_under_dot(client: httpx.Client) -> None:
    space(client, "dots", distance="dot")
    a = assets(client)[0]
    job = imported(client, "dots", jsonl([{"asset_id": a["id"], "vector": [0.0] * DIM}]))
    assert job["counts"]["imported"] == 1


def test_duplicates_and_unknown_ids(client: httpx.Client) -> None:
    space(client, "ids")
    a, b = assets(client)[:2]
    twice = [{"asset_id": a["id"], "vector": [1.0] * DIM}, {"asset_id": a["id"], "vector": [2.0] * DIM}]
    resp = upload(client, "ids", jsonl(twice), "v.jsonl")
    assert resp.status_code == 422 and resp.json()["detail"].startswith("line 2: asset")
    unknown = "00000000-0000-4000-8000-000000000000"
    rows = [
        {"asset_id": a["id"], "vector": [1.0] * DIM},
        {"asset_id": unknown, "vector": [1.0] * DIM},
        {"source": "photos", "key": "no/such.png", "vector": [1.0] * DIM},
        {"source": b["source"], "key": b["key"], "vector": [1.0] * DIM},
    ]
    job = imported(client, "ids", jsonl(rows))
    assert job["state"] == "succeeded"
    assert job["counts"] == {"received": 4, "imported": 2, "unknown_asset": 2, "invalid": 0}
    assert [e["key"] for e in job["errors"]] == ["line 2", "line 3"]
    assert unknown in job["errors"][0]["reason"]
    resp = upload(client, "ids", jsonl([{"asset_id": "not-a-uuid", "vector": [1.0] * DIM}]), "v.jsonl")
    assert resp.status_code == 422 and resp.json()["detail"].startswith("line 1: asset_id")


def test_parquet_and_npz_imports_and_reimports_replace(client: httpx.Client) -> None:
    space(client, "files", distance="dot")
    chosen = assets(client)[:4]
    vectors = np.arange(4 * DIM, dtype=np.float32).reshape(4, DIM) + 1
    table = pa.table(
        {
            "source": [a["source"] for a in chosen],
            "key": [a["key"] for a in chosen],
            "vector": pa.array(list(vectors), type=pa.list_(pa.float32(), DIM)),
        }
    )
    buf = io.BytesIO()
    pq.write_table(table, buf)
    assert imported(client, "files", buf.getvalue(), "v.parquet")["counts"]["imported"] == 4
    query = [1.0, 0.0, 0.0, 0.0, 0.0]
    hits = client.post("/search", json={"vector": query, "space": "files"}).json()["hits"]
    assert [h["score"] for h in hits] == pytest.approx(sorted(vectors[:, 0].tolist(), reverse=True))
    # An .npz replaces the first asset's vector; the others keep theirs.
    npz = io.BytesIO()
    np.savez(npz, ids=np.array([chosen[0]["id"]]), vectors=np.array([[100.0, 0, 0, 0, 0]]))
    assert imported(client, "files", npz.getvalue(), "v.npz")["counts"]["imported"] == 1
    hits = client.post("/search", json={"vector": query, "space": "files"}).json()["hits"]
    assert hits[0]["id"] == chosen[0]["id"] and hits[0]["score"] == pytest.approx(100.0)
    assert len(hits) == 4
    bad = io.BytesIO()
    pq.write_table(pa.table({"asset_id": [chosen[0]["id"]], "vector": [[1.0, 2.0]]}), bad)
    resp = upload(client, "files", bad.getvalue(), "v.parquet")
    assert resp.status_code == 422 and resp.json()["detail"].startswith("row 1: vector: has 2 components")


def test_spaces_refuse_what_only_the_encoder_can_do(client: httpx.Client) -> None:
    space(client, "other")
    a = assets(client)[0]
    resp = client.post("/search", json={"text": "a red square", "space": "other"})
    assert resp.status_code == 422 and "encoder's space" in resp.json()["detail"]
    resp = client.post("/search", json={"like": [a["id"]], "space": "other"})
    assert resp.status_code == 422 and resp.json()["detail"].startswith("like[0]: asset")
    resp = client.post("/search", json={"vector": [1.0, 2.0], "space": "other"})
    assert resp.status_code == 422 and "dimension 5" in resp.json()["detail"]
    resp = client.post("/search", json={"vector": [1.0] * DIM, "space": "nowhere"})
    assert resp.status_code == 422 and resp.json()["detail"].startswith("space: no vector space")
    resp = client.post("/vector-spaces", json={"name": "other", "dim": 3, "distance": "dot"})
    assert resp.status_code == 409
    encoder = next(s for s in client.get("/vector-spaces").json()["data"] if s["encoder"])
    assert encoder["count"] == len(assets(client)) and encoder["model"] == OFFLINE_MODEL
    resp = client.delete(f"/vector-spaces/{encoder['name']}")
    assert resp.status_code == 409 and "encoder's space" in resp.json()["detail"]
    resp = upload(client, encoder["name"], jsonl([{"asset_id": a["id"], "vector": [1.0] * 64}]), "v.jsonl")
    assert resp.status_code == 422
    assert upload(client, "other", b"{}", "v.csv").status_code == 415
    # Text still works in the encoder's space, named or not.
    assert client.post("/search", json={"text": "red", "space": encoder["name"]}).status_code == 200


def test_removing_a_space_takes_its_vectors_away(client: httpx.Client) -> None:
    space(client, "gone")
    a = assets(client)[0]
    imported(client, "gone", jsonl([{"asset_id": a["id"], "vector": [1.0] * DIM}]))
    assert "gone" in client.get(f"/assets/{a['id']}").json()["vectors"]
    assert client.delete("/vector-spaces/gone").status_code == 204
    assert "gone" not in client.get(f"/assets/{a['id']}").json()["vectors"]
    assert client.delete("/vector-spaces/gone").status_code == 404
    assert client.post("/search", json={"vector": [1.0] * DIM, "space": "gone"}).status_code == 422


def test_the_map_lays_out_a_user_space(client: httpx.Client) -> None:
    from service.api.routes.projector import decode_frame

    space(client, "mapped", dim=3, distance="dot")
    chosen = assets(client)[:5]
    rows = [{"asset_id": a["id"], "vector": [float(n), float(n % 2), 1.0]} for n, a in enumerate(chosen)]
    imported(client, "mapped", jsonl(rows))
    deadline = time.monotonic() + 60
    status = client.get("/projector", params={"space": "mapped"}).json()
    while not status["available"] or status["state"] != "ready":
        assert time.monotonic() < deadline, status
        time.sleep(0.1)
        status = client.get("/projector", params={"space": "mapped"}).json()
    assert status["space"] == "mapped" and status["count"] == 5
    header, arrays = decode_frame(client.get("/projector/points", params={"space": "mapped"}).content)
    import uuid

    ids = {
        str(uuid.UUID(bytes=arrays["ids"][i * 16 : (i + 1) * 16].tobytes())) for i in range(header["count"])
    }
    assert ids == {a["id"] for a in chosen}
    # The encoder's map still holds every asset.
    assert client.get("/projector").status_code == 200
    resp = client.get("/projector", params={"space": "nowhere"})
    assert resp.status_code == 422 and resp.json()["detail"].startswith("space:")
