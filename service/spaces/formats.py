"""Vector files a space imports: `.npz`, Parquet and JSONL, read in batches of (line, asset id, vector).

Every format names an asset by `asset_id`, or by `source` + `key` (the id is derived the
way a sync derives it):

* `.npz` (numpy.savez): an array `vectors` of shape (n, dim), and either `ids` (n asset
  ids) or `source` and `key` (n strings each). Rows count from 1.
* `.parquet`: columns `asset_id` or `source` + `key`, and `vector` as a list or
  fixed-size-list of numbers. Rows count from 1.
* `.jsonl` (or `.ndjson`): one object a line, `{"asset_id": ..., "vector": [...]}` or
  `{"source": ..., "key": ..., "vector": [...]}`. Lines count from 1.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from service.catalog.assets import asset_id
from service.errors import InvalidQuery, UnsupportedMedia

BATCH = 2048
SUFFIXES = {".npz": "npz", ".parquet": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}


@dataclass(slots=True)
class Batch:
    """Consecutive entries of a file: their line (or row) numbers, asset ids and vectors."""

    lines: np.ndarray  # int64, 1-based
    ids: list[str]
    vectors: np.ndarray  # float32 (n, dim); rows of a wrong length are refused before


def format_of(filename: str | None) -> str:
    """The format a file name's suffix says; UnsupportedMedia naming the ones there are."""
    suffix = Path(filename or "").suffix.lower()
    if suffix not in SUFFIXES:
        raise UnsupportedMedia(
            f"file {filename!r}: vectors are imported from {', '.join(SUFFIXES)} files "
            "(the suffix says which)"
        )
    return SUFFIXES[suffix]


def read_batches(path: Path, fmt: str, *, dim: int) -> Iterator[Batch]:
    """The file's entries in order. Raises InvalidQuery naming the line and field of a malformed
    entry (a missing id, a vector of another length than `dim`)."""
    readers = {"npz": _npz, "parquet": _parquet, "jsonl": _jsonl}
    yield from readers[fmt](path, dim)


def _id(value: Any, *, where: str) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise InvalidQuery(f"{value!r} is not an asset id (a UUID)", path=f"{where}: asset_id") from None


def _wrong_length(where: str, got: int, dim: int) -> InvalidQuery:
    return InvalidQuery(f"has {got} components; the space has dimension {dim}", path=f"{where}: vector")


# -- .npz -----------------------------------------------------------------------


def _npz(path: Path, dim: int) -> Iterator[Batch]:
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InvalidQuery(f"not a readable .npz file ({exc})", path="file") from None
    with archive:
        names = set(archive.files)
        if "vectors" not in names or not ({"ids"} <= names or {"source", "key"} <= names):
            raise InvalidQuery(
                f"a .npz needs the arrays `vectors` and `ids` (or `source` and `key`); it has "
                f"{', '.join(sorted(names)) or 'none'}",
                path="file",
            )
        vectors = archive["vectors"]
        if vectors.ndim != 2 or not np.issubdtype(vectors.dtype, np.number):
            raise InvalidQuery(f"`vectors` must be a 2-D array of numbers, not {vectors.shape}", path="file")
        if vectors.shape[1] != dim:
            raise _wrong_length("every row", vectors.shape[1], dim)
        keys = [archive["ids"]] if "ids" in names else [archive["source"], archive["key"]]
        if any(len(k) != len(vectors) for k in keys):
            raise InvalidQuery("`vectors` and the id arrays must have the same length", path="file")
        for start in range(0, len(vectors), BATCH):
            stop = min(start + BATCH, len(vectors))
            lines = np.arange(start + 1, stop + 1, dtype=np.int64)
            if len(keys) == 1:
                ids = [_id(v, where=f"row {n}") for n, v in zip(lines, keys[0][start:stop], strict=True)]
            else:
                ids = [
                    asset_id(str(s), str(k))
                    for s, k in zip(keys[0][start:stop], keys[1][start:stop], strict=True)
                ]
            yield Batch(lines, ids, np.asarray(vectors[start:stop], dtype=np.float32))


