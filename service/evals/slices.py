"""Slices of an evaluation: the values of a field over its assets, from the index's facet."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from service.errors import InvalidQuery
from service.index.base import Filter, VectorIndex
from service.index.filters import field_key

MAX_SLICE_VALUES = 100  # per field: the most frequent values, as the facet orders them
# A tuple, built once: `str | int | ...` inside the check built a union per value (a fifth of an
# evaluation's time at 100,000 assets with three slice fields).
_SCALARS = (str, int, float, bool)


def payload_values(payload: dict[str, Any], key: str | Sequence[str]) -> list[Any]:
    """The scalar values at a dotted payload path (a list gives each element: one slice each).

    `key` may come split already (a tuple of its parts), as a loop over many payloads passes it.
    """
    value: Any = payload
    for part in key.split(".") if isinstance(key, str) else key:
        if not isinstance(value, dict):
            return []
        value = value.get(part)
    if isinstance(value, list):
        return [v for v in value if isinstance(v, _SCALARS)]
    return [value] if isinstance(value, _SCALARS) else []


def slice_values(
    index: VectorIndex, key: str, *, scope: Filter | None, seen: Sequence[list[Any]]
) -> list[tuple[Any, int]]:
    """A field's values with their counts: the facet's when the field is facetable, otherwise
    counted over the values the evaluation read (`seen`, one list per asset)."""
    try:
        facet = index.facet(key, filter=scope, limit=MAX_SLICE_VALUES)
    except InvalidQuery:
        facet = None
    if facet:
        return [(c.value, c.count) for c in facet]
    counted = Counter(v for values in seen for v in set(values))
    return sorted(counted.items(), key=lambda kv: (-kv[1], str(kv[0])))[:MAX_SLICE_VALUES]


def slice_keys(fields: Sequence[str]) -> list[tuple[str, str]]:
    """(field as the user named it, its payload path) for each `slice_by` entry."""
    out = []
    for i, name in enumerate(fields):
        out.append((name, field_key(name, path=f"slice_by[{i}]")))
    return out
