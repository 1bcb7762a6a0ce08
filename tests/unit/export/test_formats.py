"""Every export file format written for real and parsed back; requests, task shapes and recording.

Labelbox's and COCO's JSON schemas below are transcribed from their documented import
formats (Labelbox "import data rows" JSON; COCO's `images` entries, which CVAT's COCO 1.0
importer reads), since neither tool publishes a machine-readable schema.
"""

from __future__ import annotations

import csv
import json
import math
import uuid
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pydantic import ValidationError

from service.cli.export import TARGETS
from service.errors import InvalidQuery
from service.export import label_studio_tasks as tasks
from service.export.base import ExportContext, Selected, exporter_for, record_exports, targets
from service.export.schemas import ExportRequest
from service.index.base import Record

BASE = "http://loupe.test:8000"

LABELBOX_ROW = {
    "type": "object",
    "required": ["row_data", "global_key", "media_type"],
    "properties": {
        "row_data": {"type": "string", "pattern": "^https?://"},
        "global_key": {"type": "string", "minLength": 1, "maxLength": 200},
        "external_id": {"type": "string"},
        "media_type": {"enum": ["IMAGE"]},
        "metadata_fields": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "value"],
                "properties": {"name": {"type": "string"}, "value": {"type": ["string", "number"]}},
                "additionalProperties": False,
            },
        },
    },
    "additionalProperties": False,
}

COCO = {
    "type": "object",
    "required": ["images", "annotations", "categories"],
    "properties": {
        "info": {"type": "object"},
        "licenses": {"type": "array"},
        "annotations": {"type": "array"},
        "categories": {"type": "array"},
        "images": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "file_name", "width", "height"],
                "properties": {
                    "id": {"type": "integer", "minimum": 1},
                    "file_name": {"type": "string", "minLength": 1},
                    "width": {"type": "integer", "minimum": 1},
                    "height": {"type": "integer", "minimum": 1},
                    "coco_url": {"type": "string"},
                    "date_captured": {"type": "string"},
                },
            },
        },
    },
}


class FakeIndex:
    def __init__(self, payloads: dict[str, dict[str, Any]]) -> None:
        self.payloads = payloads
        self.writes: list[tuple[list[str], dict[str, Any]]] = []

    def retrieve(self, ids: list[str], *, with_vectors: bool = False) -> list[Record]:
        return [Record(id=i, payload=self.payloads[i]) for i in ids if i in self.payloads]

    def set_payload(self, ids: list[str], payload: dict[str, Any]) -> None:
        self.writes.append((list(ids), payload))
        for i in ids:
            self.payloads[i] = {**self.payloads[i], **json.loads(json.dumps(payload))}


class FakeState:
    def update_export(self, export_id: str, **fields: Any) -> None:
        pass


class FakeCatalog:
    """What file exporters touch: the index (recording), the state (progress), the home directory."""

    def __init__(self, home: Path, payloads: dict[str, dict[str, Any]]) -> None:
        self.index = FakeIndex(payloads)
        self.state = FakeState()
        self.settings = type("S", (), {"home": home})()

    def connector(self, name: str) -> None:
        return None


def asset(i: int, **meta: Any) -> dict[str, Any]:
    aid = str(uuid.UUID(int=i + 1))
    return {
        "id": aid,
        "source": "photos",
        "key": f"dir/img{i}.jpg",
        "uri": f"file:///data/dir/img{i}.jpg",
        "media_type": "image/jpeg",
        "width": 64 + i,
        "height": 48,
        "modified_at": "2024-05-06T07:08:09Z",
        "metadata": meta,
        "exports": [],
    }


@pytest.fixture
def items() -> list[Selected]:
    return [
        Selected(asset(0, label="bike", score=0.9, site="north", tags=["a", "b"]), 0.8),
        Selected(asset(1, prediction=["car", "bus"], prediction_score=0.4, camera={"model": "X1"}), 0.7),
        Selected(asset(2, label='unicycle, "odd"\nline'), 0.6),
    ]


