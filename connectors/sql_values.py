"""SQL values as Loupe sees them: cells as JSON-safe metadata, typed cursors, row versions.

Metadata keeps types: integers, floats and booleans stay JSON numbers and
booleans, Decimal becomes a float, timestamps RFC 3339 strings in UTC (a
timestamp without a zone is taken as UTC), dates `YYYY-MM-DD`, JSON columns
nested objects. NULL (and NaN) is `SKIP`, so the key is omitted and
`{"col": {"exists": false}}` finds it. Binary cells are skipped too: blobs are
not filterable and would bloat every payload.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.types import NullType

from service.errors import SourceError
from service.timestamps import rfc3339

SKIP = object()


_PLAIN = frozenset({str, int, bool})


ColumnKind = Literal["json", "bool", "datetime", "date", ""]


def json_value(value: Any, kind: ColumnKind = "") -> Any:
    """A column value as JSON-safe metadata, or `SKIP` (NULL, NaN, binary)."""
    if not kind and type(value) in _PLAIN:
        return value  # the common case, first: this runs for every cell
    if value is None or isinstance(value, bytes | bytearray | memoryview):
        return SKIP
    if kind and isinstance(value, str | int):
        value = _declared(value, kind)
        if value is None:
            return SKIP  # JSON null is NULL too
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float | Decimal):
        f = float(value)
        return f if math.isfinite(f) else SKIP
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Mapping):
        items = ((str(k), json_value(v)) for k, v in value.items())
        return {k: v for k, v in items if v is not SKIP}
    if isinstance(value, list | tuple):
        return [None if (v := json_value(x)) is SKIP else v for x in value]
    return str(value)  # UUID, inet, ranges, enums: their text form


def _declared(value: str | int, kind: ColumnKind) -> Any:
    """Apply what the table declares when the driver hands back text or 0/1."""
    try:
        if kind == "bool" and isinstance(value, int):
            return bool(value)
        if isinstance(value, str) and kind == "json":
            return json.loads(value)
        if isinstance(value, str) and kind == "datetime":
            return datetime.fromisoformat(value)
        if isinstance(value, str) and kind == "date":
            return date.fromisoformat(value)
    except ValueError:
        pass  # keep what the row holds rather than fail the listing
    return value


_PACKERS: list[tuple[type, str, Any]] = [
    (bool, "bool", lambda v: v),
    (int, "int", lambda v: v),
    (float, "float", lambda v: v),
    (Decimal, "decimal", str),
    (datetime, "datetime", datetime.isoformat),
    (date, "date", date.isoformat),
    (time, "time", time.isoformat),
    (UUID, "uuid", str),
    (bytes, "bytes", bytes.hex),
    (str, "str", lambda v: v),
]


_UNPACKERS: dict[str, Any] = {
    "bool": bool, "int": int, "float": float, "decimal": Decimal, "str": str,
    "datetime": datetime.fromisoformat, "date": date.fromisoformat,
    "time": time.fromisoformat, "uuid": UUID, "bytes": bytes.fromhex,
}  # fmt: skip


def pack(value: Any) -> list[Any]:
    """A value as `[type tag, JSON value]`, so it binds back with its type."""
    for typ, tag, fn in _PACKERS:
        if isinstance(value, typ):
            return [tag, fn(value)]
    return ["str", str(value)]


def unpack(packed: Any) -> Any:
    tag, raw = packed
    return _UNPACKERS[tag](raw)


def encode_cursor(*, column: str, value: Any, key: Any) -> str:
    return json.dumps({"column": column, "cursor": pack(value), "key": pack(key)})


def decode_cursor(cursor: str, *, column: str) -> tuple[Any, Any] | None:
    """(cursor value, key) from a saved cursor; None when it belongs to another column."""
    try:
        data = json.loads(cursor)
        if data.get("column") != column:
            return None
        return unpack(data["cursor"]), unpack(data["key"])
    except (ValueError, KeyError, TypeError, AttributeError):
        raise SourceError(
            "the saved cursor of this source cannot be read; run a full sync (--full)"
        ) from None


def key_text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return str(value)


def row_hash(uri: str, size: int | None, metadata: Mapping[str, Any]) -> str:
    raw = json.dumps([uri, size, metadata], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(raw.encode(), digest_size=12).hexdigest()


def aware(value: Any, kind: ColumnKind) -> datetime | None:
    if isinstance(value, str) and kind == "datetime":
        value = _declared(value, kind)  # SQLite keeps timestamps as text
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def bind(value: Any) -> Any:
    """An untyped bound parameter: the driver sends the value as the row gave it.

    A typed one makes SQLAlchemy add casts (`$1::VARCHAR`) that fail against a
    key read from the index as text, or shift a timestamp's zone.
    """
    return sa.bindparam(None, value, type_=NullType())


def vector_value(value: Any) -> Any:
    """A vector column's cell: an array as a list of floats, JSON text parsed; None for NULL.

    A cell that is not a list of numbers is passed on as it is: the sync reports it on that
    asset (the image itself still syncs), rather than one bad row failing the listing.
    """
    if value is None:
        return None
    if isinstance(value, bytes | bytearray | memoryview):
        value = bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return value
    if isinstance(value, list | tuple) and all(
        isinstance(x, int | float | Decimal) and not isinstance(x, bool) for x in value
    ):
        return [float(x) for x in value]
    return value
