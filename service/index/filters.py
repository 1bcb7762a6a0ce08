"""The JSON filter language of DESIGN.md, validated and parsed into the neutral filter AST.

Grammar (an object's entries are ANDed):

    filter    := { entry, ... }
    entry     := "and": [filter, ...] | "or": [filter, ...] | "not": filter
               | FIELD: scalar                   equals (a float becomes a [v, v] range)
               | FIELD: { op: value, ... }       several operators are ANDed
    op        := eq | ne | in | nin | gt | gte | lt | lte | exists | match

`ne` and `nin` are `must_not` conditions, so they also keep points that lack the
field. `exists: true` keeps points whose field holds a non-empty value (not
missing, null or []). Range bounds are numbers, or RFC 3339 timestamps
(a date alone means midnight UTC, a time without an offset means UTC).

FIELD names a payload path: a built-in field (BUILTIN_FIELDS, or a path under
one of their roots such as `exports.project`, or under a reserved root of
RESERVED_ROOTS such as `labels.gt.label`) maps to itself; `meta.x` and
`metadata.x` map to `meta.x`; any other name maps to `meta.<name>`, so
`{"label": "bike"}` filters the metadata field `label`.

Every error is an `InvalidQuery` whose `path` names the offending JSON
location, e.g. `filter.and[1].width.gte`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from service.errors import InvalidQuery
from service.index.base import BUILTIN_FIELDS, METADATA_ROOT, Condition, FieldType, Filter
from service.timestamps import rfc3339

MAX_DEPTH = 16
MAX_CONDITIONS = 256
MAX_VALUES = 1024  # per `in` / `nin` list
COMBINATORS = ("and", "or", "not")
RANGE_OPS = ("gt", "gte", "lt", "lte")
OPERATORS = ("eq", "ne", "in", "nin", *RANGE_OPS, "exists", "match")

# Roots that features write under (DESIGN.md "Reserved filter roots"): a path below one of
# them is a payload path of its own, never metadata; a metadata key of such a name stays
# reachable as `meta.<name>`. The one list, shared by label sets, evaluations, signals and
# selections.
RESERVED_ROOTS = ("exports", "labels", "evals", "signals", "selections")
_BUILTIN_ROOTS = frozenset(name.split(".")[0] for name in BUILTIN_FIELDS) | frozenset(RESERVED_ROOTS)
_METADATA_ALIASES = (METADATA_ROOT, "metadata")
_SEGMENT = re.compile(r"^[\w\-]+(?:\[\])?$")  # `[]` walks into an array of objects
# RFC 3339 shape (date, optional time, optional offset); fromisoformat then checks the values.
_TIMESTAMP = re.compile(
    r"^\d{4}-\d{2}-\d{2}"
    r"(?:[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:[Zz]|[+-]\d{2}:\d{2})?)?$"
)
_FULL_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")

Node = Condition | Filter


def parse_filter(obj: Any, *, path: str = "filter") -> Filter | None:
    """Parse a JSON filter; None or {} means "no filter".

    Raises:
        InvalidQuery: the filter is malformed; `path` names where.
    """
    if obj is None or obj == {}:
        return None
    if not isinstance(obj, Mapping):
        raise InvalidQuery(f"expected a JSON object, got {_kind(obj)}", path=path)
    parts = _Parser().object(obj, path, depth=1)
    if len(parts) == 1 and isinstance(parts[0], Filter):
        return parts[0]
    return Filter(must=parts)


def only_present(raw: Mapping[str, Any] | None) -> dict[str, Any]:
    """`raw`, narrowed to assets still at their source (`status: ok`) unless it mentions `status`.

    A sync keeps an asset gone from its source (marked `missing`) until a prune, so that
    it can come back with its id and history; searches and exports leave such assets
    out unless the filter asks about status itself (`{"status": "missing"}`).
    """
    if raw and _mentions_status(raw):
        return dict(raw)
    return {"and": [dict(raw), {"status": "ok"}]} if raw else {"status": "ok"}


EXCLUDED_DUPLICATE = "signals.duplicate_excluded"


def without_excluded(raw: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """`raw`, narrowed to assets not set aside as duplicates (service/signals), unless it names the flag.

    Keeping one member of a duplicate group marks the others `signals.duplicate_excluded`;
    searches and exports leave them out as they leave out assets gone from their source.
    """
    if raw and EXCLUDED_DUPLICATE in repr(raw):
        return dict(raw)
    keep_out = {"not": {EXCLUDED_DUPLICATE: True}}
    return {"and": [dict(raw), keep_out]} if raw else keep_out


def _mentions_status(obj: Any) -> bool:
    if isinstance(obj, Mapping):
        return "status" in obj or any(_mentions_status(v) for v in obj.values())
    if isinstance(obj, list):
        return any(_mentions_status(v) for v in obj)
    return False


def field_key(name: Any, *, path: str = "field") -> str:
    """The payload path a user-facing field name refers to (see the module docstring)."""
    if not isinstance(name, str) or not name:
        raise InvalidQuery("expected a field name", path=path)
    segments = name.split(".")
    bad = next((s for s in segments if not _SEGMENT.match(s)), None)
    if bad is not None:
        raise InvalidQuery(
            f"invalid field name {name!r}: use letters, digits, '_' or '-' between dots ('[]' after a list)",
            path=path,
        )
    if segments[0] in _BUILTIN_ROOTS:
        return name
    if segments[0] in _METADATA_ALIASES:
        if len(segments) == 1:
            raise InvalidQuery("name a metadata field, e.g. meta.camera", path=path)
        return ".".join((METADATA_ROOT, *segments[1:]))
    return f"{METADATA_ROOT}.{name}"


def field_type_of(value: Any) -> FieldType | None:
    """The payload index type that fits a metadata value, or None when none does.

    A string that holds a full timestamp (date and time, e.g. `2024-05-01T10:00:00Z`)
    is a datetime: such fields are filtered by range, which a keyword index cannot
    serve. A date alone stays a keyword (often a day bucket matched exactly).
    Lists take the type of their elements when all agree; objects and null get none.
    """
    if isinstance(value, bool):
        return FieldType.bool
    if isinstance(value, int):
        return FieldType.integer
    if isinstance(value, float):
        return FieldType.float if math.isfinite(value) else None
    if isinstance(value, str):
        if _FULL_TIMESTAMP.match(value) and parse_timestamp(value) is not None:
            return FieldType.datetime
        return FieldType.keyword
    if isinstance(value, list) and value:
        kinds = {field_type_of(v) for v in value}
        return kinds.pop() if len(kinds) == 1 else None
    return None


def parse_timestamp(value: str) -> str | None:
    """`value` as a canonical UTC RFC 3339 string, or None when it is not a timestamp."""
    if not _TIMESTAMP.match(value):
        return None
    try:
        moment = datetime.fromisoformat(value.upper())  # RFC 3339 allows `t` and `z`
    except ValueError:
        return None
    return rfc3339(moment)  # a naive time is UTC


class _Parser:
    """One parse: carries the condition budget across the whole tree."""

    def __init__(self) -> None:
        self.conditions = 0

    def object(self, obj: Mapping[str, Any], path: str, *, depth: int) -> list[Node]:
        if depth > MAX_DEPTH:
            raise InvalidQuery(f"filter nests deeper than {MAX_DEPTH} levels", path=path)
        if not obj:
            raise InvalidQuery("expected at least one condition, got an empty object", path=path)
        parts: list[Node] = []
        for name, value in obj.items():
            sub = f"{path}.{name}"
            if name in COMBINATORS:
                parts.append(self.combinator(name, value, sub, depth=depth))
            else:
                parts.extend(self.field(name, value, sub))
        return parts

    def combinator(self, name: str, value: Any, path: str, *, depth: int) -> Node:
        if name == "not":
            if not isinstance(value, Mapping):
                raise InvalidQuery(f"expected a filter object, got {_kind(value)}", path=path)
            return Filter(must_not=[_group(self.object(value, path, depth=depth + 1))])
        if not isinstance(value, list) or not value:
            raise InvalidQuery("expected a non-empty list of filter objects", path=path)
        groups: list[list[Node]] = []
        for i, item in enumerate(value):
            sub = f"{path}[{i}]"
            if not isinstance(item, Mapping):
                raise InvalidQuery(f"expected a filter object, got {_kind(item)}", path=sub)
            groups.append(self.object(item, sub, depth=depth + 1))
        if name == "and":
            return Filter(must=[node for group in groups for node in group])
        return Filter(should=[_group(group) for group in groups])

    def field(self, name: str, value: Any, path: str) -> list[Node]:
        key = field_key(name, path=path)
        if isinstance(value, Mapping):
            return self.operators(key, value, path)
        if isinstance(value, list):
            raise InvalidQuery('a list is not a value to match; use {"in": [...]}', path=path)
        if value is None:
            raise InvalidQuery('null matches nothing; use {"exists": false}', path=path)
        return [self.equals(key, value, path)]

    def operators(self, key: str, ops: Mapping[str, Any], path: str) -> list[Node]:
        if not ops:
            raise InvalidQuery(f"expected an operator: one of {', '.join(OPERATORS)}", path=path)
        parts: list[Node] = []
        bounds: dict[str, float | str] = {}
        for op, value in ops.items():
            sub = f"{path}.{op}"
            if op in RANGE_OPS:
                bounds[op] = _bound(key, value, sub)
            elif op in ("eq", "ne"):
                cond = self.equals(key, value, sub)
                parts.append(cond if op == "eq" else Filter(must_not=[cond]))
            elif op in ("in", "nin"):
                cond = self.count(Condition(key=key, any_of=_values(key, value, sub)), sub)
                parts.append(cond if op == "in" else Filter(must_not=[cond]))
            elif op == "exists":
                if not isinstance(value, bool):
                    raise InvalidQuery(f"expected true or false, got {_kind(value)}", path=sub)
                parts.append(self.count(Condition(key=key, exists=value), sub))
            elif op == "match":
                if not isinstance(value, str) or not value.strip():
                    raise InvalidQuery("expected a non-empty string of words", path=sub)
                parts.append(self.count(Condition(key=key, match=value), sub))
            else:
                raise InvalidQuery(
                    f"unknown operator {op!r}; valid operators: {', '.join(OPERATORS)}", path=sub
                )
        if bounds:
            parts.append(self.count(_range(key, bounds, path), path))
        return parts

    def equals(self, key: str, value: Any, path: str) -> Condition:
        kind = BUILTIN_FIELDS.get(key)
        if isinstance(value, float) and not isinstance(value, bool):
            # Qdrant matches only keywords, integers and booleans exactly; a float
            # equality is the degenerate range [v, v].
            bound = _bound(key, value, path)
            return self.count(Condition(key=key, range={"gte": bound, "lte": bound}), path)
        if kind is FieldType.datetime and isinstance(value, str):
            moment = _timestamp(value, path)
            return self.count(
                Condition(key=key, range={"gte": moment, "lte": moment}, is_datetime=True), path
            )
        if not isinstance(value, str | int | bool):
            raise InvalidQuery(f"expected a string, number or boolean, got {_kind(value)}", path=path)
        _check_scalar(key, value, path)
        return self.count(Condition(key=key, eq=value), path)

    def count(self, cond: Condition, path: str) -> Condition:
        self.conditions += 1
        if self.conditions > MAX_CONDITIONS:
            raise InvalidQuery(f"filter has more than {MAX_CONDITIONS} conditions", path=path)
        return cond


def _group(parts: list[Node]) -> Node:
    return parts[0] if len(parts) == 1 else Filter(must=parts)


def _check_scalar(key: str, value: str | int | bool, path: str) -> None:
    """Built-in fields have known types; catch a mismatch here rather than match nothing."""
    kind = BUILTIN_FIELDS.get(key)
    if kind in (FieldType.keyword, FieldType.text) and not isinstance(value, str):
        raise InvalidQuery(f"expected a string ({key} is a {kind.value} field)", path=path)
    if kind is FieldType.integer and (isinstance(value, bool) or not isinstance(value, int)):
        raise InvalidQuery(f"expected an integer ({key} is an integer field)", path=path)


def _values(key: str, value: Any, path: str) -> list[str] | list[int]:
    if not isinstance(value, list) or not value:
        raise InvalidQuery("expected a non-empty list of strings or integers", path=path)
    if len(value) > MAX_VALUES:
        raise InvalidQuery(f"expected at most {MAX_VALUES} values, got {len(value)}", path=path)
    if all(isinstance(v, str) for v in value):
        values: list[Any] = list(value)
    elif all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        values = list(value)
    else:
        raise InvalidQuery("expected a list of only strings or only integers", path=path)
    for i, v in enumerate(values):
        _check_scalar(key, v, f"{path}[{i}]")
    return values


def _bound(key: str, value: Any, path: str) -> float | str:
    kind = BUILTIN_FIELDS.get(key)
    if kind in (FieldType.keyword, FieldType.text):
        raise InvalidQuery(f"{key} is a {kind.value} field; it has no range", path=path)
    if isinstance(value, int | float) and not isinstance(value, bool):
        if kind is FieldType.datetime:
            raise InvalidQuery("expected an RFC 3339 timestamp", path=path)
        if not math.isfinite(value):
            raise InvalidQuery("expected a finite number", path=path)
        return float(value)
    if kind is FieldType.integer:
        raise InvalidQuery(f"expected a number, got {_kind(value)}", path=path)
    if isinstance(value, str):
        moment = parse_timestamp(value)
        if moment is not None:
            return moment
    datetime_field = kind is FieldType.datetime
    expected = "an RFC 3339 timestamp" if datetime_field else "a number or an RFC 3339 timestamp"
    raise InvalidQuery(f"expected {expected} (e.g. 2024-01-01T00:00:00Z), got {_kind(value)}", path=path)


def _range(key: str, bounds: dict[str, float | str], path: str) -> Condition:
    timestamps = {isinstance(v, str) for v in bounds.values()}
    if len(timestamps) > 1:
        raise InvalidQuery("mixes numbers and timestamps in one range", path=path)
    return Condition(key=key, range=bounds, is_datetime=timestamps == {True})


def _timestamp(value: str, path: str) -> str:
    moment = parse_timestamp(value)
    if moment is None:
        raise InvalidQuery(f"{value!r} is not an RFC 3339 timestamp (e.g. 2024-01-01T00:00:00Z)", path=path)
    return moment


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else "a long string"
    return _KINDS.get(type(value), type(value).__name__)


_KINDS = {bool: "a boolean", int: "a number", float: "a number", list: "a list", dict: "an object"}