def write(tmp_path: Path, target: str, items: list[Selected], **request: Any) -> tuple[Path, ExportContext]:
    path = tmp_path / f"out-{target}"
    req = ExportRequest.model_validate(
        {"target": target, "ids": [i.id for i in items], "path": str(path), **request}
    )
    payloads = {i.id: {"source": "photos", "key": i.asset["key"], "exports": []} for i in items}
    ctx = ExportContext(
        catalog=FakeCatalog(tmp_path, payloads), request=req, export_id="exp-1", base_url=BASE
    )  # type: ignore[arg-type]
    exporter = exporter_for(target)
    exporter.check(req)
    exporter.prepare(ctx)
    exporter.run(ctx, [items])
    return path, ctx


def content_url(a: Selected) -> str:
    return f"{BASE}/api/v1/assets/{a.id}/content"


def test_jsonl_round_trips(tmp_path, items):
    path, ctx = write(tmp_path, "jsonl", items)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["id"] for r in rows] == [i.id for i in items]
    for row, item in zip(rows, items, strict=True):
        assert row["url"] == content_url(item) and row["uri"] == item.asset["uri"]
        assert row["metadata"] == item.asset["metadata"] and row["score"] == item.score
        assert (row["width"], row["height"], row["key"]) == (item.asset["width"], 48, item.asset["key"])
    assert ctx.counts.sent == 3 and ctx.location == str(path)


def test_csv_round_trips_with_metadata_columns(tmp_path, items):
    path, _ = write(tmp_path, "csv", items)
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert reader.fieldnames is not None and reader.fieldnames[:6] == [
        "id",
        "source",
        "key",
        "uri",
        "url",
        "score",
    ]
    assert {"meta.label", "meta.tags", "meta.camera", "meta.prediction"} <= set(reader.fieldnames)
    assert [r["id"] for r in rows] == [i.id for i in items]
    assert json.loads(rows[0]["meta.tags"]) == ["a", "b"] and rows[0]["meta.camera"] == ""
    assert json.loads(rows[1]["meta.camera"]) == {"model": "X1"}
    assert rows[2]["meta.label"] == 'unicycle, "odd"\nline'  # quoting survives commas, quotes, newlines
    assert float(rows[0]["score"]) == pytest.approx(0.8) and rows[0]["url"] == content_url(items[0])


def test_csv_keeps_only_the_chosen_fields(tmp_path, items):
    path, _ = write(tmp_path, "csv", items, fields=["site", "camera.model"])
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [k for k in rows[0] if k.startswith("meta.")] == ["meta.site", "meta.camera.model"]
    assert (rows[0]["meta.site"], rows[1]["meta.camera.model"]) == ("north", "X1")


def test_labelbox_rows_follow_the_data_row_schema(tmp_path, items):
    path, _ = write(tmp_path, "labelbox", items)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for row, item in zip(rows, items, strict=True):
        jsonschema.validate(row, LABELBOX_ROW)
        assert row["global_key"] == item.id and row["row_data"] == content_url(item)
        assert row["external_id"] == f"photos/{item.asset['key']}"
    fields = {f["name"]: f["value"] for f in rows[0]["metadata_fields"]}
    assert fields == {"label": "bike", "score": 0.9, "site": "north", "tags": '["a", "b"]'}


def test_coco_image_list_follows_the_schema(tmp_path, items):
    path, _ = write(tmp_path, "coco", items)
    doc = json.loads(path.read_text())
    jsonschema.validate(doc, COCO)
    assert [im["id"] for im in doc["images"]] == [1, 2, 3]  # CVAT and pycocotools want 1..N
    for image, item in zip(doc["images"], items, strict=True):
        assert (image["file_name"], image["width"], image["height"]) == (
            item.asset["key"],
            item.asset["width"],
            48,
        )
        assert image["loupe_id"] == item.id and image["coco_url"] == content_url(item)
    assert doc["annotations"] == [] and doc["categories"] == []


