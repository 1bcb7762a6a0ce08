"""The neighbour graph: each asset's k nearest under a filter, from the index's batched search.

One pass pages through the assets under the filter (their vectors in the asked space and
the payload fields a signal needs), and for each page asks the index for every vector's
k + 1 nearest in one batch query (`VectorIndex.neighbours`); the asset itself is dropped
from its own list. Only the graph is kept: positions (n, k) and distances (n, k), so
memory is O(n k), never an n x n matrix. Selections and the other curation features
reuse `build_graph`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from service.index.base import Distance, Filter, HasVector, VectorIndex, VectorSpec

BATCH = 256  # queries per batch: large enough to share the engine's pass, small enough to report often
PAGE = 1024


@dataclass
class NeighbourGraph:
    """Assets (`ids`, in scan order) and, per asset, its k nearest others under the same filter.

    `idx[i, j]` is the position in `ids` of asset i's j-th nearest neighbour (-1 when fewer
    than k others exist), `dist[i, j]` its distance (cosine: 1 - similarity; euclid: the
    distance; dot: 1 - the product), ascending along each row.
    """

    ids: list[str]
    idx: np.ndarray
    dist: np.ndarray
    payloads: list[dict[str, Any]] = field(default_factory=list)
    reduced: np.ndarray | None = None  # what `on_vectors` returned per page, stacked
    # Each row's neighbour ids (interned: one string per asset, n k references in all).
    neighbour_ids: list[list[str]] = field(default_factory=list)

    @property
    def k(self) -> int:
        return int(self.idx.shape[1])

    def position(self) -> dict[str, int]:
        return {pid: n for n, pid in enumerate(self.ids)}


@dataclass(frozen=True)
class Scanned:
    """One page of the scan: ids, vectors and the payload fields asked for."""

    ids: list[str]
    vectors: np.ndarray
    payloads: list[dict[str, Any]]


def scan(
    index: VectorIndex,
    *,
    space: VectorSpec,
    filter: Filter | None,
    fields: Sequence[str] = (),
    page: int = PAGE,
) -> Iterator[Scanned]:
    """The assets under `filter` that have a vector in `space`, page by page."""
    flt = with_vector(filter, space)
    cursor: str | None = None
    while True:
        recs, cursor = index.scroll(
            filter=flt, limit=page, cursor=cursor, fields=list(fields), with_vectors=[space.name]
        )
        kept = [r for r in recs if r.vectors.get(space.name) is not None]
        if kept:
            yield Scanned(
                ids=[r.id for r in kept],
                vectors=np.stack([r.vectors[space.name] for r in kept]).astype(np.float32),
                payloads=[r.payload for r in kept],
            )
        if cursor is None:
            return


def with_vector(filter: Filter | None, space: VectorSpec) -> Filter:
    """`filter`, narrowed to points that have a vector in `space` (a user space may lack some)."""
    parts: list[Any] = [HasVector(space.name)]
    if filter is not None:
        parts.append(filter)
    return Filter(must=parts)


def to_distance(scores: np.ndarray, distance: Distance) -> np.ndarray:
    """Scores as the index reports them turned into distances (lower = closer, >= 0 for unit vectors)."""
    if distance is Distance.euclid:
        return scores
    return np.maximum(1.0 - scores, 0.0)


def build_graph(
    index: VectorIndex,
    *,
    space: VectorSpec,
    filter: Filter | None,
    k: int,
    fields: Sequence[str] = (),
    batch: int = BATCH,
    on_batch: Callable[[int], None] | None = None,
    on_vectors: Callable[[np.ndarray], np.ndarray] | None = None,
    only: set[str] | None = None,
) -> NeighbourGraph:
    """The k-nearest-neighbour graph of the assets under `filter` (see the module docstring).

    `only` limits the queries to those ids (an incremental recompute: their neighbours are
    still searched among every asset under the filter); `on_batch(done)` is called after
    each batch; `on_vectors(page)` reduces each page's vectors to keep (clusters keep a PCA
    reduction, not the vectors).
    """
    flt = with_vector(filter, space)
    ids: list[str] = []
    payloads: list[dict[str, Any]] = []
    rows_dist: list[np.ndarray] = []
    neighbour_ids: list[list[str]] = []
    reduced: list[np.ndarray] = []
    for page in scan(index, space=space, filter=filter, fields=fields):
        if on_vectors is not None:
            reduced.append(on_vectors(page.vectors))
        keep = [n for n, pid in enumerate(page.ids) if only is None or pid in only]
        for start in range(0, len(keep), batch):
            chunk = keep[start : start + batch]
            hits = index.neighbours([page.vectors[n] for n in chunk], k=k + 1, filter=flt, using=space.name)
            for n, row in zip(chunk, hits, strict=True):
                own = sys.intern(page.ids[n])
                others = [h for h in row if h.id != own][:k]
                ids.append(own)
                payloads.append(page.payloads[n])
                neighbour_ids.append([sys.intern(h.id) for h in others])
                scores = np.full(k, np.inf, dtype=np.float32)
                scores[: len(others)] = [h.score for h in others]
                rows_dist.append(scores)
            if on_batch is not None:
                on_batch(len(ids))
    where = {pid: n for n, pid in enumerate(ids)}
    idx = np.full((len(ids), k), -1, dtype=np.int64)
    for n, row_ids in enumerate(neighbour_ids):
        # A neighbour outside the queried ids (an incremental run) is kept as -2: known, not placed.
        idx[n, : len(row_ids)] = [where.get(pid, -2) for pid in row_ids]
    raw = np.stack(rows_dist) if rows_dist else np.zeros((0, k), dtype=np.float32)
    finite = np.isfinite(raw)
    dist = np.where(finite, to_distance(np.where(finite, raw, 0.0), space.distance), np.inf)
    return NeighbourGraph(
        ids=ids,
        idx=idx,
        dist=dist.astype(np.float32),
        payloads=payloads,
        reduced=np.concatenate(reduced) if reduced else None,
        neighbour_ids=neighbour_ids,
    )
