"""The catalog's fields as the page and the projector see them: indexed ones, plus those sampled.

`GET /fields` lists them (with the distinct values seen in a sample, so the page
knows a caption from a category before asking for counts); the projector colours
by them and reads their values with the same path rules.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from service.index.base import BUILTIN_FIELDS, METADATA_ROOT, FieldType, VectorIndex
from service.index.filters import field_type_of

FIELD_SAMPLE = 256  # payloads read to find metadata fields that have no index
_FACETABLE = (FieldType.keyword, FieldType.integer, FieldType.bool)


@dataclass(frozen=True, slots=True)
class FieldInfo:
    """A filterable field: `name` as the filter language takes it (`source`, `meta.site`).

    `distinct` counts the values seen in a sample of `sampled` assets: near-unique
    fields (captions, paths) make poor value lists, and the page knows it in advance.
    """

    name: str
    type: FieldType
    indexed: bool
    distinct: int = 0
    sampled: int = 0
    derived: bool = False  # written by the catalog itself: a label set's or an evaluation's field

    @property
    def builtin(self) -> bool:
        return not self.derived and not self.name.startswith(f"{METADATA_ROOT}.")

    @property
    def label(self) -> str:
        meta = self.name.startswith(f"{METADATA_ROOT}.") and not self.derived
        return self.name[len(METADATA_ROOT) + 1 :] if meta else self.name

    def public(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label,
            "type": self.type.value,
            "indexed": self.indexed,
            "builtin": self.builtin,
            "derived": self.derived,
            "facetable": self.indexed and self.type in _FACETABLE,
            "distinct": self.distinct,
            "sampled": self.sampled,
        }


def catalog_fields(
    index: VectorIndex, *, sample: int = FIELD_SAMPLE, derived: Mapping[str, FieldType] | None = None
) -> list[FieldInfo]:
    """Built-in fields, then metadata fields: the indexed ones, plus any seen in a sample of payloads;
    then `derived`, the fields the catalog writes itself (label sets, evaluations) by payload path,
    and the signals' (`signals.uniqueness`, `signals.cluster`...: indexed once computed)."""
    indexed = index.indexed_fields()
    derived = {**signal_fields(indexed), **(derived or {})}
    records, _ = index.scroll(limit=sample)
    found: dict[str, FieldType] = {}
    seen: dict[str, set[str]] = defaultdict(set)
    for record in records:
        meta = record.payload.get(METADATA_ROOT)
        for name, value in _flatten(meta if isinstance(meta, dict) else {}, METADATA_ROOT):
            kind = field_type_of(value)
            if kind is not None:
                found.setdefault(name, kind)
    for record in records:
        for name in (*BUILTIN_FIELDS, *found, *derived):
            value = value_at(record.payload, name)
            if value is not None:
                seen[name].add(repr(value))

    def info(name: str, kind: FieldType, *, made: bool = False) -> FieldInfo:
        return FieldInfo(
            name, kind, name in indexed, distinct=len(seen[name]), sampled=len(records), derived=made
        )

    builtins = [info(n, indexed.get(n, t)) for n, t in BUILTIN_FIELDS.items()]
    meta_names = sorted({n for n in indexed if n.startswith(f"{METADATA_ROOT}.")} | set(found))
    metadata = [info(n, indexed.get(n) or found[n]) for n in meta_names]
    return builtins + metadata + [info(n, indexed.get(n, t), made=True) for n, t in derived.items()]


def signal_fields(indexed: Mapping[str, FieldType]) -> dict[str, FieldType]:
    """The fields computed signals wrote (service/signals indexes each before writing it)."""
    prefix = "signals."
    return {n: t for n, t in sorted(indexed.items()) if n.startswith(prefix) and n not in BUILTIN_FIELDS}


def _flatten(obj: dict[str, Any], prefix: str, depth: int = 0) -> Iterable[tuple[str, Any]]:
    for key, value in obj.items():
        name = f"{prefix}.{key}"
        if isinstance(value, dict) and depth < 3:
            yield from _flatten(value, name, depth + 1)
        else:
            yield name, value


def value_at(payload: dict[str, Any], name: str) -> Any:
    """The value of field `name` (a dotted payload path) in `payload`; a list gives its first element."""
    value: Any = payload
    for part in name.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return first(value)


def first(value: Any) -> Any:
    # A list colours by its first element: one colour per point.
    return value[0] if isinstance(value, list) and value else value
