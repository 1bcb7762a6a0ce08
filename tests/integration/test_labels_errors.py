"""Bad annotations are a 4xx naming what is wrong, and a refused call changes nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from service.config import Settings
from tests.conftest import LiveServer
from tests.integration.labels_helpers import (
    SIZE,
    all_assets,
    coco,
    create_set,
    filename,
    imported,
    jsonl,
    samples,
    upload,
)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    from service.api.app import create_app
    from service.catalog.catalog import Catalog
    from service.synth.dataset import write_dataset
    from tests.fakes import FakeEncoder

    root = tmp_path_factory.mktemp("labels")
    write_dataset(root / "shapes", 40, 5, size=SIZE, image_format="png")
    settings = Settings(home=root / "home", _env_file=None)  # type: ignore[call-arg]
    catalog = Catalog(settings, encoder=FakeEncoder())
    catalog.add_source("shapes", "local", {"path": str(root / "shapes")})
    catalog.sync("shapes")
    with (
        LiveServer(create_app(settings, catalog=catalog)) as server,
        httpx.Client(base_url=server.url, timeout=60) as c,
    ):
        create_set(c, "gt", "ground_truth", "classification", classes=["circle", "square", "star"])
        create_set(c, "pred", "predictions", "classification")
        create_set(c, "det", "ground_truth", "detection")
        # Labels that a refused import must leave exactly as they are.
        imported(
            c,
            upload(
                c,
                "gt",
                jsonl([{"source": "shapes", "key": filename(i), "label": "star"} for i in range(5)]),
                "loupe",
            ),
        )
        yield c
    catalog.close()


@pytest.fixture
def unchanged(client: httpx.Client) -> Iterator[None]:
    before = _labels(client)
    sets = client.get("/api/v1/labelsets").json()
    yield
    assert _labels(client) == before
    assert client.get("/api/v1/labelsets").json() == sets


def _labels(client: httpx.Client) -> dict[str, Any]:
    return {a["id"]: a.get("labels") for a in all_assets(client)}


def _rec(i: int, **fields: Any) -> dict[str, Any]:
    return {"source": "shapes", "key": filename(i), **fields}


def refused(resp: httpx.Response, *words: str, status: int = 422) -> str:
    assert resp.status_code == status, resp.text
    detail = resp.json()["detail"]
    for w in words:
        assert w in detail, detail
    return str(detail)


@pytest.mark.usefixtures("unchanged")
def test_a_malformed_line_names_its_number_and_nothing_is_written(client: httpx.Client) -> None:
    lines = jsonl([_rec(i, label="circle") for i in range(5, 10)]).decode().splitlines()
    lines.insert(2, '{"source": "shapes", "key": "img_00011.png", "label": ')
    refused(upload(client, "gt", ("\n".join(lines) + "\n").encode(), "loupe"), "line 3", "not valid JSON")
    lines[2] = json.dumps(_rec(11, labl="circle"))
    refused(upload(client, "gt", ("\n".join(lines) + "\n").encode(), "loupe"), "line 3", "labl")


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize(
    ("record", "words"),
    [
        (
            _rec(6, label="hexagon"),
            ["line 2", "field label", "unknown class 'hexagon'", "circle, square, star"],
        ),
        (_rec(6), ["line 2", "field label", "missing"]),
        (_rec(6, label="star", score=-0.1), ["line 2", "field score", "[0, 1]"]),
        (_rec(6, label="star", score=1.5), ["field score", "[0, 1]"]),
        (_rec(6, label="star", scores={"star": 0.5, "blob": 0.5}), ["field scores", "unknown class 'blob'"]),
        (_rec(6, label="star", score="high"), ["field score", "expected a number"]),
        (_rec(6, boxes=[{"label": "star", "bbox": [0, 0, 1, 1]}]), ["field boxes", "classification set"]),
        ({"key": filename(6), "label": "star"}, ["field source", "missing"]),
    ],
)
def test_bad_classification_records_are_refused_by_line_and_field(
    client: httpx.Client, record: dict[str, Any], words: list[str]
) -> None:
    data = jsonl([_rec(5, label="circle"), record, _rec(7, label="square")])
    refused(upload(client, "gt", data, "loupe"), *words)


@pytest.mark.usefixtures("unchanged")
def test_nan_scores_and_duplicates_are_refused(client: httpx.Client) -> None:
    nan = b'{"source": "shapes", "key": "img_00005.png", "label": "star", "score": NaN}\n'
    refused(upload(client, "pred", nan, "loupe"), "line 1", "field score", "finite")
    twice = jsonl([_rec(5, label="a"), _rec(6, label="b"), _rec(5, label="c")])
    refused(upload(client, "pred", twice, "loupe"), "line 3", "second record", "line 1")
    # The same asset by id and by source + key is a duplicate too.
    some = all_assets(client)[0]
    by_id = jsonl(
        [{"asset_id": some["id"], "label": "a"}, {"source": "shapes", "key": some["key"], "label": "b"}]
    )
    refused(upload(client, "pred", by_id, "loupe"), "line 2", "second record")
    rows = "file,label,score\nimg_00001.png,a,0.5\nimg_00002.png,b,1.7\n"
    refused(upload(client, "pred", rows.encode(), "csv", source="shapes"), "line 3", "field score")
    inline = client.post(
        "/api/v1/labelsets/pred/annotations", json={"annotations": [_rec(1, label="a"), _rec(2, label=3.5)]}
    )
    refused(inline, "annotations[1]", "field label")


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize(
    ("bbox", "words"),
    [
        ([10, 10, 0, 5], ["boxes[0].bbox", "> 0"]),
        ([10, 10, 5, -2], ["boxes[0].bbox", "> 0"]),
        ([-3, 10, 5, 5], ["boxes[0].bbox", "outside"]),
        ([40, 40, 30, 10], ["boxes[0].bbox", "outside the 64 x 64 image"]),
        ([1, 2, 3], ["boxes[0].bbox", "[x, y, width, height]"]),
    ],
)
def test_bad_boxes_are_refused(client: httpx.Client, bbox: list[float], words: list[str]) -> None:
    data = jsonl([_rec(1, boxes=[]), _rec(2, boxes=[{"label": "star", "bbox": bbox}])])
    refused(upload(client, "det", data, "loupe"), "line 2", *words)


@pytest.mark.usefixtures("unchanged")
def test_bad_coco_yolo_and_requests(client: httpx.Client) -> None:
    doc = coco(samples()[:3])
    doc["annotations"][1]["category_id"] = 77
    refused(
        upload(client, "det", json.dumps(doc).encode(), "coco", source="shapes"),
        "annotations[1]",
        "category_id",
    )
    doc = coco(samples()[:3])
    doc["annotations"][2]["score"] = float("nan")
    refused(
        upload(client, "det", json.dumps(doc).encode(), "coco", source="shapes"), "boxes[0].score", "finite"
    )
    refused(upload(client, "det", b"not a zip", "yolo", source="shapes"), "not a zip")
    refused(upload(client, "gt", b"[]", "coco"), "classification set")
    refused(upload(client, "det", b"x", "nope"), "format")
    refused(
        client.post("/api/v1/labelsets/nope/annotations", json={"from_field": "shape"}), "nope", status=404
    )
    refused(client.post("/api/v1/labelsets/gt/annotations", json={}), "exactly one")
    refused(client.post("/api/v1/labelsets/det/annotations", json={"from_field": "shape"}), "classification")
    refused(
        client.post(
            "/api/v1/labelsets/gt/annotations", content=b"<x/>", headers={"content-type": "text/xml"}
        ),
        status=415,
    )


@pytest.mark.usefixtures("unchanged")
def test_a_label_studio_project_loupe_never_exported_to(client: httpx.Client) -> None:
    body = {"label_studio": {"url": "http://127.0.0.1:9", "token": "t" * 40, "project_id": 3}}
    refused(client.post("/api/v1/labelsets/gt/annotations", json=body), "never exported to project 3")


def test_a_field_with_a_class_the_set_does_not_declare_fails_the_job_and_writes_nothing(
    client: httpx.Client,
) -> None:
    before = _labels(client)
    resp = client.post("/api/v1/labelsets/gt/annotations", json={"from_field": "shape"})
    assert resp.status_code == 202, resp.text
    from tests.integration.labels_helpers import wait_job

    job = wait_job(client, resp.json())
    assert job["state"] == "failed" and "unknown class" in job["detail"], job
    assert job["counts"]["imported"] == 0 and job["counts"]["invalid"] == 1
    assert _labels(client) == before
