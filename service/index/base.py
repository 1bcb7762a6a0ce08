"""The vector index interface: one facade, two backends (embedded engine, Qdrant server).

Everything above `service/index/` speaks these types only; backends translate
them to `qdrant_edge` or `qdrant_client` models and map their errors to
`IndexUnavailable` / `InvalidQuery` at the boundary.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

import numpy as np


class FieldType(StrEnum):
    """Payload index types Loupe creates."""

    keyword = "keyword"
    integer = "integer"
    float = "float"
    bool = "bool"
    datetime = "datetime"
    text = "text"  # full-text (tokenised) match


# Payload fields every asset has; anything else a filter names lives under `meta`.
BUILTIN_FIELDS: dict[str, FieldType] = {
    "source": FieldType.keyword,
    "key": FieldType.keyword,
    "status": FieldType.keyword,
    "media_type": FieldType.keyword,
    "filename": FieldType.text,
    "width": FieldType.integer,
    "height": FieldType.integer,
    "size_bytes": FieldType.integer,
    "modified_at": FieldType.datetime,
    "synced_at": FieldType.datetime,
    "exports.target": FieldType.keyword,
    "exports.project": FieldType.keyword,
    "exports.export_id": FieldType.keyword,
}
METADATA_ROOT = "meta"


@dataclass(frozen=True, slots=True)
class Condition:
    """One field condition of the filter language, already validated.

    `key` is the payload path (built-in name or `meta.<path>`); exactly one of
    the operator groups is set.
    """

    key: str
    eq: Any = None  # str | int | bool
    any_of: Sequence[Any] | None = None
    range: Mapping[str, float | str] | None = None  # gt/gte/lt/lte; str = RFC 3339
    exists: bool | None = None
    match: str | None = None  # full-text match
    is_datetime: bool = False


@dataclass(frozen=True, slots=True)
class Filter:
    """Boolean combination: all of `must`, at least one of `should` (if any), none of `must_not`."""

    must: Sequence[Condition | Filter] = ()
    should: Sequence[Condition | Filter] = ()
    must_not: Sequence[Condition | Filter] = ()


@dataclass(frozen=True, slots=True)
class Point:
    id: str  # UUID string
    vector: np.ndarray | None  # float32, L2-normalised; None = payload-only update
    payload: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Record:
    id: str
    payload: dict[str, Any]
    vector: np.ndarray | None = None


@dataclass(frozen=True, slots=True)
class Hit:
    id: str
    score: float
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FacetCount:
    value: Any
    count: int


class VectorIndex(Protocol):
    """What the catalog and the API need from a vector index.

    Raises (all methods):
        IndexUnavailable: the index cannot be reached or answered with a server error.
        InvalidQuery: the request cannot run as written (e.g. facet on an unindexed field).
    """

    vector_name: str
    dim: int

    def ensure_field(self, key: str, kind: FieldType) -> None:
        """Create a payload index on `key` if it does not exist (idempotent)."""
        ...

    def indexed_fields(self) -> dict[str, FieldType]: ...

    def upsert(self, points: Sequence[Point]) -> None:
        """Insert or replace points (vector and whole payload)."""
        ...

    def set_payload(self, ids: Sequence[str], payload: Mapping[str, Any]) -> None:
        """Merge `payload` keys into existing points, leaving vectors alone."""
        ...

    def delete(self, ids: Sequence[str]) -> None: ...

    def retrieve(self, ids: Sequence[str], *, with_vectors: bool = False) -> list[Record]:
        """Existing points among `ids`, in the order given; unknown ids are left out."""
        ...

    def query(
        self,
        *,
        positive: Sequence[np.ndarray],
        negative: Sequence[np.ndarray] = (),
        filter: Filter | None = None,
        limit: int = 10,
        offset: int = 0,
        score_threshold: float | None = None,
    ) -> list[Hit]:
        """Nearest points to the positives and away from the negatives (recommend), filtered.

        One positive and no negative is a plain nearest-neighbour search (cosine).
        """
        ...

    def scroll(
        self,
        *,
        filter: Filter | None = None,
        limit: int = 100,
        cursor: str | None = None,
        fields: Sequence[str] | None = None,
        with_vectors: bool = False,
    ) -> tuple[list[Record], str | None]:
        """Points in id order from `cursor`; returns the next cursor or None at the end.

        `fields` limits the payload to those top-level keys (None = all).
        """
        ...

    def count(self, filter: Filter | None = None) -> int: ...

    def facet(self, key: str, *, filter: Filter | None = None, limit: int = 50) -> list[FacetCount]:
        """Value counts of a keyword/integer/bool-indexed field, most frequent first."""
        ...

    def optimize(self) -> None:
        """Build the search graph for new data (blocking; searches keep answering)."""
        ...

    def flush(self) -> None: ...

    def close(self) -> None: ...