# -- Parquet ----------------------------------------------------------------------


def _parquet(path: Path, dim: int) -> Iterator[Batch]:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        file = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as exc:
        raise InvalidQuery(f"not a readable Parquet file ({exc})", path="file") from None
    columns = set(file.schema_arrow.names)
    by_id = "asset_id" in columns
    if "vector" not in columns or not (by_id or {"source", "key"} <= columns):
        raise InvalidQuery(
            f"a Parquet file needs the columns `vector` and `asset_id` (or `source` and `key`); it "
            f"has {', '.join(sorted(columns))}",
            path="file",
        )
    kind = file.schema_arrow.field("vector").type
    if not (pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)):
        raise InvalidQuery(f"column `vector` must be a list of numbers, not {kind}", path="file")
    if pa.types.is_fixed_size_list(kind) and kind.list_size != dim:
        raise _wrong_length("every row", kind.list_size, dim)
    wanted = ["vector", "asset_id"] if by_id else ["vector", "source", "key"]
    start = 0
    for record in file.iter_batches(batch_size=BATCH, columns=wanted):
        n = record.num_rows
        lines = np.arange(start + 1, start + n + 1, dtype=np.int64)
        start += n
        column = record.column("vector")
        if column.null_count:
            first = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
            raise InvalidQuery("is missing", path=f"row {lines[first]}: vector")
        lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
        wrong = np.flatnonzero(lengths != dim)
        if len(wrong):
            raise _wrong_length(f"row {lines[wrong[0]]}", int(lengths[wrong[0]]), dim)
        flat = pc.list_flatten(column)
        if flat.null_count:
            raise InvalidQuery("has a null component", path=f"row {lines[0]}..{lines[-1]}: vector")
        vectors = flat.to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(n, dim)
        if by_id:
            raw = record.column("asset_id").to_pylist()
            ids = [_id(v, where=f"row {line}") for line, v in zip(lines, raw, strict=True)]
        else:
            sources, keys = record.column("source").to_pylist(), record.column("key").to_pylist()
            ids = [asset_id(str(s), str(k)) for s, k in zip(sources, keys, strict=True)]
        yield Batch(lines, ids, vectors)


# -- JSONL ------------------------------------------------------------------------


def _jsonl(path: Path, dim: int) -> Iterator[Batch]:
    lines: list[int] = []
    ids: list[str] = []
    rows: list[Any] = []
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            where = f"line {number}"
            try:
                entry = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise InvalidQuery(f"not valid JSON ({exc})", path=where) from None
            if not isinstance(entry, dict):
                raise InvalidQuery("must be a JSON object", path=where)
            ids.append(_entry_id(entry, where))
            vector = entry.get("vector")
            if not isinstance(vector, list) or not all(
                isinstance(x, int | float) and not isinstance(x, bool) for x in vector
            ):
                raise InvalidQuery("must be a list of numbers", path=f"{where}: vector")
            if len(vector) != dim:
                raise _wrong_length(where, len(vector), dim)
            lines.append(number)
            rows.append(vector)
            if len(rows) >= BATCH:
                yield Batch(np.asarray(lines), ids, np.asarray(rows, dtype=np.float32))
                lines, ids, rows = [], [], []
    if rows:
        yield Batch(np.asarray(lines), ids, np.asarray(rows, dtype=np.float32))


def _entry_id(entry: dict[str, Any], where: str) -> str:
    if "asset_id" in entry:
        return _id(entry["asset_id"], where=where)
    source, key = entry.get("source"), entry.get("key")
    if not isinstance(source, str) or not isinstance(key, str):
        raise InvalidQuery("needs `asset_id`, or `source` and `key` (strings)", path=where)
    return asset_id(source, key)
