"""Label Studio tasks (an export file in its JSON format, or tasks read live) as records.

A task names its asset by the `data.asset_id` Loupe put in it when it exported the task.
Its newest annotation that was not cancelled counts; a task nobody has annotated yet is no
record. `choices` results are a classification label; `rectanglelabels` results are boxes,
whose percentages of the image become pixels of the asset once it is matched. Rotated boxes
are refused (a COCO-style box cannot hold them).
"""

from __future__ import annotations

import json
from typing import Any

from service.errors import InvalidAnnotations
from service.labels.formats.jsonio import loads
from service.labels.records import AssetRef, Record, fail


def parse_export(data: bytes) -> list[Record]:
    from service.labels.formats import text_of

    try:
        doc = loads(text_of(data, what="the Label Studio export"))
    except json.JSONDecodeError as exc:
        raise InvalidAnnotations(
            f"the Label Studio export is not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
            "export the project as JSON; nothing was imported"
        ) from None
    if not isinstance(doc, list):
        raise InvalidAnnotations("a Label Studio JSON export is a list of tasks; nothing was imported")
    out = [rec for i, task in enumerate(doc) if (rec := task_record(task, where=f"task[{i}]")) is not None]
    if not out:
        raise InvalidAnnotations("no task of the export has a submitted annotation; nothing was imported")
    return out


def task_record(task: Any, *, where: str) -> Record | None:
    """The record of one task's newest submitted annotation; None when it has none."""
    if not isinstance(task, dict):
        raise fail(where, None, "expected a task object")
    if "id" in task:
        where = f"task {task['id']}"
    annotations = [
        a for a in task.get("annotations") or [] if isinstance(a, dict) and not a.get("was_cancelled")
    ]
    if not annotations:
        return None
    newest = max(
        annotations, key=lambda a: (str(a.get("updated_at") or a.get("created_at") or ""), a.get("id") or 0)
    )
    asset = (task.get("data") or {}).get("asset_id")
    ref = AssetRef(asset_id=str(asset)) if asset else AssetRef(asset_id=None, key=None, file=None)
    rec = Record(where=where, ref=ref, units="percent")
    results = newest.get("result") or []
    if not isinstance(results, list):
        raise fail(where, "annotations.result", "expected a list of results")
    boxes: list[dict[str, Any]] = []
    for i, res in enumerate(results):
        if not isinstance(res, dict):
            continue
        value = res.get("value") or {}
        kind = res.get("type")
        if kind == "choices":
            choices = value.get("choices") or []
            if len(choices) != 1:
                raise fail(where, f"result[{i}].choices", f"expected one choice, got {len(choices)}")
            rec.label = choices[0]
        elif kind == "rectanglelabels":
            boxes.append(_box(value, where=where, name=f"result[{i}]"))
    if boxes:
        rec.boxes = boxes
    elif rec.label is None:
        rec.boxes = []  # submitted with nothing marked: an image without objects
    return rec


def _box(value: dict[str, Any], *, where: str, name: str) -> dict[str, Any]:
    labels = value.get("rectanglelabels") or []
    if len(labels) != 1:
        raise fail(where, f"{name}.rectanglelabels", f"expected one label per box, got {len(labels)}")
    if abs(float(value.get("rotation") or 0.0)) > 1e-6:
        raise fail(where, f"{name}.rotation", "rotated boxes cannot be stored as [x, y, w, h]")
    return {"label": labels[0], "bbox": [value.get(k) for k in ("x", "y", "width", "height")]}
