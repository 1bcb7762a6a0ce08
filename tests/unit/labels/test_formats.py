"""Each annotation format parsed to records, and refused whole with the place and field named."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from service.errors import InvalidAnnotations
from service.labels.formats import parse
from service.labels.formats.yolo import image_stems
from service.labels.records import Record, check_record, to_pixels


def _zip(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return buf.getvalue()


def refused(fmt: str, data: bytes, *words: str, task: str = "classification") -> None:
    with pytest.raises(InvalidAnnotations) as info:
        recs = parse(fmt, data, task=task, classes=None)
        for r in recs:
            check_record(r, task=task, classes=None)
    for w in words:
        assert w in info.value.detail, info.value.detail


def test_csv_takes_per_class_score_columns_and_a_json_scores_column() -> None:
    rows = "file,score_cat,score_dog\na.png,0.2,0.8\nb.png,0.9,0.1\n"
    recs = parse("csv", rows.encode(), task="classification", classes=None)
    for r in recs:
        check_record(r, task="classification", classes=None)
    assert [(r.ref.file, r.label, r.score, r.scores) for r in recs] == [
        ("a.png", "dog", 0.8, {"cat": 0.2, "dog": 0.8}),
        ("b.png", "cat", 0.9, {"cat": 0.9, "dog": 0.1}),
    ]
    rows = 'asset_id,label,scores\n00000000-0000-0000-0000-000000000001,cat,"{""cat"": 0.6, ""dog"": 0.4}"\n'
    (rec,) = parse("csv", rows.encode(), task="classification", classes=None)
    assert rec.scores == {"cat": 0.6, "dog": 0.4} and rec.ref.asset_id.endswith("1")  # type: ignore[union-attr]
    refused("csv", b"file,label\na.png,cat,extra\n", "line 2", "3 cells")
    refused("csv", b"name,label\na.png,cat\n", "line 1", "asset_id")
    refused("csv", b"file,label,score_cat\na.png,cat,high\n", "line 2", "score_cat")


def test_yolo_reads_names_from_data_yaml_and_converts_centres_to_corners() -> None:
    data = _zip(
        {"data.yaml": "names:\n  0: cat\n  1: dog\n", "labels/train/a.txt": "1 0.5 0.5 0.2 0.4 0.9\n\n"}
    )
    (rec,) = parse("yolo", data, task="detection", classes=None)
    check_record(rec, task="detection", classes=None)
    to_pixels(rec, width=200, height=100)
    assert rec.boxes == [
        {"label": "dog", "bbox": [pytest.approx(80.0), pytest.approx(30.0), 40.0, 40.0], "score": 0.9}
    ]
    assert image_stems("labels/train/a.txt") == ["images/train/a", "train/a", "labels/train/a"]
    refused("yolo", _zip({"a.txt": "0 0.5 0.5 0.1 0.1\n"}), "no classes.txt", task="detection")
    refused(
        "yolo",
        _zip({"classes.txt": "cat\n", "a.txt": "3 0.5 0.5 0.1 0.1\n"}),
        "a.txt line 1",
        "class id",
        task="detection",
    )
    refused(
        "yolo",
        _zip({"classes.txt": "cat\n", "a.txt": "0 0.5 0.5\n"}),
        "a.txt line 1",
        "got 3 values",
        task="detection",
    )


def test_coco_results_without_images_and_label_studio_rotations_are_refused() -> None:
    refused(
        "coco",
        b'[{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5}]',
        "bare list",
        task="detection",
    )
    twice = {
        "images": [{"id": 1, "file_name": "a.png"}, {"id": 1, "file_name": "b.png"}],
        "annotations": [],
        "categories": [{"id": 1, "name": "x"}],
    }
    refused("coco", json.dumps(twice).encode(), "images[1]", "id", task="detection")
    task = {
        "id": 7,
        "data": {"asset_id": "00000000-0000-0000-0000-000000000001"},
        "annotations": [
            {
                "result": [
                    {
                        "type": "rectanglelabels",
                        "value": {
                            "x": 1,
                            "y": 1,
                            "width": 5,
                            "height": 5,
                            "rotation": 30,
                            "rectanglelabels": ["cat"],
                        },
                    }
                ]
            }
        ],
    }
    refused("label-studio", json.dumps([task]).encode(), "task 7", "rotation", task="detection")
    refused("label-studio", b'{"not": "a list"}', "list of tasks")


def test_label_studio_percentages_become_pixels_of_the_asset() -> None:
    task = {
        "id": 1,
        "data": {"asset_id": "00000000-0000-0000-0000-000000000001"},
        "annotations": [
            {
                "result": [
                    {
                        "type": "rectanglelabels",
                        "value": {
                            "x": 10,
                            "y": 20,
                            "width": 50,
                            "height": 25,
                            "rotation": 0,
                            "rectanglelabels": ["cat"],
                        },
                    }
                ]
            }
        ],
    }
    (rec,) = parse("label-studio", json.dumps([task]).encode(), task="detection", classes=None)
    check_record(rec, task="detection", classes=None)
    to_pixels(rec, width=400, height=200)
    assert rec.boxes == [{"label": "cat", "bbox": [40.0, 40.0, 200.0, 50.0]}]
    outside = Record(where="line 1", ref=rec.ref, boxes=[{"label": "cat", "bbox": [0, 0, 401, 10]}])
    with pytest.raises(InvalidAnnotations, match="outside the 400 x 200 image"):
        to_pixels(outside, width=400, height=200)
