"""COCO detection files: an instances file (ground truth) or the same shape whose annotations
carry `score` (predictions). `images[].file_name` names each asset, relative to the root of the
call's `source`; an image without annotations is an asset with no boxes."""

from __future__ import annotations

import json
from typing import Any

from service.errors import InvalidAnnotations
from service.labels.formats.jsonio import loads
from service.labels.records import AssetRef, Record, fail


def parse(data: bytes) -> list[Record]:
    from service.labels.formats import text_of

    try:
        doc = loads(text_of(data, what="the COCO file"))
    except json.JSONDecodeError as exc:
        raise InvalidAnnotations(
            f"the COCO file is not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
            "nothing was imported"
        ) from None
    if isinstance(doc, list):
        raise InvalidAnnotations(
            "a bare list of COCO results cannot name its files: send the object "
            '{"images": [...], "annotations": [...], "categories": [...]}; nothing was imported'
        )
    if not isinstance(doc, dict):
        raise InvalidAnnotations("the COCO file must be a JSON object; nothing was imported")
    names = _categories(doc.get("categories"))
    records, by_image = _images(doc.get("images"))
    annotations = doc.get("annotations")
    if not isinstance(annotations, list):
        raise fail("the COCO file", "annotations", "expected a list (it may be empty)")
    for i, ann in enumerate(annotations):
        where = f"annotations[{i}]"
        if not isinstance(ann, dict):
            raise fail(where, None, "expected an object")
        rec = by_image.get(ann.get("image_id"))  # type: ignore[arg-type]
        if rec is None:
            raise fail(where, "image_id", f"{ann.get('image_id')!r} is not the id of an entry of `images`")
        category = ann.get("category_id")
        if category not in names:
            raise fail(where, "category_id", f"{category!r} is not the id of an entry of `categories`")
        box: dict[str, Any] = {"label": names[category], "bbox": ann.get("bbox")}
        if "score" in ann:
            box["score"] = ann["score"]
        if ann.get("iscrowd"):
            box["iscrowd"] = True
        assert rec.boxes is not None
        rec.boxes.append(box)
    return records


def _categories(raw: Any) -> dict[Any, str]:
    if not isinstance(raw, list) or not raw:
        raise fail("the COCO file", "categories", "expected a non-empty list of {id, name}")
    names: dict[Any, str] = {}
    for i, cat in enumerate(raw):
        if not isinstance(cat, dict) or not isinstance(cat.get("name"), str) or "id" not in cat:
            raise fail(f"categories[{i}]", None, "expected {id, name}")
        if cat["id"] in names:
            raise fail(f"categories[{i}]", "id", f"{cat['id']!r} is listed twice")
        names[cat["id"]] = cat["name"]
    return names


def _images(raw: Any) -> tuple[list[Record], dict[Any, Record]]:
    if not isinstance(raw, list) or not raw:
        raise fail("the COCO file", "images", "expected a non-empty list of {id, file_name}")
    records: list[Record] = []
    by_id: dict[Any, Record] = {}
    for i, img in enumerate(raw):
        where = f"images[{i}]"
        if not isinstance(img, dict) or "id" not in img:
            raise fail(where, None, "expected {id, file_name, width?, height?}")
        name = img.get("file_name")
        if not isinstance(name, str) or not name.strip():
            raise fail(where, "file_name", "expected the image's file name, relative to the source root")
        if img["id"] in by_id:
            raise fail(where, "id", f"{img['id']!r} is the id of another image too")
        rec = Record(where=f"{where} ({name})", ref=AssetRef(file=name), boxes=[])
        records.append(rec)
        by_id[img["id"]] = rec
    return records, by_id
