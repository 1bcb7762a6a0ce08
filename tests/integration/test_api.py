"""The REST API end to end through real HTTP: sources, syncs, assets, search, facets, errors."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import httpx
import pytest

from tests.images import gradient, solid, write_bad, write_zoo
from tests.jobs import wait_job


def sync(client: httpx.Client, name: str, **body: object) -> dict:
    resp = client.post(f"/api/v1/sources/{name}/sync", json=body)
    assert resp.status_code == 202, resp.text
    return wait_job(client, resp.json())


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    write_zoo(root)
    solid((200, 30, 30)).save(root / "reddish.jpg")
    solid((120, 40, 40)).save(root / "darkred.jpg")
    (root / "sub").mkdir()
    gradient(11).save(root / "sub" / "g.png")
    (root / "red.jpg.json").write_text(json.dumps({"label": "bike", "score": 0.9, "site": "north"}))
    (root / "green.png.json").write_text(json.dumps({"label": "unicycle", "score": 0.2, "site": "south"}))
    write_bad(root / "bad")
    return root


@pytest.fixture
def client(live_server) -> httpx.Client:
    with httpx.Client(base_url=live_server.url, timeout=30) as c:
        yield c


@pytest.fixture
def synced(client: httpx.Client, photos: Path) -> dict:
    resp = client.post(
        "/api/v1/sources", json={"name": "photos", "kind": "local", "config": {"path": str(photos)}}
    )
    assert resp.status_code == 201, resp.text
    return sync(client, "photos")


def assets(client: httpx.Client, flt: dict | None = None, limit: int = 3) -> list[dict]:
    out, cursor = [], None
    while True:
        params: dict = {"limit": limit}
        if flt is not None:
            params["filter"] = json.dumps(flt)
        if cursor:
            params["cursor"] = cursor
        page = client.get("/api/v1/assets", params=params).json()
        out.extend(page["data"])
        cursor = page["next_cursor"]
        if cursor is None:
            return out


def by_key(client: httpx.Client) -> dict[str, dict]:
    return {a["key"]: a for a in assets(client, limit=100)}


def test_sync_reports_bad_files_and_catalogs_the_rest(synced: dict, client: httpx.Client):
    assert synced["state"] == "succeeded", synced
    assert synced["counts"]["added"] == 13
    assert synced["counts"]["failed"] == 3
    reasons = {e["key"]: e["reason"] for e in synced["errors"]}
    assert "truncated" in reasons["bad/truncated.jpg"]
    assert "not an image" in reasons["bad/notimage.png"]
    assert "bomb" in reasons["bad/bomb.png"]
    assert synced["progress"] == 1.0
    keyed = by_key(client)
    assert len(keyed) == 13
    red = keyed["red.jpg"]
    assert red["metadata"]["label"] == "bike"
    assert keyed["rotated.jpg"]["width"] == 40 and keyed["rotated.jpg"]["height"] == 80
    assert keyed["rotated.jpg"]["metadata"]["camera_make"] == "LoupeCam"


def test_cursor_pagination_covers_everything_once(synced, client):
    pages = assets(client, limit=5)
    ids = [a["id"] for a in pages]
    assert len(ids) == len(set(ids)) == 13


def test_filters_on_metadata_and_builtins(synced, client):
    assert {a["key"] for a in assets(client, {"label": "bike"})} == {"red.jpg"}
    assert {a["key"] for a in assets(client, {"score": {"gte": 0.5}})} == {"red.jpg"}
    pngs = assets(client, {"media_type": "image/png"})
    assert {a["key"] for a in pngs} == {"green.png", "palette.png", "deep16.png", "sub/g.png"}
    both = assets(client, {"or": [{"label": "bike"}, {"meta.site": "south"}]})
    assert {a["key"] for a in both} == {"red.jpg", "green.png"}
    assert (
        client.get(
            "/api/v1/assets/count", params={"filter": json.dumps({"not": {"label": {"exists": True}}})}
        ).json()["count"]
        == 11
    )


def test_bad_filter_is_422_naming_the_path(synced, client):
    resp = client.post(
        "/api/v1/search", json={"like": [], "text": "x", "filter": {"and": [{"width": {"gte": "wide"}}]}}
    )
    assert resp.status_code == 422
    body = resp.json()
    assert body["error"] == "InvalidQuery"
    assert "and[0].width" in body["detail"]
    resp = client.get("/api/v1/assets", params={"filter": "{not json"})
    assert resp.status_code == 422 and "filter" in resp.json()["detail"]


def test_search_like_and_unlike(synced, client):
    keyed = by_key(client)
    red = keyed["red.jpg"]["id"]
    plain = client.post("/api/v1/search", json={"like": [red], "limit": 20}).json()["hits"]
    order = [h["asset"]["key"] for h in plain]
    assert order[:2] == ["reddish.jpg", "darkred.jpg"]  # nearest colour layouts first
    assert red not in [h["id"] for h in plain]  # the example itself is not a result
    reddish = keyed["reddish.jpg"]["id"]
    body = {"like": [red], "unlike": [reddish], "limit": 20}
    steered = [h["asset"]["key"] for h in client.post("/api/v1/search", json=body).json()["hits"]]
    assert "reddish.jpg" not in steered  # a negative example is not a result either
    # darkred is nearer the negative than the positive: it drops from 2nd place.
    assert steered.index("darkred.jpg") >= 3, steered


def test_search_with_filter_and_offset(synced, client):
    red = by_key(client)["red.jpg"]["id"]
    body = {"like": [red], "filter": {"media_type": "image/png"}, "limit": 2}
    first = client.post("/api/v1/search", json=body).json()
    assert all(h["asset"]["media_type"] == "image/png" for h in first["hits"])
    assert first["next_offset"] == 2
    second = client.post("/api/v1/search", json=body | {"offset": 2}).json()
    assert {h["id"] for h in first["hits"]}.isdisjoint({h["id"] for h in second["hits"]})
    assert second["next_offset"] is None


def test_search_by_uploaded_image(synced, client, photos):
    data = (photos / "blue.webp").read_bytes()
    resp = client.post(
        "/api/v1/search/image", files=[("images", ("q.webp", data, "image/webp"))], data={"limit": "1"}
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["hits"][0]["asset"]["key"] == "blue.webp"


def test_upload_and_limit_bounds(synced, client, fake_catalog):
    fake_catalog.settings.max_upload_bytes = 1000
    big = os.urandom(2000)
    resp = client.post("/api/v1/search/image", files=[("images", ("q.jpg", big, "image/jpeg"))])
    assert resp.status_code == 413 and resp.json()["error"] == "PayloadTooLarge"
    resp = client.post("/api/v1/search", json={"text": "x", "limit": 5000})
    assert resp.status_code == 422 and "limit" in resp.json()["detail"]
    resp = client.post("/api/v1/search/image", files=[("images", ("q.txt", b"hello", "image/png"))])
    assert resp.status_code == 422 and "images[0]" in resp.json()["detail"]


def test_content_and_thumbnail(synced, client, photos):
    asset = by_key(client)["grad.tiff"]
    content = client.get(f"/api/v1/assets/{asset['id']}/content")
    assert content.content == (photos / "grad.tiff").read_bytes()
    assert content.headers["content-type"] == "image/tiff"
    thumb = client.get(f"/api/v1/assets/{asset['id']}/thumbnail", params={"size": 32})
    assert thumb.headers["content-type"] == "image/jpeg" and thumb.content[:2] == b"\xff\xd8"


def test_facets(synced, client):
    resp = client.get("/api/v1/facets/media_type")
    counts = {v["value"]: v["count"] for v in resp.json()["values"]}
    assert counts["image/png"] == 4 and counts["image/jpeg"] == 5
    site = client.get("/api/v1/facets/site").json()["values"]
    assert {v["value"]: v["count"] for v in site} == {"north": 1, "south": 1}


def test_incremental_resync(synced, client, photos):
    again = sync(client, "photos")
    assert again["counts"] == {
        "seen": 16,
        "added": 0,
        "updated": 0,
        "unchanged": 13,
        "missing": 0,
        "failed": 3,
        "deleted": 0,
        "restored": 0,
    }
    solid((0, 0, 0)).save(photos / "green.png")
    (photos / "reddish.jpg").unlink()
    third = sync(client, "photos")
    assert third["counts"]["updated"] == 1 and third["counts"]["missing"] == 1
    keyed = by_key(client)
    assert keyed["reddish.jpg"]["status"] == "missing"
    assert keyed["green.png"]["metadata"]["label"] == "unicycle"
    red = keyed["red.jpg"]["id"]
    hits = client.post("/api/v1/search", json={"like": [red], "limit": 20}).json()["hits"]
    assert "reddish.jpg" not in {h["asset"]["key"] for h in hits}  # missing assets are not results
    solid((200, 30, 30)).save(photos / "reddish.jpg")
    assert sync(client, "photos")["counts"]["added"] == 0  # same id comes back
    (photos / "reddish.jpg").unlink()
    pruned = sync(client, "photos", prune=True)
    assert pruned["state"] == "succeeded"
    assert "reddish.jpg" not in by_key(client)


def test_source_errors(client, photos, live_server):
    ok = client.post("/api/v1/sources", json={"name": "p", "kind": "local", "config": {"path": str(photos)}})
    assert ok.status_code == 201
    dup = client.post("/api/v1/sources", json={"name": "p", "kind": "local", "config": {"path": str(photos)}})
    assert dup.status_code == 409 and dup.json()["error"] == "SourceExists"
    bad = client.post(
        "/api/v1/sources", json={"name": "q", "kind": "local", "config": {"path": str(photos), "bukket": 1}}
    )
    assert bad.status_code == 422 and "bukket" in bad.json()["detail"]
    gone = client.post(
        "/api/v1/sources", json={"name": "q", "kind": "local", "config": {"path": "/nonexistent/x"}}
    )
    # The user's input is wrong, no upstream failed: a 422 that names the path.
    assert gone.status_code == 422 and "/nonexistent/x" in gone.json()["detail"], gone.text
    assert "does not exist" in gone.json()["detail"]
    kind = client.post("/api/v1/sources", json={"name": "q", "kind": "ftp", "config": {}})
    assert kind.status_code == 422 and "valid kinds: local, s3, sql" in kind.json()["detail"]
    assert client.get("/api/v1/sources/nope").status_code == 404
    assert client.post("/api/v1/sources/nope/sync").status_code == 404
    assert client.get("/api/v1/jobs/nope").json()["error"] == "JobNotFound"
    assert client.get("/api/v1/assets/nope").status_code == 404
    malformed = client.post("/api/v1/search", content=b"{", headers={"content-type": "application/json"})
    assert malformed.status_code == 400 and malformed.json()["error"] == "MalformedRequest"


def test_remove_source_deletes_its_assets(synced, client):
    assert client.delete("/api/v1/sources/photos").status_code == 204
    assert assets(client) == []
    assert client.get("/api/v1/sources").json()["data"] == []


ASSET_FIELDS = {"id", "source", "key", "uri", "media_type", "size_bytes", "width", "height", "modified_at"}
ASSET_FIELDS |= {"synced_at", "status", "metadata", "exports"}
WAVE_2_FIELDS = {"labels", "evals", "signals", "selections", "vectors"}  # DESIGN.md: added, never renamed


def has_asset_shape(asset: dict) -> bool:
    return ASSET_FIELDS <= set(asset) and set(asset) - ASSET_FIELDS <= WAVE_2_FIELDS


def test_assets_have_the_public_shape_and_the_document_says_so(synced, client):
    red = by_key(client)["red.jpg"]
    one = client.get(f"/api/v1/assets/{red['id']}").json()
    assert has_asset_shape(one) and one == red, one
    assert one["status"] == "ok" and one["metadata"]["label"] == "bike" and one["exports"] == []
    hit = client.post("/api/v1/search", json={"like": [red["id"]], "limit": 1}).json()["hits"][0]
    assert has_asset_shape(hit["asset"]), hit
    spec = client.get("/openapi.json").json()

    def ok_schema(path: str, method: str) -> dict:
        return spec["paths"][path][method]["responses"]["200"]["content"]["application/json"]["schema"]

    assert ok_schema("/api/v1/assets/{asset_id}", "get") == {"$ref": "#/components/schemas/AssetPublic"}
    assert ok_schema("/api/v1/assets", "get") == {"$ref": "#/components/schemas/AssetsPublic"}
    components = spec["components"]["schemas"]
    assert components["Hit"]["properties"]["asset"] == {"$ref": "#/components/schemas/AssetPublic"}
    assert ASSET_FIELDS <= set(components["AssetPublic"]["properties"])
    assert components["AssetPublic"]["properties"]["status"]["enum"] == ["ok", "missing"]


def test_the_server_rejects_what_the_document_forbids(synced, client):
    def rejected(resp: httpx.Response, where: str) -> None:
        assert resp.status_code == 422, resp.text
        assert set(resp.json()) == {"error", "detail"} and where in resp.json()["detail"], resp.text

    rejected(client.post("/api/v1/sources", json={"name": "q", "kind": "", "config": {}}), "kind")
    rejected(client.post("/api/v1/search", json={"text": ""}), "text")
    rejected(client.post("/api/v1/search", json={"text": "   "}), "text")
    rejected(client.post("/api/v1/search", json={}), "text")
    rejected(client.post("/api/v1/search", json={"text": "x", "limit": "5"}), "limit")  # strict types
    # A blank text beside an image: a 422 from the form's own rules, not a 500 from the search model.
    image = [("images", ("q.png", b"x", "image/png"))]
    rejected(client.post("/api/v1/search/image", data={"text": "  "}, files=image), "text")
    rejected(client.post("/api/v1/exports", json={"target": "", "filter": {}}), "target")
    rejected(client.post("/api/v1/exports", json={"target": "jsonl", "ids": ["x"]}), "ids[0]")
    rejected(client.post("/api/v1/exports", json={"target": "jsonl", "search": {"limit": 3}}), "search")
    rejected(client.get("/api/v1/assets", params={"cursor": "not-an-id"}), "cursor")
    rejected(client.get("/api/v1/projector", params={"method": "tsne"}), "method")
    # An empty filter= is no filter, as the document allows.
    assert len(client.get("/api/v1/assets", params={"filter": "", "limit": 100}).json()["data"]) == 13


def test_405_names_every_method_of_the_path(client):
    for method, path, allowed in (
        ("OPTIONS", "/api/v1/sources", "GET, POST"),
        ("PUT", "/api/v1/sources/photos", "GET, DELETE"),
        ("DELETE", "/api/v1/search", "POST"),
        ("POST", "/health", "GET"),
    ):
        resp = client.request(method, path)
        assert resp.status_code == 405, (method, path)
        assert resp.headers["allow"] == allowed, (method, path)
        assert resp.json()["error"] == "MethodNotAllowed" and allowed in resp.json()["detail"]


def test_colour_columns_take_the_field_names_filters_take(synced, client):
    deadline = time.monotonic() + 60
    while client.get("/api/v1/projector").json()["state"] != "ready":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    short = client.get("/api/v1/projector/colors", params={"field": "label"})
    full = client.get("/api/v1/projector/colors", params={"field": "meta.label"})
    assert short.status_code == full.status_code == 200, short.text
    assert short.content == full.content
    bad = client.get("/api/v1/projector/colors", params={"field": "no such"})
    assert bad.status_code == 422 and bad.json()["error"] == "InvalidQuery"
