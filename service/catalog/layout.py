"""Projector layouts: colour columns, the cache file, and 2-D PCA or UMAP of arrays in memory.

Pure numpy: `service/catalog/projector.py` reads the index and runs these in
the background; tests call them on plain arrays.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np

from service.catalog.reduce import UMAP_FIT_SAMPLE, PcaReduction, Streamed, UmapReduction
from service.index.base import FieldType
from service.index.filters import parse_timestamp

MAX_CATEGORIES = 64  # per colour column; rarer values share the last code, "(other)"
OTHER = "(other)"
_UTC_SECONDS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


# -- colour columns ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Column:
    """One colourable field, one value per point.

    `category`: `data` holds uint8 codes, 0 = no value, code i = `values[i - 1]`.
    `number` / `time`: `data` holds float32 `value - offset` (NaN = no value); a
    time is seconds since the epoch, offset so float32 keeps second precision.
    """

    field: str
    kind: str
    data: np.ndarray
    values: tuple[Any, ...] = ()
    counts: tuple[int, ...] = ()
    offset: float = 0.0

    def header(self) -> dict[str, Any]:
        head: dict[str, Any] = {"field": self.field, "kind": self.kind, "dtype": str(self.data.dtype)}
        if self.kind == "category":
            head.update(values=list(self.values), counts=list(self.counts))
        else:
            finite = self.data[np.isfinite(self.data)]
            lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
            head.update(offset=self.offset, min=lo + self.offset, max=hi + self.offset)
        return head


# Integer fields whose values name classes (a cluster id): always categories, however many there
# are (the largest MAX_CATEGORIES - 1 their own colour, the rest "(other)").
CLASS_FIELDS = frozenset({"signals.cluster"})


def build_column(name: str, kind: FieldType, raw: list[Any]) -> Column | None:
    """The colour column of field `name` (of index type `kind`) from one raw value per point.

    Keywords, booleans and integers with few values are categories; other numbers
    and timestamps are numbers; None when nothing can colour by the field.
    """
    values = [v if isinstance(v, str | int | float | bool) else None for v in raw]
    distinct = Counter(v for v in values if v is not None)
    if not distinct:
        return None
    if name in CLASS_FIELDS:  # ids of groups, not quantities: a ramp would invent an order
        return _category_column(name, values, distinct)
    many = kind is FieldType.integer and len(distinct) > MAX_CATEGORIES
    if kind is FieldType.datetime:
        return _number_column(name, "time", _epochs(values))
    if many or kind is FieldType.float:
        return _number_column(name, "number", [float(v) if _is_number(v) else None for v in values])
    if kind is FieldType.text or _identifying(distinct):
        return None
    return _category_column(name, values, distinct)


def _identifying(distinct: Counter[Any]) -> bool:
    """Mostly distinct values (captions, paths): as colours they would say nothing."""
    return len(distinct) > MAX_CATEGORIES and len(distinct) > 0.5 * sum(distinct.values())


def _category_column(name: str, values: list[Any], distinct: Counter[Any]) -> Column:
    ranked = sorted(distinct.items(), key=lambda kv: (-kv[1], str(kv[0])))
    if len(ranked) > MAX_CATEGORIES:
        kept, rest = ranked[: MAX_CATEGORIES - 1], ranked[MAX_CATEGORIES - 1 :]
        ranked = [*kept, (OTHER, sum(c for _, c in rest))]
    code = {value: i + 1 for i, (value, _) in enumerate(ranked)}
    other = code.get(OTHER, 0)
    data = np.fromiter((0 if v is None else code.get(v, other) for v in values), np.uint8, len(values))
    return Column(
        field=name,
        kind="category",
        data=data,
        values=tuple(v for v, _ in ranked),
        counts=tuple(int(c) for _, c in ranked),
    )


def _number_column(name: str, kind: str, values: list[float | None]) -> Column | None:
    arr = np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    finite = arr[np.isfinite(arr)]
    if not finite.size:
        return None
    offset = float(finite.min())
    return Column(field=name, kind=kind, data=(arr - offset).astype(np.float32), offset=offset)


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _epochs(values: list[Any]) -> list[float | None]:
    """Seconds since the epoch of RFC 3339 strings (None where a value is not one)."""
    out: list[float | None] = [None] * len(values)
    # The usual shape (UTC, whole seconds) is parsed by numpy at C speed; the rest one by one.
    fast = [i for i, v in enumerate(values) if isinstance(v, str) and _UTC_SECONDS.match(v)]
    try:
        stamps = np.array([values[i][:-1] for i in fast], dtype="datetime64[s]").astype(np.int64)
        for i, seconds in zip(fast, stamps.tolist(), strict=True):
            out[i] = float(seconds)
    except ValueError:  # a day that does not exist: leave it to the careful parser
        pass
    for i, v in enumerate(values):
        if out[i] is None and isinstance(v, str):
            out[i] = _epoch(v)
    return out


def _epoch(value: str) -> float | None:
    stamp = parse_timestamp(value)
    return None if stamp is None else datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


# -- layouts -----------------------------------------------------------------


def pca_layout(vectors: np.ndarray) -> np.ndarray:
    """2-D PCA of `vectors` (n, d) as float32 (n, 2), fitted on all of them."""
    if len(vectors) == 0:
        return np.zeros((0, 2), np.float32)
    return PcaReduction(2).fit(vectors)


def umap_layout(vectors: np.ndarray, *, seed: int = 0, sample: int = UMAP_FIT_SAMPLE) -> np.ndarray:
    """2-D UMAP (cosine) of `vectors`, fitted on the first `sample` and placed by transform for the rest."""
    streamed = Streamed(UmapReduction(2, seed=seed), fit=sample)
    streamed.add(vectors)
    return streamed.result()


@dataclass(frozen=True)
class Layout:
    """A computed projection: point ids (16-byte UUIDs), coordinates and colour columns.

    The points and the colours age apart: `fingerprint`/`computed_at`/`seconds` belong to the
    reduction (the vectors), `colors_version`/`colors_at`/`colors_seconds` to the last read of
    the colour columns from the payloads, which a finished signal renews without a new reduction.
    """

    method: str
    fingerprint: str
    ids: np.ndarray  # (n, 16) uint8
    xy: np.ndarray  # (n, 2) float32
    columns: dict[str, Column] = field(default_factory=dict)
    computed_at: str = ""
    seconds: float = 0.0
    colors_version: str = ""
    colors_at: str = ""
    colors_seconds: float = 0.0

    @property
    def count(self) -> int:
        return len(self.xy)

    @cached_property  # the status endpoint asks on every poll; percentiles of 1M points take a while
    def view(self) -> list[float]:
        """A box [x0, y0, x1, y1] holding all but the farthest 0.5 % each side, to frame the map."""
        if not self.count:
            return [-1.0, -1.0, 1.0, 1.0]
        lo = np.percentile(self.xy, 0.5, axis=0)
        hi = np.percentile(self.xy, 99.5, axis=0)
        pad = np.maximum((hi - lo) * 0.05, 1e-6)
        return [float(v) for v in (*(lo - pad), *(hi + pad))]

    def recoloured(self, columns: dict[str, Column], *, version: str, at: str, seconds: float) -> Layout:
        """The same points with new colour columns (the framing box is kept, not recomputed)."""
        out = replace(self, columns=columns, colors_version=version, colors_at=at, colors_seconds=seconds)
        if "view" in self.__dict__:
            out.__dict__["view"] = self.__dict__["view"]
        return out

    def save(self, path: Path) -> None:
        meta = {
            "method": self.method,
            "fingerprint": self.fingerprint,
            "computed_at": self.computed_at,
            "seconds": self.seconds,
            "colors_version": self.colors_version,
            "colors_at": self.colors_at,
            "colors_seconds": self.colors_seconds,
            "columns": [{**c.header(), "offset": c.offset} for c in self.columns.values()],
        }
        arrays: dict[str, Any] = {f"col{i}": c.data for i, c in enumerate(self.columns.values())}
        arrays.update(meta=np.frombuffer(json.dumps(meta).encode(), np.uint8), ids=self.ids, xy=self.xy)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            np.savez(f, *(), **arrays)
        os.replace(tmp, path)  # readers never see half a file

    @classmethod
    def load(cls, path: Path) -> Layout:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(z["meta"].tobytes())
            columns = {}
            for i, head in enumerate(meta["columns"]):
                columns[head["field"]] = Column(
                    field=head["field"],
                    kind=head["kind"],
                    data=z[f"col{i}"],
                    values=tuple(head.get("values", ())),
                    counts=tuple(head.get("counts", ())),
                    offset=float(head.get("offset", 0.0)),
                )
            return cls(
                method=meta["method"],
                fingerprint=meta["fingerprint"],
                ids=z["ids"],
                xy=z["xy"],
                columns=columns,
                computed_at=meta["computed_at"],
                seconds=float(meta["seconds"]),
                # A cache written before the colours aged apart: re-read them (no new reduction).
                colors_version=meta.get("colors_version", ""),
                colors_at=meta.get("colors_at", meta["computed_at"]),
                colors_seconds=float(meta.get("colors_seconds", 0.0)),
            )
