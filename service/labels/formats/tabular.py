"""CSV classification labels: a header, then one row per asset.

Columns: the asset as `asset_id`, or `source` + `key`, or `file` (also `filename`,
`file_name`, `path`: relative to the root of the call's `source`); `label`; optional
`score`; the probability vector as `scores` (a JSON object) or as one `score_<class>`
column per class. Empty cells are absent values.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from service.errors import InvalidAnnotations
from service.labels.records import AssetRef, Record, fail

FILE_COLUMNS = ("file", "filename", "file_name", "path")
PER_CLASS = "score_"


def parse(data: bytes) -> list[Record]:
    from service.labels.formats import text_of

    reader = csv.reader(io.StringIO(text_of(data, what="the CSV file"), newline=""))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise InvalidAnnotations("the CSV file is empty; nothing was imported") from None
    except csv.Error as exc:
        raise InvalidAnnotations(f"line 1: not CSV ({exc}); nothing was imported") from None
    _check_header(header)
    file_col = next((c for c in FILE_COLUMNS if c in header), None)
    per_class = [(i, h[len(PER_CLASS) :]) for i, h in enumerate(header) if h.startswith(PER_CLASS)]
    col = {h: i for i, h in enumerate(header)}
    out: list[Record] = []
    try:
        for row in reader:
            n = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise fail(f"line {n}", None, f"{len(row)} cells, but the header has {len(header)} columns")
            out.append(_record(row, col, file_col, per_class, where=f"line {n}"))
    except csv.Error as exc:
        raise InvalidAnnotations(f"line {reader.line_num}: not CSV ({exc}); nothing was imported") from None
    if not out:
        raise InvalidAnnotations("the CSV file has a header but no rows; nothing was imported")
    return out


def _check_header(header: list[str]) -> None:
    if "label" not in header and "scores" not in header and not any(h.startswith(PER_CLASS) for h in header):
        raise InvalidAnnotations(
            "line 1: the header needs a `label` column (or `scores`); nothing was imported"
        )
    named = "asset_id" in header or {"source", "key"} <= set(header) or any(c in header for c in FILE_COLUMNS)
    if not named:
        raise InvalidAnnotations(
            "line 1: the header needs `asset_id`, `source` and `key`, or `file` to name each asset; "
            "nothing was imported"
        )


def _record(
    row: list[str], col: dict[str, int], file_col: str | None, per_class: list[tuple[int, str]], *, where: str
) -> Record:
    def cell(name: str) -> str | None:
        i = col.get(name)
        value = row[i].strip() if i is not None else ""
        return value or None

    scores: dict[str, Any] | None = None
    raw = cell("scores")
    if raw is not None:
        try:
            scores = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise fail(where, "scores", f"not a JSON object ({exc.msg})") from None
        if not isinstance(scores, dict):
            raise fail(where, "scores", "expected a JSON object of class -> probability")
    elif per_class:
        scores = {
            name: _float(row[i], where, f"{PER_CLASS}{name}") for i, name in per_class if row[i].strip()
        }
    score = cell("score")
    ref = AssetRef(
        asset_id=cell("asset_id"),
        source=cell("source"),
        key=cell("key"),
        file=cell(file_col) if file_col else None,
    )
    if not ref.asset_id and ref.key is None and ref.file is None:
        raise fail(where, "asset_id", "empty: name the asset by asset_id, source + key, or file")
    return Record(
        where=where,
        ref=ref,
        label=cell("label"),
        score=None if score is None else _float(score, where, "score"),
        scores=scores or None,
    )


def _float(text: str, where: str, name: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise fail(where, name, f"expected a number, got {text.strip()!r}") from None
