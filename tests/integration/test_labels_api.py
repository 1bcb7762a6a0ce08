"""Label sets through the REST API on a synced catalog of synthetic shapes (whose classes and
boxes are known): every format parsed back, filters and facets on the new fields, idempotent
re-imports, survival across a re-sync, and deletion."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.config import Settings
from service.synth.shapes import Sample
from tests.conftest import LiveServer
from tests.integration.labels_helpers import (
    SIZE,
    add_and_sync,
    all_assets,
    by_file,
    coco,
    create_set,
    filename,
    imported,
    jsonl,
    resync,
    upload,
    write_shapes,
    zipped,
)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, Path, list[Sample]]]:
    """One server and one synced catalog for the module; each test uses its own set names."""
    from service.api.app import create_app
    from service.catalog.catalog import Catalog
    from tests.fakes import FakeEncoder

    tmp = tmp_path_factory.mktemp("labels-api")
    settings = Settings(home=tmp / "home", _env_file=None)  # type: ignore[call-arg]
    catalog = Catalog(settings, encoder=FakeEncoder())
    with (
        LiveServer(create_app(settings, catalog=catalog)) as server,
        httpx.Client(base_url=server.url, timeout=60) as c,
    ):
        truth = write_shapes(tmp / "shapes")
        add_and_sync(c, "shapes", tmp / "shapes")
        yield c, tmp / "shapes", truth
    catalog.close()


@pytest.fixture
def client(served: tuple[httpx.Client, Path, list[Sample]]) -> httpx.Client:
    return served[0]


@pytest.fixture
def shapes(served: tuple[httpx.Client, Path, list[Sample]]) -> tuple[Path, list[Sample]]:
    return served[1], served[2]


def test_a_set_is_created_listed_shown_and_its_name_is_unique(client: httpx.Client) -> None:
    made = create_set(client, "named", "ground_truth", "classification", classes=["a", "b"], model=None)
    assert made["classes"] == ["a", "b"] and made["classes_declared"] and made["assets"] == 0
    again = client.post(
        "/api/v1/labelsets", json={"name": "named", "role": "predictions", "task": "detection"}
    )
    assert again.status_code == 409 and "named" in again.json()["detail"]
    assert "named" in [s["name"] for s in client.get("/api/v1/labelsets").json()["data"]]
    assert client.get("/api/v1/labelsets/named").json()["role"] == "ground_truth"
    assert client.get("/api/v1/labelsets/nope").status_code == 404
    bad = client.post(
        "/api/v1/labelsets", json={"name": "a.b", "role": "ground_truth", "task": "classification"}
    )
    assert bad.status_code == 422 and "name" in bad.json()["detail"]


def test_ground_truth_from_a_metadata_field_and_predictions_from_jsonl(
    client: httpx.Client, shapes: tuple[Path, list[Sample]]
) -> None:
    _, truth = shapes
    create_set(client, "gt", "ground_truth", "classification")
    job = imported(client, client.post("/api/v1/labelsets/gt/annotations", json={"from_field": "shape"}))
    assert job["counts"] == {"received": 40, "imported": 40, "unknown_asset": 0, "invalid": 0}
    assets = by_file(client)
    for s in truth:
        assert assets[filename(s.index)]["labels"]["gt"]["label"] == s.attributes["shape"]
    learned = client.get("/api/v1/labelsets/gt").json()
    assert learned["classes"] == sorted({s.attributes["shape"] for s in truth}) and learned["assets"] == 40

    # A rule-based "model": right on even images, "circle" on odd ones, with a probability vector.
    create_set(client, "pred", "predictions", "classification", model="rule v1")
    records = []
    for s in truth:
        guess = s.attributes["shape"] if s.index % 2 == 0 else "circle"
        others = "square" if guess != "square" else "triangle"
        records.append({"source": "shapes", "key": filename(s.index), "scores": {guess: 0.7, others: 0.3}})
    job = imported(client, upload(client, "pred", jsonl(records), "loupe"))
    assert job["counts"]["imported"] == 40
    circles = [s for s in truth if s.index % 2 or s.attributes["shape"] == "circle"]
    assert len(all_assets(client, {"labels.pred.label": "circle"})) == len(circles)
    facet = client.get("/api/v1/facets/labels.pred.label").json()["values"]
    assert {v["value"]: v["count"] for v in facet}["circle"] == len(circles)
    one = client.get(f"/api/v1/assets/{all_assets(client)[0]['id']}").json()["labels"]["pred"]
    assert one["score"] == 0.7 and one["least_confidence"] == pytest.approx(0.3)
    assert one["margin"] == pytest.approx(0.4) and 0 < one["entropy"] < 1
    assert len(all_assets(client, {"labels.pred.margin": {"lte": 0.5}})) == 40
    first = all_assets(client)[0]["id"]
    hits = client.post("/api/v1/search", json={"like": [first]}).json()["hits"]
    assert all(h["asset"]["labels"]["pred"]["imported_at"] for h in hits)  # search hits carry labels
    # Wrong predictions are a filter: the prediction differs from the truth.
    wrong = [a for a in all_assets(client) if a["labels"]["pred"]["label"] != a["labels"]["gt"]["label"]]
    assert len(wrong) == sum(1 for s in truth if s.index % 2 and s.attributes["shape"] != "circle")


def test_csv_by_file_name_and_reimport_is_idempotent(
    client: httpx.Client, shapes: tuple[Path, list[Sample]]
) -> None:
    _, truth = shapes
    create_set(client, "gt_csv", "ground_truth", "classification")
    rows = ["file,label,score"] + [f"{filename(s.index)},{s.attributes['shape']},1.0" for s in truth]
    data = "\n".join(rows).encode()
    imported(client, upload(client, "gt_csv", data, "csv", source="shapes"))
    first = {k: a["labels"]["gt_csv"] for k, a in by_file(client).items()}
    imported(client, upload(client, "gt_csv", data, "csv", source="shapes"))
    second = {k: a["labels"]["gt_csv"] for k, a in by_file(client).items()}
    strip = lambda v: {k: x for k, x in v.items() if k != "imported_at"}  # noqa: E731
    assert {k: strip(v) for k, v in first.items()} == {k: strip(v) for k, v in second.items()}
    assert client.get("/api/v1/labelsets/gt_csv").json()["assets"] == 40
    # A re-import of some assets replaces theirs and leaves the others alone.
    fix = "file,label\n" + f"{filename(0)},hexagon\n"
    imported(client, upload(client, "gt_csv", fix.encode(), "csv", source="shapes"))
    now = by_file(client)
    assert now[filename(0)]["labels"]["gt_csv"] == {
        **now[filename(0)]["labels"]["gt_csv"],
        "label": "hexagon",
        "score": None,
    }
    assert now[filename(1)]["labels"]["gt_csv"]["label"] == truth[1].attributes["shape"]


def test_coco_ground_truth_and_results_parse_back_to_the_same_boxes(
    client: httpx.Client, shapes: tuple[Path, list[Sample]]
) -> None:
    _, truth = shapes
    create_set(client, "boxes", "ground_truth", "detection")
    job = imported(client, upload(client, "boxes", json.dumps(coco(truth)).encode(), "coco", source="shapes"))
    assert job["counts"]["imported"] == 40
    assets = by_file(client)
    for s in truth:
        value = assets[filename(s.index)]["labels"]["boxes"]
        assert value["boxes"] == [{"label": s.attributes["shape"], "bbox": list(s.bbox or ())}]
        assert value["count"] == 1 and value["classes"] == [s.attributes["shape"]]
    scores = {s.index: round(0.5 + s.index / 100, 2) for s in truth}
    create_set(client, "det", "predictions", "detection")
    imported(
        client,
        upload(client, "det", json.dumps(coco(truth, scores=scores)).encode(), "coco", source="shapes"),
    )
    value = by_file(client)[filename(3)]["labels"]["det"]
    assert value["boxes"][0]["score"] == scores[3] and value["score"] == scores[3]
    assert value["least_confidence"] == pytest.approx(1 - scores[3])
    counts = Counter(s.attributes["shape"] for s in truth)
    facet = client.get("/api/v1/facets/labels.boxes.classes").json()["values"]
    assert {v["value"]: v["count"] for v in facet} == dict(counts)
    assert len(all_assets(client, {"labels.det.count": 1})) == 40


def test_yolo_zip_and_label_studio_export_file(
    client: httpx.Client, shapes: tuple[Path, list[Sample]]
) -> None:
    _, truth = shapes
    names = sorted({s.attributes["shape"] for s in truth})
    files = {"classes.txt": "\n".join(names) + "\n"}
    for s in truth:
        x, y, w, h = s.bbox or (0, 0, 0, 0)
        cx, cy = (x + w / 2) / SIZE, (y + h / 2) / SIZE
        files[f"labels/img_{s.index:05d}.txt"] = (
            f"{names.index(s.attributes['shape'])} {cx} {cy} {w / SIZE} {h / SIZE}\n"
        )
    create_set(client, "yolo", "ground_truth", "detection")
    imported(client, upload(client, "yolo", zipped(files), "yolo", source="shapes"))
    assets = by_file(client)
    for s in truth:
        box = assets[filename(s.index)]["labels"]["yolo"]["boxes"][0]
        assert box["label"] == s.attributes["shape"]
        assert box["bbox"] == pytest.approx(list(s.bbox or ()), abs=1e-6)

    # A Label Studio JSON export of tasks Loupe made (data.asset_id), one labelled per task.
    tasks = []
    for n, (key, a) in enumerate(sorted(assets.items())[:10]):
        result = [
            {"type": "choices", "from_name": "choice", "to_name": "image", "value": {"choices": ["star"]}}
        ]
        newest = [{"type": "choices", "value": {"choices": [a["labels"]["yolo"]["classes"][0]]}}]
        tasks.append(
            {
                "id": n + 1,
                "data": {"image": f"http://x/{key}", "asset_id": a["id"]},
                "annotations": [
                    {"id": 1, "result": result, "was_cancelled": False, "updated_at": "2024-01-01T00:00:00Z"},
                    {"id": 2, "result": newest, "was_cancelled": False, "updated_at": "2024-02-01T00:00:00Z"},
                    {"id": 3, "result": result, "was_cancelled": True, "updated_at": "2024-03-01T00:00:00Z"},
                ],
            }
        )
    tasks.append({"id": 99, "data": {"image": "http://x/y"}, "annotations": []})  # not labelled yet
    create_set(client, "ls", "ground_truth", "classification")
    job = imported(client, upload(client, "ls", json.dumps(tasks).encode(), "label-studio"))
    assert job["counts"]["imported"] == 10
    for _key, a in sorted(by_file(client).items())[:10]:
        assert a["labels"]["ls"]["label"] == a["labels"]["yolo"]["classes"][0]


def test_unknown_assets_are_counted_and_listed_not_guessed(
    client: httpx.Client, shapes: tuple[Path, list[Sample]]
) -> None:
    create_set(client, "gt_unknown", "ground_truth", "classification")
    rows = "file,label\nimg_00001.png,star\nIMG_00002.png,star\nnope/img_00003.png,star\n"
    job = imported(client, upload(client, "gt_unknown", rows.encode(), "csv", source="shapes"))
    assert job["counts"] == {"received": 3, "imported": 1, "unknown_asset": 2, "invalid": 0}
    assert sorted(e["key"] for e in job["errors"]) == ["shapes/IMG_00002.png", "shapes/nope/img_00003.png"]


def test_labels_survive_a_resync_and_go_with_their_set(
    client: httpx.Client, shapes: tuple[Path, list[Sample]]
) -> None:
    root, truth = shapes
    create_set(client, "gt_resync", "ground_truth", "detection")
    imported(client, upload(client, "gt_resync", json.dumps(coco(truth)).encode(), "coco", source="shapes"))
    before = by_file(client)[filename(7)]
    from PIL import Image

    Image.open(root / filename(8)).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(root / filename(7))
    job = resync(client, "shapes")
    assert job["counts"]["updated"] == 1
    after = by_file(client)[filename(7)]
    assert after["size_bytes"] != before["size_bytes"] or after["synced_at"] != before["synced_at"]
    assert after["labels"] == before["labels"]

    assert client.delete("/api/v1/labelsets/gt_resync").status_code == 204
    assert all("gt_resync" not in (a.get("labels") or {}) for a in all_assets(client))
    assert client.get("/api/v1/labelsets/gt_resync").status_code == 404
    assert client.delete("/api/v1/labelsets/gt_resync").status_code == 404
