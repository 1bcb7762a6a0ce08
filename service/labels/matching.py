"""Which catalog asset each record names: by id, by source + key, or by file name under a source.

Nothing is guessed: a file name is the asset's key in its source (the path relative to the
source root), a YOLO label file names the key without its extension (one image of that stem,
or none; formats/yolo.py says which stems it tries). Unmatched records are listed with the
reason, never matched by likeness. A matched record's boxes are brought to pixels of the
asset and checked against its size.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from service.catalog.assets import asset_id
from service.errors import InvalidAnnotations
from service.index.base import Condition, Filter, VectorIndex
from service.labels.records import Record, fail, to_pixels

BATCH = 1000
SIZE_FIELDS = ("width", "height")


@dataclass
class Matched:
    items: list[tuple[str, Record]] = field(default_factory=list)
    unknown: list[dict[str, str]] = field(default_factory=list)


def match(
    index: VectorIndex, records: Sequence[Record], *, source: str | None, sources: Sequence[str]
) -> Matched:
    """Resolve every record to an asset of the index (see the module docstring).

    `source` is the call's source for file names; without it, the catalog's only source.

    Raises:
        InvalidAnnotations: file names without a source to resolve them in, two records for
            one asset, or a box outside its image.
    """
    out = Matched()
    wanted: list[tuple[str, Record]] = []
    stems: dict[str, dict[str, list[str]]] = {}
    for rec in records:
        ref = rec.ref
        if ref.asset_id:
            try:
                wanted.append((str(uuid.UUID(ref.asset_id)), rec))
            except ValueError:
                out.unknown.append({"key": rec.where, "reason": f"{ref.asset_id!r} is not an asset id"})
            continue
        if ref.key is not None and ref.source:
            wanted.append((asset_id(ref.source, ref.key), rec))
            continue
        if ref.file is None:
            out.unknown.append(
                {"key": rec.where, "reason": "names no asset (no data.asset_id: not a Loupe task)"}
            )
            continue
        where = ref.source or _file_source(source, sources, rec)
        name = _normal(ref.file)
        if rec.extra.get("stems"):
            if where not in stems:
                stems[where] = _stems(index, where)
            tried = [stems[where].get(_normal(c), []) for c in rec.extra["stems"]]
            hits = next((h for h in tried if h), [])
            if len(hits) == 1:
                wanted.append((hits[0], rec))
            else:
                why = "no image of that name" if not hits else f"{len(hits)} images share that name"
                out.unknown.append({"key": f"{where}/{name}", "reason": why})
            continue
        ref.source, ref.key = where, name  # what it resolved to, as errors show it
        wanted.append((asset_id(where, name), rec))
    seen: dict[str, str] = {}
    for start in range(0, len(wanted), BATCH):
        chunk = wanted[start : start + BATCH]
        # Boxes need the pixel size, nothing else the payload: records without boxes ask for
        # none of it, which spares the engine reading every payload (4x cheaper).
        fields = SIZE_FIELDS if any(rec.boxes for _, rec in chunk) else ()
        found = {r.id: r.payload for r in index.retrieve([pid for pid, _ in chunk], fields=fields)}
        for pid, rec in chunk:
            payload = found.get(pid)
            if payload is None:
                out.unknown.append(
                    {"key": rec.ref.text(), "reason": f"no such asset in the catalog ({rec.where})"}
                )
                continue
            if pid in seen:
                raise fail(rec.where, None, f"a second record for asset {pid} (the first is at {seen[pid]})")
            seen[pid] = rec.where
            if rec.boxes:
                to_pixels(rec, width=_int(payload.get("width")), height=_int(payload.get("height")))
            else:
                rec.units = "pixels"
            out.items.append((pid, rec))
    return out


def _file_source(source: str | None, sources: Sequence[str], rec: Record) -> str:
    if source:
        if source not in sources:
            raise InvalidAnnotations(f"source: no source named {source!r}; `loupe source list` shows them")
        return source
    if len(sources) == 1:
        return sources[0]
    raise fail(
        rec.where,
        "source",
        "file names are relative to a source root: give `source` with the call "
        f"(this catalog has {len(sources)} sources)",
    )


def _normal(name: str) -> str:
    name = name.replace("\\", "/")
    while name.startswith("./"):
        name = name[2:]
    return name.lstrip("/")


def _stems(index: VectorIndex, source: str) -> dict[str, list[str]]:
    """The source's keys without their extension -> asset ids (one scroll of the source's keys)."""
    out: dict[str, list[str]] = {}
    flt = Filter(must=[Condition(key="source", eq=source)])
    cursor: str | None = None
    while True:
        recs, cursor = index.scroll(filter=flt, limit=2048, cursor=cursor, fields=["key"])
        for r in recs:
            key = str(r.payload.get("key") or "")
            out.setdefault(key.rsplit(".", 1)[0] if "." in key.rsplit("/", 1)[-1] else key, []).append(r.id)
        if cursor is None:
            return out


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
