"""The vector index interface: one facade, two backends (embedded engine, Qdrant server).

Everything above `service/index/` speaks these types only; backends translate
them to `qdrant_edge` or `qdrant_client` models and map their errors to
`IndexUnavailable` / `InvalidQuery` at the boundary.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
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
    # The vector spaces an asset has a vector in, and those whose vector predates a change of
    # the asset at its source (service/spaces): filterable, and counted per space.
    "vectors": FieldType.keyword,
    "vectors_stale": FieldType.keyword,
    # The content hash recorded at sync: exact duplicates (service/signals).
    "signals.sha256": FieldType.keyword,
    # Set aside in the Duplicates view: searches and exports leave these out (service/signals).
    "signals.duplicate_excluded": FieldType.bool,
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
class HasVector:
    """The point has a vector under the named vector `name` (a space may lack some assets)."""

    name: str


@dataclass(frozen=True, slots=True)
class Filter:
    """Boolean combination: all of `must`, at least one of `should` (if any), none of `must_not`."""

    must: Sequence[Condition | Filter | HasVector] = ()
    should: Sequence[Condition | Filter | HasVector] = ()
    must_not: Sequence[Condition | Filter | HasVector] = ()


class Distance(StrEnum):
    """How a named vector compares: cosine and dot score higher = closer, euclid is a distance."""

    cosine = "cosine"
    dot = "dot"
    euclid = "euclid"


@dataclass(frozen=True, slots=True)
class VectorSpec:
    """One named vector of the index's points: the encoder's, or a user space's."""

    name: str
    dim: int
    distance: Distance = Distance.cosine


