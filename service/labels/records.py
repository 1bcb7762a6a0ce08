"""One annotation as every format parses it, and the checks that refuse bad ones (naming where).

A format yields `Record`s; `check_record` validates what needs no catalog (classes, scores,
box shapes, duplicates), `check_boxes` what needs the asset (boxes inside the image). Every
failure is an InvalidAnnotations naming the record's place in the input (`line 12`,
`annotations[3]`, `image 'a.png'`, `task 17`) and the field.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from service.errors import InvalidAnnotations

# Boxes may reach past the image edge by this many pixels: tools round, and Label Studio's
# percentages come back as 100.00000001.
EDGE_TOLERANCE_PX = 0.5
MAX_BOXES = 10_000  # per asset
Units = Literal["pixels", "fraction", "percent"]


@dataclass(slots=True)
class AssetRef:
    """How a record names its asset: an id, a source + key, or a file name under `source`."""

    asset_id: str | None = None
    source: str | None = None
    key: str | None = None
    file: str | None = None  # relative to the source root; matched as that source's key

    def text(self) -> str:
        if self.asset_id:
            return f"asset {self.asset_id}"
        if self.key is not None:
            return f"{self.source}/{self.key}"
        return f"file {self.file!r}"


@dataclass(slots=True)
class Record:
    """One asset's annotation. Box coordinates are in `units` until matched (then pixels)."""

    where: str
    ref: AssetRef
    label: str | None = None
    score: float | None = None
    scores: dict[str, float] | None = None
    boxes: list[dict[str, Any]] | None = None
    units: Units = "pixels"
    extra: dict[str, Any] = field(default_factory=dict)


def fail(where: str, field_name: str | None, problem: str) -> InvalidAnnotations:
    at = f"{where}, field {field_name}" if field_name else where
    return InvalidAnnotations(f"{at}: {problem}; nothing was imported")