def test_coco_reports_an_asset_without_a_size_and_writes_the_rest(tmp_path, items):
    items[1].asset["width"] = None
    path, ctx = write(tmp_path, "coco", items)
    doc = json.loads(path.read_text())
    jsonschema.validate(doc, COCO)
    assert [im["loupe_id"] for im in doc["images"]] == [items[0].id, items[2].id]
    assert [im["id"] for im in doc["images"]] == [1, 2]
    assert (ctx.counts.sent, ctx.counts.failed) == (2, 1) and "image size is unknown" in ctx.errors[0]


def test_label_studio_tasks_file(tmp_path, items):
    path, _ = write(tmp_path, "label-studio-json", items)
    doc = json.loads(path.read_text())
    assert [t["data"]["asset_id"] for t in doc] == [i.id for i in items]
    first, second, third = doc
    assert first["data"]["image"] == content_url(items[0]) and first["data"]["score"] == pytest.approx(0.8)
    assert first["data"]["meta_score"] == 0.9 and first["data"]["site"] == "north"
    (pred,) = first["predictions"]
    assert pred["result"] == [
        {"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": ["bike"]}}
    ]
    assert pred["score"] == 0.9
    assert second["predictions"][0]["result"][0]["value"]["choices"] == ["car", "bus"]
    assert second["predictions"][0]["score"] == 0.4
    assert third["data"]["label"].startswith("unicycle")


def test_a_value_json_cannot_hold_fails_that_asset_only(tmp_path, items):
    items[0].asset["metadata"]["bad"] = math.nan
    path, ctx = write(tmp_path, "jsonl", items)
    rows = [json.loads(line) for line in path.read_text().splitlines()]  # still strict JSON
    assert [r["id"] for r in rows] == [items[1].id, items[2].id]
    assert ctx.counts.failed == 1 and ctx.errors[0].startswith(items[0].id)


def test_written_assets_are_recorded_after_the_file_is_complete(tmp_path, items):
    path, ctx = write(tmp_path, "jsonl", items)
    index = ctx.catalog.index
    for item in items:
        (entry,) = index.payloads[item.id]["exports"]  # type: ignore[attr-defined]
        assert entry["target"] == "jsonl" and entry["project"] == str(path) and entry["export_id"] == "exp-1"
    assert not list(tmp_path.glob(".out-jsonl.*.part"))


def test_recording_appends_to_each_assets_history():
    payloads = {"a": {"exports": [{"target": "csv"}]}, "b": {"exports": []}, "c": {}}
    catalog = type("C", (), {"index": FakeIndex(payloads)})()
    record_exports(catalog, ["a", "b", "c", "gone"], {"target": "jsonl", "project": "p"})  # type: ignore[arg-type]
    assert payloads["a"]["exports"] == [{"target": "csv"}, {"target": "jsonl", "project": "p"}]
    assert payloads["b"]["exports"] == payloads["c"]["exports"] == [{"target": "jsonl", "project": "p"}]
    assert len(catalog.index.writes) == 2  # b and c share a history: one write


def test_downloads_go_under_the_home_directory(tmp_path, items):
    req = ExportRequest(target="coco", filter={})
    ctx = ExportContext(catalog=FakeCatalog(tmp_path, {}), request=req, export_id="e1", base_url=BASE)  # type: ignore[arg-type]
    exporter = exporter_for("coco")
    exporter.prepare(ctx)
    exporter.run(ctx, [items])
    assert ctx.location == f"{BASE}/api/v1/exports/e1/download"
    assert len(json.loads((tmp_path / "exports" / "e1.json").read_text())["images"]) == 3


# -- requests ------------------------------------------------------------------


def test_the_cli_lists_every_registered_target():
    assert sorted(TARGETS) == targets()


