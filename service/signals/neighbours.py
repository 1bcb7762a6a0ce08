"""The neighbour graph: each asset's k nearest under a filter, from the index's batched search.

One pass pages through the assets under the filter (their vectors in the asked space and
the payload fields a signal needs), and for each page asks the index for every vector's
k + 1 nearest in one batch query (`VectorIndex.neighbours`); the asset itself is dropped
from its own list. A second pass (`refine`) re-asks the rows that look farthest from
their neighbours with a wider graph search, so that a graph search's rare miss does not
pass for an outlier. Only the graph is kept: positions (n, k) and distances (n, k), so
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
# The second pass (see `refine`): rows re-asked with this graph breadth, a share of the rows at a time.
REFINE_EF = 1024
REFINE_SHARE = 0.005
REFINE_MIN_ROWS = 256
REFINE_GAIN = 0.9  # a row "was a miss" when the wider search cuts its mean distance below this share
REFINE_STOP = 0.01  # stop when fewer than this share of a round's rows were misses


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
    payloads: list[Any] = field(default_factory=list)  # the payloads, or what `kept` made of them
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
    kept: Callable[[dict[str, Any]], Any] | None = None,
) -> NeighbourGraph:
    """The k-nearest-neighbour graph of the assets under `filter` (see the module docstring).

    `only` limits the queries to those ids (an incremental recompute: their neighbours are
    still searched among every asset under the filter); `on_batch(done)` is called after
    each batch; `on_vectors(page)` reduces each page's vectors to keep (clusters keep a PCA
    reduction, not the vectors); `kept(payload)` is what `payloads` holds of each asset's
    payload (default: the payload; a signal that needs one label keeps the label: at
    1,000,000 assets the payload dicts alone are ~0.5 GiB).
    """
    flt = with_vector(filter, space)
    ids: list[str] = []
    payloads: list[Any] = []
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
                payloads.append(page.payloads[n] if kept is None else kept(page.payloads[n]))
                neighbour_ids.append([sys.intern(h.id) for h in others])
                scores = np.full(k, np.inf, dtype=np.float32)
                scores[: len(others)] = [h.score for h in others]
                rows_dist.append(scores)
            if on_batch is not None:
                on_batch(len(ids))
    refine(index, space=space, filter=flt, k=k, ids=ids, neighbour_ids=neighbour_ids, scores=rows_dist)
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


def refine(
    index: VectorIndex,
    *,
    space: VectorSpec,
    filter: Filter,
    k: int,
    ids: list[str],
    neighbour_ids: list[list[str]],
    scores: list[np.ndarray],
) -> int:
    """Re-ask the rows that look farthest from their neighbours with a wider graph search; in place.

    Why: on tight, well separated clusters an HNSW search now and then descends into the
    wrong cluster and answers with neighbours far away. Measured on bench_curation's data
    (300,000 x 512, 200 clusters) at ef 128: 0.75 % of ordinary points came back with a
    weighted kNN distance above the least unique planted outlier's, enough to push the
    outliers out of the top of `uniqueness` (outlier AP 0.09). Such a miss always
    overstates the distance, so it sits at the top of the distance ranking, next to the true
    outliers: the rows are re-asked from the farthest down, `REFINE_SHARE` of them a round at
    ef `REFINE_EF` (0 misses left in that sample), and each row keeps the k closest of both
    answers (never worse than the first). Rounds stop when fewer than `REFINE_STOP` of a
    round's rows improved materially: past the misses, the wider search changes little.
    Returns the rows re-asked.
    """
    n = len(ids)
    if n == 0:
        return 0
    distance = space.distance
    mean = np.array([_mean_distance(row, distance) for row in scores])
    order = np.argsort(-mean, kind="stable")
    step = max(REFINE_MIN_ROWS, int(np.ceil(REFINE_SHARE * n)))
    asked = 0
    for start in range(0, n, step):
        rows = [int(r) for r in order[start : start + step]]
        found = {
            r.id: r.vectors[space.name]
            for r in index.retrieve([ids[r] for r in rows], with_vectors=[space.name], fields=[])
            if r.vectors.get(space.name) is not None
        }
        rows = [r for r in rows if ids[r] in found]
        improved = 0
        for at in range(0, len(rows), BATCH):
            chunk = rows[at : at + BATCH]
            hits = index.neighbours(
                [found[ids[r]] for r in chunk], k=k + 1, filter=filter, using=space.name, ef=REFINE_EF
            )
            for r, row in zip(chunk, hits, strict=True):
                best = _merge(ids[r], neighbour_ids[r], scores[r], row, k=k, distance=distance)
                if best is None:
                    continue
                new_ids, new_scores = best
                if _mean_distance(new_scores, distance) < REFINE_GAIN * mean[r]:
                    improved += 1
                neighbour_ids[r], scores[r] = [sys.intern(i) for i in new_ids], new_scores
        asked += len(rows)
        if improved < REFINE_STOP * max(len(rows), 1):
            break
    return asked


def _mean_distance(row: np.ndarray, distance: Distance) -> float:
    finite = row[np.isfinite(row)]
    if finite.size == 0:
        return float("inf")
    return float(np.mean(to_distance(finite, distance)))


def _merge(
    own: str, old_ids: list[str], old: np.ndarray, hits: list[Any], *, k: int, distance: Distance
) -> tuple[list[str], np.ndarray] | None:
    """The k closest of a row's first answer and its second (None when the second adds nothing)."""
    seen = dict(zip(old_ids, old[: len(old_ids)].tolist(), strict=True))
    added = False
    for h in hits:
        if h.id != own and h.id not in seen:
            seen[h.id] = h.score
            added = True
    if not added:
        return None
    # Scores as the index gives them: similarities (higher = closer) except for euclid.
    ranked = sorted(seen.items(), key=lambda item: item[1], reverse=distance is not Distance.euclid)[:k]
    out = np.full(k, np.inf, dtype=np.float32)
    out[: len(ranked)] = [score for _, score in ranked]
    return [pid for pid, _ in ranked], out
