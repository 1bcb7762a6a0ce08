"""Loupe's own records: JSONL (one object a line) or the JSON `annotations` list of a request."""

from __future__ import annotations

import json
from typing import Any

from service.errors import InvalidAnnotations
from service.labels.formats.jsonio import loads
from service.labels.records import AssetRef, Record, fail

KEYS = ("asset_id", "source", "key", "file", "label", "score", "scores", "boxes")


def parse_jsonl(data: bytes) -> list[Record]:
    from service.labels.formats import text_of

    out: list[Record] = []
    for n, line in enumerate(text_of(data, what="the file").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidAnnotations(
                f"line {n}: not valid JSON ({exc.msg} at column {exc.colno}); nothing was imported"
            ) from None
        out.append(record_of(obj, where=f"line {n}"))
    if not out:
        raise InvalidAnnotations("the file holds no records (one JSON object per line); nothing was imported")
    return out


def parse_list(items: list[Any]) -> list[Record]:
    if not items:
        raise InvalidAnnotations("annotations: the list is empty; nothing was imported")
    return [record_of(obj, where=f"annotations[{i}]") for i, obj in enumerate(items)]


def record_of(obj: Any, *, where: str) -> Record:
    """One Loupe record: {asset_id | source+key | file, label?, score?, scores?, boxes?}."""
    if not isinstance(obj, dict):
        raise fail(where, None, "expected a JSON object")
    unknown = [k for k in obj if k not in KEYS]
    if unknown:
        raise fail(where, unknown[0], f"unknown key; a record has {', '.join(KEYS)}")
    ref = AssetRef(
        asset_id=_text(obj, "asset_id", where),
        source=_text(obj, "source", where),
        key=_text(obj, "key", where),
        file=_text(obj, "file", where),
    )
    if not ref.asset_id and ref.key is None and ref.file is None:
        raise fail(where, "asset_id", "missing: name the asset by asset_id, by source + key, or by file")
    if ref.key is not None and not ref.source:
        raise fail(where, "source", "missing: a key names an asset within a source")
    scores = obj.get("scores")
    return Record(
        where=where,
        ref=ref,
        label=obj.get("label"),
        score=obj.get("score"),
        scores=scores if scores is None or isinstance(scores, dict) else _not_object(where),
        boxes=obj.get("boxes"),
    )


def _text(obj: dict[str, Any], name: str, where: str) -> str | None:
    value = obj.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise fail(where, name, "expected a non-empty string")
    return value


def _not_object(where: str) -> dict[str, float]:
    raise fail(where, "scores", "expected an object of class -> probability")
