"""Exports into a real Label Studio (started by this module on 127.0.0.1, in its own cached venv).

Loupe runs for real too: a catalog of 60 small JPEGs with sidecar labels, served over HTTP,
so the tasks' image URLs are fetched back from Loupe as a labeler's browser would.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.catalog.catalog import Catalog
from service.config import Settings
from service.export import base as export_base
from service.export.label_studio import LabelStudioExporter
from service.export.label_studio_tasks import default_label_config
from service.export.runner import run_now
from service.export.schemas import ExportRequest
from tests.conftest import LiveServer, free_port
from tests.fakes import FakeEncoder
from tests.images import gradient
from tests.integration import label_studio_server as lss

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]  # the first run builds the cached venv
LABELS = ("bike", "car", "bus")
N_ASSETS = 60


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[lss.LabelStudio]:
    try:
        lss.venv()
    except lss.Unavailable as exc:
        pytest.skip(f"Label Studio cannot be installed on this machine: {exc}")
    server = lss.session_server(tmp_path_factory.mktemp("label-studio"), free_port())
    yield server
    lss.stop(server)


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Catalog]:
    root = tmp_path_factory.mktemp("photos")
    for i in range(N_ASSETS):
        gradient(i).save(root / f"img{i:02d}.jpg")
        meta = {"label": LABELS[i % 3], "score": round(0.5 + i / 200, 3), "site": f"site{i % 2}"}
        (root / f"img{i:02d}.jpg.json").write_text(json.dumps(meta))
    settings = Settings(home=tmp_path_factory.mktemp("home"), _env_file=None)  # type: ignore[call-arg]
    cat = Catalog(settings, encoder=FakeEncoder())
    cat.add_source("photos", "local", {"path": str(root)})
    assert cat.sync("photos").state == "succeeded"
    yield cat
    cat.close()


@pytest.fixture(scope="module")
def loupe(catalog: Catalog) -> Iterator[httpx.Client]:
    from service.api.app import create_app

    app = create_app(catalog.settings, catalog=catalog)
    try:
        server = LiveServer(app).__enter__()
    except RuntimeError:  # a port taken between choosing and binding it, or a slow start: once more
        server = LiveServer(app).__enter__()
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            yield client
    finally:
        server.__exit__(None, None, None)


def ls_options(server: lss.LabelStudio, **kw: Any) -> dict[str, Any]:
    return {"url": server.url, "token": server.token, **kw}


def run_export(loupe: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    resp = loupe.post("/api/v1/exports", json=body)
    assert resp.status_code == 202, resp.text
    export = resp.json()
    deadline = time.monotonic() + 120
    while export["state"] in ("queued", "running"):
        assert time.monotonic() < deadline, export
        time.sleep(0.1)
        export = loupe.get(f"/api/v1/exports/{export['id']}").json()
    return export  # type: ignore[no-any-return]


def project_of(export: dict[str, Any]) -> int:
    return int(export["location"].split("/projects/")[1].split("/")[0])


def tasks_of(server: lss.LabelStudio, project: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    with server.api() as api:
        for page in range(1, 1000):
            params = {"project": project, "page": page, "page_size": 1000, "fields": "all"}
            body = api.get("/api/tasks/", params=params).json()
            assert len(body["tasks"]) <= lss.PAGE_SIZE_MAX  # the page size cap holds
            out.extend(body["tasks"])
            if len(out) >= body["total"]:
                return out
    raise AssertionError("endless task pages")


def predictions_of(server: lss.LabelStudio, project: int) -> dict[int, list[dict[str, Any]]]:
    with server.api() as api:
        rows = api.get("/api/predictions/", params={"project": project}).json()
    out: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        out.setdefault(row["task"], []).append(row)
    return out


def all_assets(catalog: Catalog, flt: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    assets, _ = catalog.list_assets(filter=flt, limit=1000, cursor=None)
    return assets


def test_search_matches_become_tasks_with_images_from_loupe_once(label_studio, loupe, catalog):
    search = {"text": "bicycles at night", "limit": 50}
    body = {
        "target": "label-studio",
        "search": search,
        "label_studio": ls_options(label_studio, title="Night"),
    }
    export = run_export(loupe, body)
    assert export["state"] == "succeeded", export
    assert export["counts"] == {"selected": 50, "sent": 50, "skipped": 0, "failed": 0}
    assert "token" not in json.dumps(export) and label_studio.token not in json.dumps(export)
    project = project_of(export)
    hits = loupe.post("/api/v1/search", json=search).json()["hits"]
    by_id = {h["id"]: h for h in hits}

    tasks = tasks_of(label_studio, project)
    assert sorted(t["data"]["asset_id"] for t in tasks) == sorted(by_id)
    preds = predictions_of(label_studio, project)
    for task in tasks:
        data, hit = task["data"], by_id[task["data"]["asset_id"]]
        meta = hit["asset"]["metadata"]
        assert data["image"] == f"{loupe.base_url}/api/v1/assets/{hit['id']}/content"
        assert (data["source"], data["key"], data["site"]) == ("photos", hit["asset"]["key"], meta["site"])
        assert data["score"] == pytest.approx(hit["score"], abs=1e-6)
        assert data["meta_score"] == meta["score"]  # metadata `score` must not shadow the search score
        (pred,) = preds[task["id"]]
        assert pred["result"][0]["value"]["choices"] == [meta["label"]]
        assert pred["result"][0]["from_name"] == "label" and pred["result"][0]["to_name"] == "image"
        assert pred["score"] == pytest.approx(meta["score"])
    image = httpx.get(tasks[0]["data"]["image"], timeout=30)
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
    assert image.content[:3] == b"\xff\xd8\xff"

    again = run_export(loupe, {**body, "label_studio": ls_options(label_studio, project_id=project)})
    assert again["counts"] == {"selected": 50, "sent": 0, "skipped": 50, "failed": 0}, again
    assert len(tasks_of(label_studio, project)) == 50

    not_yet = {**search, "filter": {"not": {"exports.project": str(project)}}}
    remaining = loupe.post("/api/v1/search", json=not_yet).json()["hits"]
    assert remaining and not {h["id"] for h in remaining} & set(by_id)
    entry = next(e for e in loupe.get(f"/api/v1/assets/{hits[0]['id']}").json()["exports"])
    assert entry["target"] == "label-studio" and entry["project"] == str(project)
    assert entry["export_id"] == export["id"] and entry["at"].endswith("Z")


def test_lost_local_records_cause_no_duplicates_and_come_back(label_studio, loupe, catalog):
    ids = [a["id"] for a in all_assets(catalog)[:20]]
    body = {
        "target": "label-studio",
        "ids": ids,
        "label_studio": ls_options(label_studio, title="Lost records"),
    }
    first = run_export(loupe, body)
    assert first["counts"]["sent"] == 20, first
    project = project_of(first)
    catalog.index.set_payload(ids, {"exports": []})  # as if the records were lost

    second = run_export(loupe, {**body, "label_studio": ls_options(label_studio, project_id=project)})
    assert second["counts"] == {"selected": 20, "sent": 0, "skipped": 20, "failed": 0}, second
    assert len(tasks_of(label_studio, project)) == 20
    restored = all_assets(catalog, {"exports.project": str(project)})
    assert sorted(a["id"] for a in restored) == sorted(ids)


def test_existing_project_with_its_own_label_config(label_studio, loupe, catalog):
    config = (
        '<View><Image name="photo" value="$img"/>'
        '<Choices name="kind" toName="photo"><Choice value="bike"/><Choice value="other"/></Choices></View>'
    )
    with label_studio.api() as api:
        project = api.post("/api/projects/", json={"title": "Own config", "label_config": config}).json()[
            "id"
        ]
    assets = all_assets(catalog)[:6]
    body = {
        "target": "label-studio",
        "ids": [a["id"] for a in assets],
        "fields": ["site"],
        "label_studio": ls_options(label_studio, project_id=project),
    }
    export = run_export(loupe, body)
    assert export["counts"]["sent"] == 6, export
    preds = predictions_of(label_studio, project)
    labels = {a["id"]: a["metadata"]["label"] for a in assets}
    for task in tasks_of(label_studio, project):
        data = task["data"]
        assert data["img"].endswith(f"/api/v1/assets/{data['asset_id']}/content")
        assert "site" in data and "label" not in data  # only the chosen metadata
        if labels[data["asset_id"]] == "bike":
            (pred,) = preds[task["id"]]
            assert pred["result"][0]["from_name"] == "kind" and pred["result"][0]["to_name"] == "photo"
        else:  # a label the project's config does not offer is not pre-annotated
            assert task["id"] not in preds


def _assert_nothing_recorded(loupe: httpx.Client, catalog: Catalog) -> None:
    newest = loupe.get("/api/v1/exports", params={"limit": 1}).json()["data"][0]
    assert newest["state"] == "failed" and newest["counts"]["sent"] == 0
    assert all_assets(catalog, {"exports.export_id": newest["id"]}) == []


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"token": "f" * 40, "project_id": 1}, "refused the API token (HTTP 401)"),
        (
            {"token": "eyJhbGciOiJIUzI1NiJ9.eyJ4IjoxfQ.bad", "title": "PAT"},
            "refused the personal access token",
        ),
        ({"project_id": 99999}, "has no project 99999"),
    ],
    ids=["wrong-token", "wrong-personal-access-token", "unknown-project"],
)
def test_refused_exports_fail_clearly_and_record_nothing(label_studio, loupe, catalog, options, expected):
    body = {"target": "label-studio", "filter": {}, "label_studio": ls_options(label_studio, **options)}
    resp = loupe.post("/api/v1/exports", json=body)
    assert resp.status_code == 502, resp.text
    assert resp.json()["error"] == "ExportError" and expected in resp.json()["detail"]
    assert label_studio.token not in resp.text and options.get("token", "-") not in resp.text
    _assert_nothing_recorded(loupe, catalog)


def test_unreachable_label_studio_fails_clearly(loupe, catalog):
    options = {"url": f"http://127.0.0.1:{free_port()}", "token": "x" * 40, "project_id": 1}
    resp = loupe.post("/api/v1/exports", json={"target": "label-studio", "ids": [], "label_studio": options})
    assert resp.status_code == 502, resp.text
    assert "cannot reach Label Studio at http://127.0.0.1:" in resp.json()["detail"]
    _assert_nothing_recorded(loupe, catalog)


def _personal_access_token(server: lss.LabelStudio) -> str:
    with server.api() as api:
        resp = api.post("/api/token/")
    assert resp.status_code == 201, f"this Label Studio gives no personal access tokens: {resp.text}"
    return str(resp.json()["token"])


class ExpiringAccessExporter(LabelStudioExporter):
    """Reaches Label Studio, then spoils its access token as if it had expired (Label Studio answers 401)."""

    def prepare(self, ctx: Any) -> None:
        super().prepare(ctx)
        assert self.client is not None and self.client._access is not None  # traded the PAT
        self.client._access = self.client._access[:-4] + "AAAA"


def test_personal_access_token_is_refreshed_into_bearer_tokens(label_studio, catalog, monkeypatch):
    pat = _personal_access_token(label_studio)
    monkeypatch.setitem(export_base._REGISTRY, "label-studio", ExpiringAccessExporter)
    ids = [a["id"] for a in all_assets(catalog)[:12]]
    options = {"url": label_studio.url, "token": pat, "title": "PAT export", "batch_size": 5}
    row = run_now(
        catalog,
        ExportRequest.model_validate({"target": "label-studio", "ids": ids, "label_studio": options}),
        base_url="http://loupe.test",
    )
    assert row.state == "succeeded" and row.counts["sent"] == 12, row.detail
    assert len(tasks_of(label_studio, int(row.location.split("/")[-2]))) == 12


class LostAnswerTransport(httpx.HTTPTransport):
    """Forwards every request, but loses the answer of the first task import, as a timeout would."""

    def __init__(self) -> None:
        super().__init__()
        self.lost = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.url.path.endswith("/import") and self.lost == 0:
            response.read()
            self.lost += 1
            raise httpx.ReadTimeout("answer lost", request=request)
        return response


def test_an_import_that_landed_but_lost_its_answer_is_not_sent_twice(label_studio, catalog, monkeypatch):
    transport = LostAnswerTransport()
    monkeypatch.setitem(
        export_base._REGISTRY, "label-studio", lambda: LabelStudioExporter(transport=transport)
    )
    ids = [a["id"] for a in all_assets(catalog)[20:50]]
    options = {"url": label_studio.url, "token": label_studio.token, "title": "Flaky", "batch_size": 10}
    request = ExportRequest.model_validate({"target": "label-studio", "ids": ids, "label_studio": options})
    row = run_now(catalog, request, base_url="http://loupe.test")
    assert transport.lost == 1
    assert row.state == "succeeded" and row.counts == {"selected": 30, "sent": 30, "skipped": 0, "failed": 0}
    tasks = tasks_of(label_studio, int(row.location.split("/")[-2]))
    assert sorted(t["data"]["asset_id"] for t in tasks) == sorted(ids)
    assert len(all_assets(catalog, {"exports.export_id": row.id})) == 30


def test_tasks_json_file_imports_into_label_studio(label_studio, catalog, tmp_path: Path):
    path = tmp_path / "tasks.json"
    request = ExportRequest(target="label-studio-json", filter={"site": "site0"}, path=str(path))
    row = run_now(catalog, request, base_url="http://loupe.test")
    assert row.state == "succeeded" and row.counts["sent"] == N_ASSETS // 2
    body = {"title": "From file", "label_config": default_label_config(LABELS)}
    with label_studio.api() as api:
        project = api.post("/api/projects/", json=body).json()["id"]
        files = {"file": ("tasks.json", path.read_bytes(), "application/json")}
        resp = api.post(f"/api/projects/{project}/import", files=files)
    assert resp.status_code == 201, resp.text
    assert resp.json()["task_count"] == N_ASSETS // 2 and resp.json()["prediction_count"] == N_ASSETS // 2
    assert {t["data"]["site"] for t in tasks_of(label_studio, project)} == {"site0"}


class RefuseSecondImport(httpx.HTTPTransport):
    """Answers the second task import with a 400, as Label Studio does for tasks it will not take."""

    def __init__(self) -> None:
        super().__init__()
        self.imports = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/import"):
            self.imports += 1
            if self.imports == 2:
                return httpx.Response(400, json={"detail": "invalid tasks"}, request=request)
        return super().handle_request(request)


def test_only_batches_label_studio_accepted_are_recorded(label_studio, catalog, monkeypatch):
    transport = RefuseSecondImport()
    monkeypatch.setitem(
        export_base._REGISTRY, "label-studio", lambda: LabelStudioExporter(transport=transport)
    )
    ids = [a["id"] for a in all_assets(catalog)[:15]]
    options = {
        "url": label_studio.url,
        "token": label_studio.token,
        "title": "Refused batch",
        "batch_size": 5,
    }
    request = ExportRequest.model_validate({"target": "label-studio", "ids": ids, "label_studio": options})
    row = run_now(catalog, request, base_url="http://loupe.test")
    assert row.state == "succeeded" and row.counts == {"selected": 15, "sent": 10, "skipped": 0, "failed": 5}
    assert "HTTP 400" in (row.detail or "")
    landed = {t["data"]["asset_id"] for t in tasks_of(label_studio, int(row.location.split("/")[-2]))}
    recorded = {a["id"] for a in all_assets(catalog, {"exports.export_id": row.id})}
    assert len(landed) == 10 and recorded == landed and set(ids[5:10]).isdisjoint(recorded)


def test_a_cancelled_export_records_exactly_what_label_studio_holds(label_studio, catalog):
    from service.export.runner import begin
    from service.jobs.runner import execute

    ids = [a["id"] for a in all_assets(catalog)[:8]]
    options = {"url": label_studio.url, "token": label_studio.token, "title": "Cancelled", "batch_size": 2}
    request = ExportRequest.model_validate({"target": "label-studio", "ids": ids, "label_studio": options})
    row = begin(catalog, request, base_url="http://loupe.test", here=True)
    catalog.jobs.cancel(row.id)  # asked while it runs: it stops after the batch in flight
    job = execute(catalog, catalog.jobs.get(row.id))
    assert job.state == "cancelled"
    export = catalog.state.get_export(row.id)
    assert export.state == "cancelled" and export.counts["sent"] == 2, export.counts
    landed = {t["data"]["asset_id"] for t in tasks_of(label_studio, int(export.location.split("/")[-2]))}
    recorded = {a["id"] for a in all_assets(catalog, {"exports.export_id": row.id})}
    assert recorded == landed and len(landed) == 2


def test_an_export_interrupted_by_sigkill_of_its_server_resumes_after_a_restart(label_studio, tmp_path):
    """The whole loop with real processes: a Loupe server (FakeEncoder) pushing tasks one per
    request into the real Label Studio is killed; the restarted server finishes the export
    into the same project, and every asset is there once."""
    import os

    from tests.integration.test_replicas import Replica, add_source, photos, submit, wait_done

    env = {k: v for k, v in os.environ.items() if not k.startswith("LOUPE_")}
    env.update(LOUPE_JOBS_STALE_AFTER_S="120", LOUPE_INDEX__OPTIMIZE_AFTER_SYNC="false")
    home, n = tmp_path / "home", 40
    first = Replica("first", home=home, env=env)
    try:
        first.wait_ready()
        add_source(first, "photos", photos(tmp_path / "photos", n))
        assert wait_done(first, submit(first, "photos")["id"])["state"] == "succeeded"
        body = {
            "target": "label-studio",
            "filter": {},
            "label_studio": {**ls_options(label_studio), "title": "Killed midway", "batch_size": 1},
        }
        resp = first.client.post("/api/v1/exports", json=body)
        assert resp.status_code == 202, resp.text
        export_id = resp.json()["id"]
        deadline = time.monotonic() + 60
        while (now := first.client.get(f"/api/v1/exports/{export_id}").json())["counts"]["sent"] < 3:
            assert now["state"] in ("queued", "running") and time.monotonic() < deadline, now
            time.sleep(0.02)
        first.kill()
    finally:
        first.stop()
    assert now["counts"]["sent"] < n, "the export finished before the kill: nothing to resume"

    second = Replica("second", home=home, env=env)
    try:
        second.wait_ready()
        deadline = time.monotonic() + 120
        while (done := second.client.get(f"/api/v1/exports/{export_id}").json())["state"] in (
            "queued",
            "running",
        ):
            assert time.monotonic() < deadline, done
            time.sleep(0.1)
        assert done["state"] == "succeeded", done
        job = second.client.get(f"/api/v1/jobs/{export_id}").json()
        assert job["kind"] == "export" and job["state"] == "succeeded"
    finally:
        second.stop()
    counts = done["counts"]
    assert counts["selected"] == n and counts["sent"] + counts["skipped"] == n and counts["failed"] == 0, (
        counts
    )
    assert counts["skipped"] >= 3, "what the first server sent was not sent again"
    tasks = tasks_of(label_studio, project_of(done))
    assert len(tasks) == n and len({t["data"]["asset_id"] for t in tasks}) == n, "one task per asset"
    with label_studio.api() as api:
        titles = [p["title"] for p in api.get("/api/projects/", params={"page_size": 1000}).json()["results"]]
    assert titles.count("Killed midway") == 1, "the resumed export used the project it had created"
