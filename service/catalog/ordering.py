"""Assets in the order of a numeric or datetime field, by the engine's own ordering, with a cursor.

The index orders a scroll by a payload range index (`scroll_ordered`: qdrant's `order_by`)
from a start value on; that start is inclusive, so the cursor carries the last value given
and the ids already given at that value, which the next page leaves out. The cursor is
opaque (base64url JSON) and names its field and direction, so it cannot be replayed
against another order. An asset id is a cursor too: the order goes on after that asset's
value. Assets without the field are not in an ordered listing.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from service.catalog.fields import value_at
from service.errors import AssetNotFound, InvalidQuery
from service.index.base import FieldType, Filter, Record, VectorIndex
from service.index.filters import field_key
from service.schemas import UUID_PATTERN

ORDERABLE = (FieldType.integer, FieldType.float, FieldType.datetime)
_UUID = re.compile(UUID_PATTERN)
MAX_TIES = 5000  # ids of one value a cursor carries: past that, say so rather than loop


def orderable_key(index: VectorIndex, name: str) -> str:
    """The payload path `name` orders by; InvalidQuery unless it has a numeric or datetime index."""
    key = field_key(name, path="order_by")
    kind = index.indexed_fields().get(key)
    if kind not in ORDERABLE:
        numeric = sorted(k for k, v in index.indexed_fields().items() if v in ORDERABLE)
        raise InvalidQuery(
            f"cannot order by {name!r}: ordering needs a numeric or datetime field with an index; "
            f"these have one: {', '.join(numeric)}",
            path="order_by",
        )
    return key


def ordered_page(
    index: VectorIndex,
    *,
    key: str,
    descending: bool,
    filter: Filter | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[Record], str | None]:
    """One page in order, and the cursor of the next (None at the end)."""
    if cursor and _UUID.match(cursor):
        start, ties = _at_asset(index, cursor, key=key)
    else:
        start, ties = _decode(cursor, key=key, descending=descending)
    recs = index.scroll_ordered(
        key=key, descending=descending, filter=filter, limit=limit + 1, start_from=start, exclude_ids=ties
    )
    page, more = recs[:limit], len(recs) > limit
    if not more or not page:
        return page, None
    last = value_at(page[-1].payload, key)
    same = [r.id for r in page if value_at(r.payload, key) == last]
    carried = [*ties, *same] if last == start else same
    if len(carried) > MAX_TIES:
        raise InvalidQuery(
            f"more than {MAX_TIES} assets share the value {last!r} of {key}; narrow the filter "
            "or order by a field with fewer ties",
            path="cursor",
        )
    return page, _encode(key=key, descending=descending, value=last, ids=carried)


def _at_asset(index: VectorIndex, asset: str, *, key: str) -> tuple[Any, list[str]]:
    """An asset id as a cursor: the order goes on from that asset's value, after it."""
    found = index.retrieve([asset])
    value = value_at(found[0].payload, key) if found else None
    if value is None:
        raise AssetNotFound(f"cursor: no asset {asset} with a value of {key} to continue the order from")
    return value, [asset]


def _encode(*, key: str, descending: bool, value: Any, ids: list[str]) -> str:
    raw = json.dumps({"k": key, "d": descending, "v": value, "i": ids}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode(cursor: str | None, *, key: str, descending: bool) -> tuple[Any, list[str]]:
    if not cursor:
        return None, []
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        ok = isinstance(data, dict) and isinstance(data.get("i"), list)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        ok, data = False, None
    if not ok or not isinstance(data, dict):
        raise InvalidQuery(
            "not a cursor of an ordered listing: pass `next_cursor` back as it came", path="cursor"
        )
    if data.get("k") != key or bool(data.get("d")) != descending:
        raise InvalidQuery(
            "this cursor belongs to another order_by or order; start again without it", path="cursor"
        )
    value = data.get("v")
    if not isinstance(value, int | float | str) or isinstance(value, bool):
        raise InvalidQuery(
            "not a cursor of an ordered listing: pass `next_cursor` back as it came", path="cursor"
        )
    return value, [str(i) for i in data["i"]]
