"""Slices of an evaluation: the values of a field over its assets, from the index's facet."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from service.errors import InvalidQuery
from service.index.base import Filter, VectorIndex
from service.index.filters import field_key

MAX_SLICE_VALUES = 100  # per field: the most frequent values, as the facet orders them
# A tuple, built once: `str | int | ...` inside the check built a union per value (a fifth of an
# evaluation's time at 100,000 assets with three slice fields).
_SCALARS = (str, int, float, bool)
_PLAIN = frozenset((str, int, float, type(None)))  # values that are their own slice key


def slice_key(value: Any) -> Any:
    """A slice value as a dict key: True == 1 in a dict, so a boolean slice is kept apart from
    an integer one (1 and 1.0 stay one slice, as the facet counts them)."""
    return (bool, value) if type(value) is bool else value


def positions(raw: Sequence[Any]) -> dict[Any, np.ndarray]:
    """Each slice value (by `slice_key`) and the positions of the assets that have it, from the
    raw values at a path (one an asset, None without one): a scalar is one slice, a list gives
    each of its scalar elements (an asset once per distinct element), anything else none."""
    if all(type(v) in _PLAIN for v in raw):  # the common case, one plain value an asset: coded
        code = {v: i for i, v in enumerate(dict.fromkeys(raw))}
        coded = np.fromiter(map(code.__getitem__, raw), dtype=np.int64, count=len(raw))
        return {v: np.flatnonzero(coded == c) for v, c in code.items() if v is not None}
    members: dict[Any, list[int]] = {}
    for pos, value in enumerate(raw):
        if value is None:
            continue
        if isinstance(value, list):
            for v in {slice_key(v) for v in value if isinstance(v, _SCALARS)}:
                members.setdefault(v, []).append(pos)
        elif isinstance(value, _SCALARS):
            members.setdefault(slice_key(value), []).append(pos)
    return {k: np.asarray(v, dtype=np.int64) for k, v in members.items()}


def slice_values(
    index: VectorIndex, key: str, *, scope: Filter | None, members: dict[Any, np.ndarray]
) -> list[tuple[Any, int]]:
    """A field's values with their counts: the facet's when the field is facetable, otherwise
    counted over the values the evaluation read (`members`, from `positions`)."""
    try:
        facet = index.facet(key, filter=scope, limit=MAX_SLICE_VALUES)
    except InvalidQuery:
        facet = None
    if facet:
        return [(c.value, c.count) for c in facet]
    counted = [(k[1] if isinstance(k, tuple) else k, len(v)) for k, v in members.items()]
    return sorted(counted, key=lambda kv: (-kv[1], str(kv[0])))[:MAX_SLICE_VALUES]


def slice_keys(fields: Sequence[str]) -> list[tuple[str, str]]:
    """(field as the user named it, its payload path) for each `slice_by` entry."""
    out = []
    for i, name in enumerate(fields):
        out.append((name, field_key(name, path=f"slice_by[{i}]")))
    return out