def number(value: Any, *, where: str, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise fail(where, name, f"expected a number, got {_kind(value)}")
    out = float(value)
    if not math.isfinite(out):
        raise fail(where, name, f"expected a finite number, got {value}")
    return out


def probability(value: Any, *, where: str, name: str) -> float:
    p = number(value, where=where, name=name)
    if not 0.0 <= p <= 1.0:
        raise fail(where, name, f"a score is a probability in [0, 1], got {p}")
    return p


def class_name(value: Any, *, where: str, name: str, classes: frozenset[str] | None) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise fail(where, name, f"expected a class name, got {_kind(value)}")
    if classes is not None and value not in classes:
        shown = ", ".join(sorted(classes)[:20]) + (" ..." if len(classes) > 20 else "")
        raise fail(where, name, f"unknown class {value!r}; the set's classes are: {shown}")
    return value


def check_record(rec: Record, *, task: str, classes: frozenset[str] | None) -> None:
    """Validate a record's own content for a set of `task` (and its declared `classes`)."""
    w = rec.where
    if task == "classification":
        if rec.boxes:
            raise fail(w, "boxes", "this is a classification set; give `label` (and `score`/`scores`)")
        if rec.scores is not None:
            if not isinstance(rec.scores, dict) or not rec.scores:
                raise fail(w, "scores", "expected an object of class -> probability")
            if not _plain_scores(rec.scores, classes):
                rec.scores = {
                    class_name(k, where=w, name="scores", classes=classes): probability(
                        v, where=w, name=f"scores.{k}"
                    )
                    for k, v in rec.scores.items()
                }
            if rec.label is None:
                rec.label = max(rec.scores, key=rec.scores.__getitem__)
        if rec.label is None:
            raise fail(w, "label", "missing: a classification record needs a class name")
        rec.label = class_name(rec.label, where=w, name="label", classes=classes)
        if rec.score is not None:
            rec.score = probability(rec.score, where=w, name="score")
        elif rec.scores is not None and rec.label in rec.scores:
            rec.score = rec.scores[rec.label]
        return
    if rec.label is not None or rec.scores is not None:
        raise fail(w, "label", "this is a detection set; give `boxes` [{label, score?, bbox}]")
    boxes = rec.boxes if rec.boxes is not None else []
    if not isinstance(boxes, list):
        raise fail(w, "boxes", f"expected a list of boxes, got {_kind(boxes)}")
    if len(boxes) > MAX_BOXES:
        raise fail(w, "boxes", f"at most {MAX_BOXES} boxes per asset, got {len(boxes)}")
    rec.boxes = [_box(b, where=w, name=f"boxes[{i}]", classes=classes) for i, b in enumerate(boxes)]


def _plain_scores(scores: dict[Any, Any], classes: frozenset[str] | None) -> bool:
    """Whether a probability vector is valid as it stands: class-name keys (of the set's classes,
    when declared) and float values in [0, 1]. The common case, checked in one pass; anything
    else (integers to convert, NaN, a bad key) goes through the checks that name the field."""
    values = scores.values()
    if not all(type(v) is float for v in values):
        return False
    total = sum(values)  # NaN when one is NaN, which min and max step over
    if total != total or min(values) < 0.0 or max(values) > 1.0:
        return False
    if classes is not None:
        return scores.keys() <= classes
    return all(type(k) is str and k.strip() for k in scores)


def _box(raw: Any, *, where: str, name: str, classes: frozenset[str] | None) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise fail(where, name, f"expected a box object {{label, score?, bbox}}, got {_kind(raw)}")
    unknown = set(raw) - {"label", "score", "bbox", "iscrowd"}
    if unknown:
        raise fail(where, f"{name}.{sorted(unknown)[0]}", "unknown key; a box has label, score, bbox")
    if "label" not in raw:
        raise fail(where, f"{name}.label", "missing: every box needs a class name")
    bbox = raw.get("bbox")
    if not isinstance(bbox, list | tuple) or len(bbox) != 4:
        raise fail(where, f"{name}.bbox", f"expected [x, y, width, height], got {_kind(bbox)}")
    x, y, bw, bh = (number(v, where=where, name=f"{name}.bbox[{i}]") for i, v in enumerate(bbox))
    if bw <= 0 or bh <= 0:
        raise fail(where, f"{name}.bbox", f"width and height must be > 0, got {bw:g} x {bh:g}")
    if x < 0 or y < 0:
        raise fail(where, f"{name}.bbox", f"the box starts outside the image at ({x:g}, {y:g})")
    box: dict[str, Any] = {
        "label": class_name(raw["label"], where=where, name=f"{name}.label", classes=classes),
        "bbox": [x, y, bw, bh],
    }
    if raw.get("score") is not None:
        box["score"] = probability(raw["score"], where=where, name=f"{name}.score")
    if raw.get("iscrowd"):
        box["iscrowd"] = True  # COCO crowd regions: the evaluator ignores matches to them
    return box


def to_pixels(rec: Record, *, width: int | None, height: int | None) -> None:
    """Bring a matched record's boxes to pixels of its asset and check they lie inside it."""
    if not rec.boxes:
        rec.units = "pixels"
        return
    if width is None or height is None:
        if rec.units != "pixels":
            raise fail(rec.where, "boxes", "no pixel size on the asset to place relative boxes")
        return
    scale = {"pixels": (1.0, 1.0), "fraction": (width, height), "percent": (width / 100, height / 100)}
    sx, sy = scale[rec.units]
    for i, box in enumerate(rec.boxes):
        x, y, bw, bh = box["bbox"]
        box["bbox"] = [x * sx, y * sy, bw * sx, bh * sy] if rec.units != "pixels" else box["bbox"]
        x, y, bw, bh = box["bbox"]
        if x + bw > width + EDGE_TOLERANCE_PX or y + bh > height + EDGE_TOLERANCE_PX:
            raise fail(
                rec.where,
                f"boxes[{i}].bbox",
                f"[{x:g}, {y:g}, {bw:g}, {bh:g}] reaches outside the {width} x {height} image",
            )
    rec.units = "pixels"


def check_unique(records: Iterable[Record]) -> None:
    """One record per asset reference in one call: a second one is refused, naming both places."""
    first: dict[tuple[Any, ...], str] = {}
    for rec in records:
        r = rec.ref
        key = (r.asset_id, r.source, r.key, r.file)
        if key in first:
            raise fail(rec.where, None, f"a second record for {r.text()} (the first is at {first[key]})")
        first[key] = rec.where


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else "a long string"
    return {bool: "a boolean", int: "a number", float: "a number", list: "a list", dict: "an object"}.get(
        type(value), type(value).__name__
    )
