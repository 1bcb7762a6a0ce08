"""Exports through the real API over HTTP (and `loupe export` against it): file targets,
downloads, recorded exports in search filters, request errors, secrets."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from service import cli
from service.catalog.catalog import Catalog
from service.config import Settings
from service.export.runner import begin, run_now
from service.export.schemas import ExportRequest
from service.state import JobRow
from tests.conftest import LiveServer
from tests.fakes import FakeEncoder
from tests.images import gradient, solid
from tests.integration import s3_servers as s3

SECRET = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c"


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Catalog]:
    root = tmp_path_factory.mktemp("photos")
    (root / "sub").mkdir()
    for i in range(8):
        gradient(i).save(root / f"g{i}.jpg")
        meta = {"label": "bike" if i % 2 else "car", "site": f"s{i % 3}"}
        (root / f"g{i}.jpg.json").write_text(json.dumps(meta))
    solid((200, 30, 30)).save(root / "sub" / "red.png")
    settings = Settings(home=tmp_path_factory.mktemp("home"), _env_file=None)  # type: ignore[call-arg]
    cat = Catalog(settings, encoder=FakeEncoder())
    cat.add_source("photos", "local", {"path": str(root)})
    assert cat.sync("photos").counts["added"] == 9
    yield cat
    cat.close()


@pytest.fixture(scope="module")
def live_server(catalog: Catalog) -> Iterator[LiveServer]:
    from service.api.app import create_app

    with LiveServer(create_app(catalog.settings, catalog=catalog)) as server:
        yield server


@pytest.fixture
def client(live_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.url, timeout=60) as c:
        yield c


def assets(client: httpx.Client, flt: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    params = {"limit": 1000, **({"filter": json.dumps(flt)} if flt is not None else {})}
    return client.get("/api/v1/assets", params=params).json()["data"]  # type: ignore[no-any-return]


def export(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    resp = client.post("/api/v1/exports", json=body)
    assert resp.status_code == 202, resp.text
    out = resp.json()
    deadline = time.monotonic() + 60
    while out["state"] in ("queued", "running"):
        assert time.monotonic() < deadline, out
        time.sleep(0.05)
        out = client.get(f"/api/v1/exports/{out['id']}").json()
    return out  # type: ignore[no-any-return]


def test_jsonl_download_round_trips(client):
    done = export(client, {"target": "jsonl", "filter": {}})
    assert done["state"] == "succeeded", done
    assert done["counts"] == {"selected": 9, "sent": 9, "skipped": 0, "failed": 0}
    assert done["location"] == f"{client.base_url}/api/v1/exports/{done['id']}/download"
    resp = client.get(f"/api/v1/exports/{done['id']}/download")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("application/x-ndjson")
    assert f"loupe-jsonl-{done['id'][:8]}.jsonl" in resp.headers["content-disposition"]
    rows = {r["id"]: r for r in map(json.loads, resp.text.splitlines())}
    catalogued = {a["id"]: a for a in assets(client)}
    assert rows.keys() == catalogued.keys()
    for asset_id, row in rows.items():
        a = catalogued[asset_id]
        assert (row["source"], row["key"], row["uri"], row["width"]) == (
            "photos",
            a["key"],
            a["uri"],
            a["width"],
        )
        assert row["metadata"] == a["metadata"] and row["score"] is None
        image = client.get(row["url"])
        assert image.status_code == 200 and image.headers["content-type"] == a["media_type"]
        assert image.content == Path(a["uri"].removeprefix("file://")).read_bytes()


def test_search_export_to_a_csv_path_and_not_yet_exported_filter(client, tmp_path):
    like = next(a["id"] for a in assets(client) if a["key"] == "g1.jpg")
    path = tmp_path / "picked.csv"
    body = {"target": "csv", "search": {"like": [like], "limit": 3}, "path": str(path), "fields": ["label"]}
    done = export(client, body)
    assert done["state"] == "succeeded" and done["location"] == str(path), done
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    hits = client.post("/api/v1/search", json={"like": [like], "limit": 3}).json()["hits"]
    assert [r["id"] for r in rows] == [h["id"] for h in hits]
    assert [float(r["score"]) for r in rows] == pytest.approx([h["score"] for h in hits])
    assert [k for k in rows[0] if k.startswith("meta.")] == ["meta.label"]

    exported = {r["id"] for r in rows}
    assert {a["id"] for a in assets(client, {"exports.project": str(path)})} == exported
    not_yet = {"like": [like], "limit": 20, "filter": {"not": {"exports.project": str(path)}}}
    remaining = {h["id"] for h in client.post("/api/v1/search", json=not_yet).json()["hits"]}
    assert remaining and not remaining & exported and len(remaining) == 9 - 1 - 3  # minus `like` itself
    history = client.get(f"/api/v1/assets/{rows[0]['id']}").json()["exports"]
    (entry,) = [e for e in history if e["export_id"] == done["id"]]
    assert (entry["target"], entry["project"], entry["location"]) == ("csv", str(path), str(path))


def test_ids_export_counts_unknown_ids_as_failed(client, tmp_path):
    known = [a["id"] for a in assets(client)[:2]]
    missing = "00000000-0000-4000-8000-000000000000"
    done = export(
        client, {"target": "coco", "ids": [*known, missing, known[0]], "path": str(tmp_path / "c.json")}
    )
    assert done["state"] == "succeeded"
    assert done["counts"] == {"selected": 3, "sent": 2, "skipped": 0, "failed": 1}
    assert done["detail"] == f"1 asset(s) failed: {missing}: no such asset in the catalog"
    doc = json.loads((tmp_path / "c.json").read_text())
    assert [im["loupe_id"] for im in doc["images"]] == known


BAD_REQUESTS = [
    (
        {"target": "cvat-xml", "filter": {}},
        "valid targets: coco, csv, jsonl, label-studio, label-studio-json",
    ),
    ({"target": "jsonl"}, "give exactly one selection"),
    ({"target": "jsonl", "ids": ["nope"]}, "ids[0]: 'nope' is not an asset id"),
    ({"target": "jsonl", "filter": {"width": {"bigger": 3}}}, "filter.width.bigger"),
    ({"target": "jsonl", "search": {"filter": {"source": "photos"}}}, "search: a search needs `text`"),
    ({"target": "jsonl", "filter": {}, "path": "out.jsonl"}, "path: must be an absolute path"),
    ({"target": "jsonl", "filter": {}, "path": "/nonexistent-dir/out.jsonl"}, "does not exist"),
    ({"target": "label-studio", "filter": {}}, "label_studio: target label-studio needs"),
    ({"target": "csv", "filter": {}, "path": __file__}, "exists; pass overwrite: true"),
]


def test_bad_requests_are_422_and_create_no_export(client):
    before = len(client.get("/api/v1/exports").json()["data"])
    for body, where in BAD_REQUESTS:
        resp = client.post("/api/v1/exports", json=body)
        assert resp.status_code == 422, (body, resp.text)
        assert where in resp.json()["detail"], body
    assert len(client.get("/api/v1/exports").json()["data"]) == before


def test_a_token_is_never_stored_or_echoed(client, catalog):
    body = {
        "target": "label-studio",
        "filter": {},
        "label_studio": {"url": "http://127.0.0.1:9", "token": SECRET, "title": "Secret test"},
    }
    resp = client.post("/api/v1/exports", json=body)
    assert (
        resp.status_code == 502 and "cannot reach Label Studio at http://127.0.0.1:9" in resp.json()["detail"]
    )
    listed = client.get("/api/v1/exports", params={"limit": 1}).json()["data"]
    assert listed[0]["target"] == "label-studio" and listed[0]["state"] == "failed"
    assert listed[0]["request"]["label_studio"] == {
        "url": "http://127.0.0.1:9",
        "title": "Secret test",
        "predictions": True,
        "batch_size": 100,
    }
    one = client.get(f"/api/v1/exports/{listed[0]['id']}")
    stored = catalog.state.get_export(listed[0]["id"])
    for text in (resp.text, json.dumps(listed), one.text, json.dumps(stored.request), str(stored.detail)):
        assert SECRET not in text


def test_download_errors(client, tmp_path):
    assert client.get("/api/v1/exports/nope/download").status_code == 404
    written = export(client, {"target": "jsonl", "filter": {}, "path": str(tmp_path / "x.jsonl")})
    resp = client.get(f"/api/v1/exports/{written['id']}/download")
    assert resp.status_code == 404 and str(tmp_path / "x.jsonl") in resp.json()["detail"]


def test_cli_exports_through_the_running_server(client, live_server, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LOUPE_URL", live_server.url)
    monkeypatch.setenv("LOUPE_HOME", str(tmp_path / "cli-home"))
    monkeypatch.delenv("LOUPE_LABEL_STUDIO_TOKEN", raising=False)
    out = tmp_path / "labelbox.ndjson"
    code = cli.main(
        ["export", "--to", "labelbox", "--filter", '{"label": "bike"}', "--path", str(out), "--json"]
    )
    assert code == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["counts"]["sent"] == 4 and shown["location"] == str(out)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    bikes = {a["id"] for a in assets(client, {"label": "bike"})}
    assert {r["global_key"] for r in rows} == bikes and len(rows) == 4

    with pytest.raises(SystemExit) as exit_info:
        cli.main(["export", "--to", "label-studio", "--filter", "{}", "--ls-url", "http://127.0.0.1:9"])
    assert exit_info.value.code == 2
    assert "needs --ls-url and --ls-token" in capsys.readouterr().err


@pytest.fixture
def s3_server(tmp_path: Path) -> Iterator[s3.S3Server]:
    # SeaweedFS checks signatures, so a presigned URL that loads there is a valid one.
    server = s3.start_seaweedfs(tmp_path / "weed") if s3.weed_binary() else s3.start_moto()
    yield server
    s3.stop(server)


def test_s3_assets_get_presigned_urls_with_the_chosen_expiry(s3_server, fake_catalog, tmp_path):
    client = s3_server.client()
    client.create_bucket(Bucket="shots")
    blobs = {}
    for i in range(3):
        buf = io.BytesIO()
        gradient(40 + i).save(buf, "JPEG")
        blobs[f"cam/{i}.jpg"] = buf.getvalue()
        client.put_object(Bucket="shots", Key=f"cam/{i}.jpg", Body=buf.getvalue())
    config = s3_server.source_config("shots", allow_presigned=True, presign_expiry_s=3600)
    fake_catalog.add_source("shots", "s3", config)
    assert fake_catalog.sync("shots").counts["added"] == 3

    def rows(name: str, **extra: Any) -> list[dict[str, Any]]:
        path = tmp_path / f"{name}.jsonl"
        request = ExportRequest(target="jsonl", filter={"source": "shots"}, path=str(path), **extra)
        assert run_now(fake_catalog, request, base_url="http://loupe.test").state == "succeeded"
        return [json.loads(line) for line in path.read_text().splitlines()]

    for row in rows("presigned", presign_expiry_s=600):
        query = parse_qs(urlsplit(row["url"]).query)
        assert row["url"].startswith(s3_server.endpoint_url) and query["X-Amz-Expires"] == ["600"]
        fetched = httpx.get(row["url"], timeout=10)
        assert fetched.status_code == 200 and fetched.content == blobs[row["key"]]
    plain = rows("plain")
    assert [r["url"] for r in plain] == [f"http://loupe.test/api/v1/assets/{r['id']}/content" for r in plain]


def test_cli_exports_in_process_without_a_server(catalog, tmp_path, monkeypatch, capsys):
    from service import client as client_module

    def open_shared(self: Any, settings: Settings) -> None:
        self.catalog = catalog  # the module's catalog, opened with the fake encoder

    monkeypatch.setattr(client_module.LocalClient, "__init__", open_shared)
    monkeypatch.setattr(client_module.LocalClient, "close", lambda self: None)
    monkeypatch.delenv("LOUPE_URL", raising=False)
    monkeypatch.setenv("LOUPE_HOME", str(catalog.settings.home))
    out = tmp_path / "images.json"
    out.write_text("an older export, replaced on purpose\n")
    assert cli.main(["export", "--to", "coco", "--filter", '{"site": "s0"}', "--path", str(out)]) == 0
    printed = capsys.readouterr()
    assert "image URLs point at http://127.0.0.1:8000" in printed.err
    assert f"-> {out}" in printed.out and "3 sent" in printed.out
    images = json.loads(out.read_text())["images"]
    assert sorted(im["file_name"] for im in images) == ["g0.jpg", "g3.jpg", "g6.jpg"]
    assert all(im["coco_url"].startswith("http://127.0.0.1:8000/api/v1/assets/") for im in images)


def test_an_export_left_running_by_a_dead_process_is_resumed(client, catalog, tmp_path):
    from tests.integration.test_jobs import dead_owner

    out = tmp_path / "resumed.jsonl"
    request = ExportRequest(target="jsonl", filter={"site": "s0"}, path=str(out))
    row = begin(catalog, request, base_url="http://loupe.test", here=True)
    gone = dead_owner()
    with catalog.state.session() as s:  # as if that process had been killed while running it
        s.get(JobRow, row.id).owner = gone
    deadline = time.monotonic() + 30
    while (shown := client.get(f"/api/v1/exports/{row.id}").json())["state"] in ("queued", "running"):
        assert time.monotonic() < deadline, shown
        time.sleep(0.05)
    assert shown["state"] == "succeeded" and shown["counts"]["sent"] == 3, shown
    assert len(out.read_text().splitlines()) == 3
    job = client.get(f"/api/v1/jobs/{row.id}").json()
    assert job["kind"] == "export" and job["state"] == "succeeded"

    # An export an older Loupe left running has no job to resume it: it reads as failed, saying why.
    old = catalog.state.create_export("jsonl", {"target": "jsonl", "filter": {}, "owner": gone})
    catalog.state.update_export(old.id, state="running")
    shown = client.get(f"/api/v1/exports/{old.id}").json()
    assert shown["state"] == "failed" and "interrupted" in shown["detail"]
    assert "owner" not in shown["request"]
    missing = client.get("/api/v1/exports/no-such-export")
    assert missing.status_code == 404 and missing.json()["error"] == "ExportNotFound"