def test_unknown_target_names_the_valid_ones():
    with pytest.raises(
        InvalidQuery, match="valid targets: coco, csv, jsonl, label-studio, label-studio-json"
    ):
        exporter_for("cvat-xml")


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"target": "jsonl"}, "give exactly one selection"),
        ({"target": "jsonl", "ids": [], "filter": {}}, "got ids, filter"),
        (
            {
                "target": "label-studio",
                "filter": {},
                "label_studio": {"url": "ftp://x", "token": "t", "title": "abc"},
            },
            "http",
        ),
        (
            {"target": "label-studio", "filter": {}, "label_studio": {"url": "http://x", "token": "t"}},
            "exactly one of",
        ),
        ({"target": "jsonl", "filter": {}, "presign_expiry_s": 10}, "greater than or equal to 60"),
    ],
)
def test_malformed_requests_are_refused(body, problem):
    with pytest.raises(ValidationError, match=problem):
        ExportRequest.model_validate(body)


def test_the_stored_request_has_no_token():
    req = ExportRequest.model_validate(
        {
            "target": "label-studio",
            "ids": ["x"] * 30,
            "label_studio": {"url": "http://ls", "token": "s3cret", "title": "abc"},
        }
    )
    public = json.dumps(req.public())
    assert "s3cret" not in public and "token" not in public and "10 more" in public


@pytest.mark.parametrize(
    ("target", "body", "path"),
    [
        ("jsonl", {"path": "relative/out.jsonl"}, "path"),
        ("jsonl", {"label_studio": {"url": "http://ls", "token": "t", "title": "abc"}}, "label_studio"),
        ("label-studio", {}, "label_studio"),
        (
            "label-studio",
            {"path": "/tmp/x", "label_studio": {"url": "http://ls", "token": "t", "title": "abc"}},
            "path",
        ),
    ],
)
def test_targets_refuse_options_that_are_not_theirs(target, body, path):
    req = ExportRequest.model_validate({"target": target, "filter": {}, **body})
    with pytest.raises(InvalidQuery) as err:
        exporter_for(target).check(req)
    assert err.value.path == path


# -- Label Studio task shapes ----------------------------------------------------


def test_label_configs_are_read_for_the_image_variable_and_choices():
    shape = tasks.shape_of(
        '<View><Text name="t" value="$caption"/><Image name="photo" value="$img"/>'
        '<Choices name="kind" toName="photo"><Choice value="bike"/><Choice value="car"/></Choices></View>'
    )
    assert shape == tasks.TaskShape(
        image_var="img", to_name="photo", from_name="kind", choices=frozenset({"bike", "car"})
    )
    assert shape.accepts(["bike"]) and not shape.accepts(["bus"]) and not shape.accepts([])
    default = tasks.shape_of(tasks.default_label_config(["b", "a", 'q"uote']))
    assert default.choices == frozenset({"a", "b", 'q"uote'}) and default.image_var == "image"
    with pytest.raises(InvalidQuery, match="no <Image"):
        tasks.shape_of("<View><Text name='t' value='$x'/></View>")
    with pytest.raises(InvalidQuery, match="not valid XML"):
        tasks.shape_of("<View>")


def test_model_labels_come_from_prediction_then_label():
    assert tasks.model_label({"prediction": "car", "label": "bike", "score": 0.3}, None) == (["car"], 0.3)
    assert tasks.model_label({"label": "bike", "label_score": 0.8, "score": 0.1}, None) == (["bike"], 0.8)
    assert tasks.model_label({"cls": ["a", "b"]}, "cls") == (["a", "b"], None)
    assert tasks.model_label({"label": 3, "score": math.inf}, None) == ([], None)
    assert tasks.model_label({"label": "x", "score": True}, None) == (["x"], None)


def test_the_cli_picks_a_predictions_set_for_label_studio() -> None:
    from service.cli import _parser
    from service.cli.export import build_request

    args = _parser().parse_args(
        ["export", "--to", "label-studio", "--ids", "a", "--ls-url", "http://127.0.0.1:8080"]
        + ["--ls-token", "t", "--project-id", "3", "--predictions-set", "run_7"]
    )
    request, _ = build_request(args)
    assert request.label_studio is not None and request.label_studio.predictions_set == "run_7"
    args.predictions_set = None
    assert build_request(args)[0].label_studio.predictions_set is None  # type: ignore[union-attr]