@dataclass(frozen=True, slots=True)
class Point:
    id: str  # UUID string
    vector: np.ndarray | None  # float32, L2-normalised; None = payload-only update
    payload: Mapping[str, Any]
    # Other named vectors written with it (an upsert replaces the whole point: a re-embedded
    # asset carries its user-space vectors here so that they survive).
    vectors: Mapping[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Record:
    id: str
    payload: dict[str, Any]
    vector: np.ndarray | None = None  # the encoder's (or the `using` space's) vector
    vectors: dict[str, np.ndarray] = field(default_factory=dict)  # asked for by name


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

    def drop_field(self, key: str) -> None:
        """Remove the payload index on `key` if there is one (idempotent; the values stay)."""
        ...

    def upsert(self, points: Sequence[Point]) -> None:
        """Insert or replace points (vector and whole payload)."""
        ...

    def set_payload(self, ids: Sequence[str], payload: Mapping[str, Any], *, key: str | None = None) -> None:
        """Merge `payload` keys into existing points, leaving vectors alone (with `key`, into the
        object at that path, as `set_payloads` does)."""
        ...

    def set_payloads(self, items: Sequence[tuple[str, Mapping[str, Any]]], *, key: str | None = None) -> None:
        """Merge a different payload into each point, in batches; ids that do not exist are skipped.

        With `key` (e.g. "labels"), each payload is merged into the object at that path,
        which is created when missing; the point's other keys are left alone.
        """
        ...

    def write_payloads(
        self,
        items: Sequence[tuple[str, Mapping[str, Any]]],
        *,
        key: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """`set_payloads` for a write to many points at once (a signal over the catalog).

        Values are JSON (no NaN). `progress(done)` is called with the points written so far
        after each batch, and every few seconds while the engine takes the whole write at once;
        an exception from it (a cancelled job) stops the write. An embedded index hands a write
        to at least `write_through_min` points to its optimizer's child (edge_store.py,
        `write_through`): the values then appear together at the end, nothing before.
        """
        ...

    def delete_keys(
        self, keys: Sequence[str], *, ids: Sequence[str] | None = None, filter: Filter | None = None
    ) -> None:
        """Remove payload paths (e.g. "labels.gt") from the points `ids`, or from those matching `filter`."""
        ...

    def delete(self, ids: Sequence[str]) -> None: ...

    def retrieve(
        self,
        ids: Sequence[str],
        *,
        with_vectors: bool | Sequence[str] = False,
        using: str | None = None,
        fields: Sequence[str] | None = None,
    ) -> list[Record]:
        """Existing points among `ids`, in the order given; unknown ids are left out.

        `with_vectors=True` fills `Record.vector` from the `using` named vector (default: the
        encoder's); a list of names fills `Record.vectors` with those the point has. `fields`
        limits the payload to those top-level keys (None = all).
        """
        ...

    # -- named vectors (vector spaces) ------------------------------------

    def vector_specs(self) -> dict[str, VectorSpec]:
        """Every named vector of the index, the encoder's included."""
        ...

    def add_vector(self, spec: VectorSpec) -> None:
        """Give every point room for a vector named `spec.name` (idempotent for the same spec).

        Raises:
            InvalidConfig: the name exists with another dimension or distance.
        """
        ...

    def remove_vector(self, name: str) -> None:
        """Drop a named vector and every point's vector under it (never the encoder's)."""
        ...

    def update_vectors(self, name: str, items: Sequence[tuple[str, np.ndarray]]) -> None:
        """Set the `name` vector of existing points, leaving their other vectors and payload alone.

        Raises:
            InvalidQuery: a point does not exist, or a vector has the wrong dimension.
        """
        ...

    def delete_vectors(self, name: str, ids: Sequence[str]) -> None:
        """Remove the `name` vector of these points (they stay, with their other vectors)."""
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
        using: str | None = None,
    ) -> list[Hit]:
        """Nearest points to the positives and away from the negatives (recommend), filtered.

        One positive and no negative is a plain nearest-neighbour search. `using` names the
        vector to search (default: the encoder's); points without one are not seen. Scores
        follow its distance: cosine similarity, dot product, or euclidean distance (lower =
        closer; hits still come closest first).
        """
        ...

    def neighbours(
        self,
        vectors: Sequence[np.ndarray],
        *,
        k: int,
        filter: Filter | None = None,
        using: str | None = None,
        ef: int | None = None,
    ) -> list[list[Hit]]:
        """The `k` nearest points to each vector, as one batch query of the engine (service/signals).

        Hits come closest first with scores as `query` gives them, without payloads; a point
        that is itself among the vectors comes back as its own nearest hit. `ef` widens the
        graph search to at least that many candidates (a second pass for rows whose first
        answer looks like a miss); by default the settings' `hnsw_ef`.
        """
        ...

    def scroll_ordered(
        self,
        *,
        key: str,
        descending: bool = False,
        filter: Filter | None = None,
        limit: int = 100,
        start_from: float | str | None = None,
        exclude_ids: Sequence[str] = (),
    ) -> list[Record]:
        """Points ordered by the payload field `key` (a numeric or datetime range index), from
        `start_from` (inclusive) on, leaving out `exclude_ids` (the ties a cursor already gave);
        points without the field are left out."""
        ...

    def scroll(
        self,
        *,
        filter: Filter | None = None,
        limit: int = 100,
        cursor: str | None = None,
        fields: Sequence[str] | None = None,
        with_vectors: bool | Sequence[str] = False,
    ) -> tuple[list[Record], str | None]:
        """Points in id order from `cursor`; returns the next cursor or None at the end.

        `fields` limits the payload to those top-level keys (None = all); `with_vectors` as
        for `retrieve`.
        """
        ...

    def all_vectors(self, space: str) -> tuple[list[str], np.ndarray]:
        """Every point's vector in `space` (float32, one row a point) and their ids, in scroll
        (id) order; points without a vector in the space are not in it.

        The embedded index serves it from a cache on disk beside its shards, built on the first
        call after a vector write (the matrix is then a read-only mapped file: copy before
        writing into it); a server's backend scrolls the collection every time.

        Raises:
            InvalidQuery: the index has no vectors named `space`.
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


WRITE_RUN = 2000  # points per batch when `write_payloads` writes batch by batch (a progress call each)


def write_in_runs(
    index: VectorIndex,
    items: Sequence[tuple[str, Mapping[str, Any]]],
    *,
    key: str | None,
    progress: Callable[[int], None] | None,
) -> None:
    """`write_payloads` batch by batch through `set_payloads`, `progress` after each batch."""
    for start in range(0, len(items), WRITE_RUN):
        index.set_payloads(items[start : start + WRITE_RUN], key=key)
        if progress is not None:
            progress(min(len(items), start + WRITE_RUN))
