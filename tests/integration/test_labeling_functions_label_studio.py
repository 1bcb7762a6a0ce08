"""A labeling function's labels (and a detection model run's boxes) exported to a real Label
Studio as pre-annotations, picked by `label_studio.predictions_set`: choices and rectangles in
percent coordinates, under the set's model version, shown in the project's predictions."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from service.catalog.catalog import Catalog
from service.config import Settings
from tests.conftest import LiveServer, free_port
from tests.fakes import FakeEncoder
from tests.images import gradient
from tests.integration import label_studio_server as lss

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]  # the first run builds the cached venv
N = 12
W, H = 64, 48  # gradient()'s size


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
def loupe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    from service.api.app import create_app

    root = tmp_path_factory.mktemp("photos")
    for i in range(N):
        gradient(i).save(root / f"img{i:02d}.jpg")
    settings = Settings(home=tmp_path_factory.mktemp("home"), _env_file=None)  # type: ignore[call-arg]
    catalog = Catalog(settings, encoder=FakeEncoder())
    catalog.add_source("photos", "local", {"path": str(root)})
    assert catalog.sync("photos").state == "succeeded"
    try:
        with LiveServer(create_app(settings, catalog=catalog)) as server:
            with httpx.Client(base_url=f"{server.url}/api/v1", timeout=60) as client:
                yield client
    finally:
        catalog.close()


def wait(client: httpx.Client, path: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while True:
        body = client.get(path).json()
        if body.get("run", body)["state"] not in ("queued", "running"):
            return body  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, body
        time.sleep(0.1)


def export(loupe: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    resp = loupe.post("/exports", json=body)
    assert resp.status_code == 202, resp.text
    done = wait(loupe, f"/exports/{resp.json()['id']}")
    assert done["state"] == "succeeded", done
    return done


def predictions(server: lss.LabelStudio, project: int) -> dict[str, dict[str, Any]]:
    """asset id -> its task's one prediction, read back from Label Studio."""
    tasks: list[dict[str, Any]] = []
    with server.api() as api:
        for page in range(1, 100):  # this Label Studio pages tasks by lss.PAGE_SIZE_MAX
            params = {"project": project, "page": page, "page_size": 100, "fields": "all"}
            body = api.get("/api/tasks/", params=params).json()
            tasks.extend(body["tasks"])
            if len(tasks) >= body["total"]:
                break
        rows = api.get("/api/predictions/", params={"project": project}).json()
    asset_of = {t["id"]: t["data"]["asset_id"] for t in tasks}
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        assert asset_of[row["task"]] not in out, "one prediction per task"
        out[asset_of[row["task"]]] = row
    return out


def test_a_labeling_functions_labels_arrive_as_pre_annotations(
    label_studio: lss.LabelStudio, loupe: httpx.Client
) -> None:
    ids = [a["id"] for a in loupe.get("/assets", params={"limit": 100}).json()["data"]]
    assert len(ids) == N
    rules = [{"label": "warm", "like": ids[:2]}, {"label": "cool", "like": ids[2:4]}]
    resp = loupe.post(
        "/labeling-functions",
        json={"name": "tint", "into": "tint_auto", "rules": rules, "threshold": 0.9, "margin": 0.0},
    )
    assert resp.status_code == 202, resp.text
    run = wait(loupe, "/labeling-functions/tint")["run"]
    assert run["state"] == "succeeded" and 4 <= run["labeled"] < N, run
    flt = {"labels.tint_auto.label": {"exists": True}}
    labelled = {
        a["id"]: a["labels"]["tint_auto"]
        for a in loupe.get("/assets", params={"filter": json.dumps(flt), "limit": 100}).json()["data"]
    }

    options = {
        "url": label_studio.url,
        "token": label_studio.token,
        "title": "Auto-labelled",
        "predictions_set": "tint_auto",
    }
    done = export(loupe, {"target": "label-studio", "ids": ids, "label_studio": options})
    project = int(done["location"].split("/projects/")[1].split("/")[0])
    preds = predictions(label_studio, project)
    assert set(preds) == set(labelled)  # exactly the assets the function labelled carry one
    for asset, value in labelled.items():
        pred = preds[asset]
        assert pred["model_version"] == "labeling-function:tint"
        (result,) = pred["result"]
        assert result["type"] == "choices" and result["value"]["choices"] == [value["label"]]
        assert pred["score"] == pytest.approx(value["score"])
    with label_studio.api() as api:
        config = api.get(f"/api/projects/{project}").json()["label_config"]
    assert 'value="warm"' in config and 'value="cool"' in config


def test_detection_boxes_arrive_as_rectangles_in_percent(
    label_studio: lss.LabelStudio, loupe: httpx.Client
) -> None:
    ids = [a["id"] for a in loupe.get("/assets", params={"limit": 100}).json()["data"]][:3]
    body = {"name": "det", "role": "predictions", "task": "detection", "model": "yolo-run-7"}
    assert loupe.post("/labelsets", json=body).status_code == 201
    boxes = {
        ids[0]: [{"label": "cat", "score": 0.9, "bbox": [8, 4, 32, 24]}],
        ids[1]: [
            {"label": "dog", "score": 0.6, "bbox": [0, 0, 64, 48]},
            {"label": "cat", "score": 0.3, "bbox": [16, 12, 16, 12]},
        ],
    }
    records = [{"asset_id": a, "boxes": b} for a, b in boxes.items()]
    resp = loupe.post("/labelsets/det/annotations", json={"format": "loupe", "annotations": records})
    assert resp.status_code == 202, resp.text
    assert wait(loupe, f"/jobs/{resp.json()['id']}")["state"] == "succeeded"

    options = {
        "url": label_studio.url,
        "token": label_studio.token,
        "title": "Boxes",
        "predictions_set": "det",
    }
    done = export(loupe, {"target": "label-studio", "ids": ids, "label_studio": options})
    project = int(done["location"].split("/projects/")[1].split("/")[0])
    preds = predictions(label_studio, project)
    assert set(preds) == set(boxes)  # the third asset has no boxes: no prediction
    for asset, want in boxes.items():
        pred = preds[asset]
        assert pred["model_version"] == "yolo-run-7"
        got = pred["result"]
        assert [r["type"] for r in got] == ["rectanglelabels"] * len(want)
        for r, b in zip(got, want, strict=True):
            x, y, w, h = b["bbox"]
            v = r["value"]
            assert v["rectanglelabels"] == [b["label"]]
            assert (v["x"], v["y"], v["width"], v["height"]) == pytest.approx(
                (100 * x / W, 100 * y / H, 100 * w / W, 100 * h / H)
            )
            assert (r["original_width"], r["original_height"]) == (W, H)
            assert r["score"] == pytest.approx(b["score"])


def test_a_wrong_predictions_set_is_refused(label_studio: lss.LabelStudio, loupe: httpx.Client) -> None:
    ids = [a["id"] for a in loupe.get("/assets", params={"limit": 2}).json()["data"]]
    assert (
        loupe.post(
            "/labelsets", json={"name": "truth", "role": "ground_truth", "task": "classification"}
        ).status_code
        == 201
    )
    for name, says in (("nope", "no label set named 'nope'"), ("truth", "is ground_truth")):
        options = {
            "url": label_studio.url,
            "token": label_studio.token,
            "title": "Refused",
            "predictions_set": name,
        }
        resp = loupe.post("/exports", json={"target": "label-studio", "ids": ids, "label_studio": options})
        assert (
            resp.status_code == 422 and "label_studio.predictions_set" in resp.text and says in resp.text
        ), resp.text
