"""The storage contract of label sets: what `labels.<set>` holds on an asset, and its writer.

Per asset, the index payload holds under `labels.<set>`:

    label      str | None     classification: the class; detection: None
    score      float | None   classification: the label's probability; detection
                              predictions: the highest box score
    classes    [str]          detection: the distinct box labels, sorted
    count      int            detection: the number of boxes
    boxes      [{"label", "score"?, "bbox": [x, y, w, h]}]   detection, pixels of the original
                              image (a COCO crowd region also has "iscrowd": true)
    margin, entropy, least_confidence   predictions only, each in [0, 1] (below)
    imported_at               RFC 3339, when this asset's annotation was written
    labeled_by, labeled_at    hand labels in bulk (service/labels/bulk.py): who (the API key's
                              fingerprint, or "anonymous") and when

The probability vector an import gives (`scores`, {class: p}) is not in the payload but in the
state store (service/catalog/label_scores.py): `value_of` still returns it (the import spools it, and
the uncertainty fields come from it), `write` leaves it out, and service/labels/scores.py
`write` stores it, one row per asset and set. Every payload operation of the embedded engine
decompresses, parses and rewrites a point's whole payload, and nothing filters on the vector:
on 100,000 assets and 10 classes the evaluation job took 14.2 CPU s with it in the payload and
9.3 s without (reading 9 -> 5.4 s, writing 10.5 -> 4.8 s), and a 1,000-class model would put
~25 KB in every payload. The REST API puts it back into `labels.<set>` of the assets it returns.

Boxes are kept whole in the payload rather than in the state store: the page draws an
asset's boxes and the evaluator matches them from the one payload read it makes per asset
anyway, with no join against a second store, and a re-sync carries them with the rest.

Uncertainty (higher = less sure, all in [0, 1]):
- from `scores` (p normalised to sum 1 over the K classes given): least_confidence =
  1 - max p; margin = p1 - p2 (the two largest; 1 when K = 1), so a *small* margin is
  uncertain; entropy = -sum p ln p / ln K (0 when K = 1).
- from `score` alone, the binary view p = score against 1 - score: least_confidence =
  1 - max(p, 1 - p), margin = |2p - 1|, entropy = the binary entropy H(p) / ln 2.
- detection, over the scored boxes: least_confidence = max over boxes of 1 - score (the
  least sure detection), margin = min over boxes of |2 score - 1| (the box nearest 0.5),
  entropy = the mean binary entropy of the boxes. No scored box: no uncertainty fields.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from service.index.base import Condition, FieldType, Filter, VectorIndex
from service.labels.records import Record

ROOT = "labels"
_INDEXED = {
    "label": FieldType.keyword,
    "classes": FieldType.keyword,
    "score": FieldType.float,
    "margin": FieldType.float,
    "entropy": FieldType.float,
    "least_confidence": FieldType.float,
    "count": FieldType.integer,
}


def field_types(name: str) -> dict[str, FieldType]:
    """The payload indexes of set `name`: filters, facets and ordering on its fields."""
    return {f"{ROOT}.{name}.{leaf}": kind for leaf, kind in _INDEXED.items()}


def public_fields(name: str, *, task: str, role: str) -> dict[str, FieldType]:
    """The indexed fields a set of this task and role fills (GET /fields lists them): every set's
    indexes are created alike, but a classification set has no `count`, ground truth no margin."""
    leaves = ["label"] if task == "classification" else ["classes", "count"]
    if role == "predictions":
        leaves += ["score", "margin", "entropy", "least_confidence"]
    return {f"{ROOT}.{name}.{leaf}": _INDEXED[leaf] for leaf in leaves}


def ensure_indexes(index: VectorIndex, name: str) -> None:
    for key, kind in field_types(name).items():
        index.ensure_field(key, kind)


def value_of(rec: Record, *, task: str, predictions: bool, imported_at: str) -> dict[str, Any]:
    """The `labels.<set>` value of one validated, matched record."""
    if task == "classification":
        out: dict[str, Any] = {"label": rec.label, "score": rec.score}
        if rec.scores is not None:
            out["scores"] = dict(rec.scores)
        if predictions:
            out.update(_uncertainty_of_scores(rec.scores, rec.score))
    else:
        boxes = list(rec.boxes or [])
        scored = [float(b["score"]) for b in boxes if "score" in b]
        out = {
            "label": None,
            "score": max(scored) if scored else None,
            "classes": sorted({b["label"] for b in boxes}),
            "count": len(boxes),
            "boxes": boxes,
        }
        if predictions and scored:
            out.update(_uncertainty_of_boxes(scored))
    out["imported_at"] = imported_at
    return out


def _uncertainty_of_scores(scores: Mapping[str, float] | None, score: float | None) -> dict[str, float]:
    if scores:
        total = sum(scores.values())
        if total > 0:
            p = sorted((v / total for v in scores.values()), reverse=True)
            k = len(p)
            entropy = -sum(q * math.log(q) for q in p if q > 0) / math.log(k) if k > 1 else 0.0
            second = p[1] if k > 1 else 0.0
            return {
                "least_confidence": _unit(1.0 - p[0]),
                "margin": _unit(p[0] - second),
                "entropy": _unit(entropy),
            }
    if score is None:
        return {}
    return {
        "least_confidence": _unit(1.0 - max(score, 1.0 - score)),
        "margin": _unit(abs(2.0 * score - 1.0)),
        "entropy": _unit(binary_entropy(score)),
    }


def _uncertainty_of_boxes(scores: Sequence[float]) -> dict[str, float]:
    return {
        "least_confidence": _unit(max(1.0 - s for s in scores)),
        "margin": _unit(min(abs(2.0 * s - 1.0) for s in scores)),
        "entropy": _unit(sum(binary_entropy(s) for s in scores) / len(scores)),
    }


def binary_entropy(p: float) -> float:
    """H(p) in bits: 1 at p = 0.5, 0 at 0 and 1."""
    return -sum(q * math.log2(q) for q in (p, 1.0 - p) if q > 0)


def _unit(value: float) -> float:
    # Float noise (1 - 0.9999999 summed) must not leave [0, 1].
    return min(1.0, max(0.0, float(value)))


def write(index: VectorIndex, name: str, items: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
    """Set `labels.<name>` on each asset, replacing the set's previous value there (other sets
    stay), without a value's `scores` (they go to the state store: service/labels/scores.py
    `write` does both).

    Assets that get the same value (ground-truth labels without scores: one value per class)
    are written by one set-payload of all their ids; the rest one operation per asset.
    """
    groups: dict[str, tuple[Mapping[str, Any], list[str]]] = {}
    single: list[tuple[str, Mapping[str, Any]]] = []
    for asset, value in items:
        if "scores" in value:
            value = {k: v for k, v in value.items() if k != "scores"}
            single.append((asset, {name: value}))  # as good as unique: not worth comparing
        elif value.get("boxes"):
            single.append((asset, {name: value}))
        else:
            groups.setdefault(json.dumps(value, sort_keys=True), (value, []))[1].append(asset)
    for value, assets in groups.values():
        if len(assets) > 1:
            index.set_payload(assets, {name: value}, key=ROOT)
        else:
            single.append((assets[0], {name: value}))
    if single:
        index.set_payloads(single, key=ROOT)


def held(name: str) -> Filter:
    """The assets that hold an annotation of set `name`: every value has a `label` (classification)
    or a `count` (detection), both indexed, so the engine answers from its indexes rather than by
    reading every payload (0.02 s instead of 0.6 s at 100,000 assets)."""
    return Filter(
        should=[
            Condition(key=f"{ROOT}.{name}.label", exists=True),
            Condition(key=f"{ROOT}.{name}.count", exists=True),
        ]
    )


def clear_set(index: VectorIndex, name: str) -> None:
    """Remove `labels.<name>` from every asset that has it, in one delete-by-filter, keeping the
    set's payload indexes: for a set about to be written again (a labeling function's), since
    building an index reads every payload."""
    index.delete_keys([f"{ROOT}.{name}"], filter=held(name))


def remove_set(index: VectorIndex, name: str) -> None:
    """Clear set `name` (clear_set), then drop its payload indexes: a set made again under the
    name gets them anew."""
    clear_set(index, name)
    for key in field_types(name):
        index.drop_field(key)


def holders(index: VectorIndex, name: str) -> int:
    """How many assets hold an annotation of set `name`."""
    return index.count(held(name))
