"""The candidate pool read in batches from the index: ids, each objective's value, balance values,
and (when diversity or similarity asks) the vectors, plus the seeds' vectors.

Memory is the pool's vectors, pool x dim float32 (1,000,000 x 128 = 512 MB); nothing is
ever pool x pool. Seeds beyond MAX_SEEDS are a deterministic sample (the first by id), which
makes the distance to "what is labelled" an upper bound, never a wrong pick order in kind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from service.index.base import Distance, VectorIndex
from service.index.filters import parse_filter
from service.selections.plan import Plan

BATCH = 4096
MAX_SEEDS = 20_000
UNIT_TOLERANCE = 1e-5  # a stored cosine vector's norm is 1 within a few float32 steps


@dataclass
class Pool:
    ids: list[str] = field(default_factory=list)
    values: list[np.ndarray] = field(default_factory=list)  # per weight: raw values, NaN = missing
    groups: list[Any] = field(default_factory=list)  # balance values (None = missing)
    vectors: np.ndarray | None = None
    seeds: np.ndarray | None = None
    seed_count: int = 0
    no_vector: int = 0
    # Which rows of `ids` (and `vectors`) are candidates; None: all of them. Set when the pool is
    # the whole index but a few excluded assets, whose rows stay (no pool-sized copy) but are
    # never chosen.
    candidates: np.ndarray | None = None

    @property
    def size(self) -> int:
        """How many candidates."""
        return len(self.ids) if self.candidates is None else int(self.candidates.sum())


def lookup(payload: dict[str, Any], path: str) -> Any:
    node: Any = payload
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return float("nan")
    return float(value)


def _group(value: Any) -> Any:
    if isinstance(value, list):  # a keyword list: balance by its first value
        value = value[0] if value else None
    return value if isinstance(value, str | int | bool) else None


def prepare(vectors: np.ndarray, distance: Distance, *, in_place: bool = False) -> np.ndarray:
    """Vectors compared by euclidean distance; cosine spaces are normalised first (so that the
    distance is a monotone function of the cosine). `in_place` normalises the given float32
    array itself (the pool's: a second pool-sized array would double the peak memory)."""
    arr = np.asarray(vectors, dtype=np.float32)
    if distance == Distance.cosine:
        if arr is vectors and not in_place:
            arr = arr.copy()
        for at in range(0, len(arr), BATCH):
            part = arr[at : at + BATCH]
            part /= np.maximum(np.linalg.norm(part, axis=1, keepdims=True), 1e-12)
    return arr


def read(index: VectorIndex, plan: Plan, *, on_batch: Callable[[int], None] = lambda n: None) -> Pool:
    """The pool in scroll (id) order. With vectors, they come from `index.all_vectors` (the
    embedded index's cache) and the pool's scroll reads ids and payload fields only."""
    paths = [w.path for w in plan.weights] + ([plan.balance_path] if plan.balance_path else [])
    roots = sorted({p.split(".")[0] for p in paths})
    flt = parse_filter(plan.pool)
    if not plan.needs_vectors:
        pool = Pool()
        _scroll(index, plan, pool, flt=flt, roots=roots, on_batch=on_batch)
        return pool
    ids, matrix = index.all_vectors(plan.space.name)
    rows = _Rows(ids)
    pool = Pool()
    total = index.count(None)
    if not roots and _few_excluded(index, plan, total):
        return _all_but_excluded(index, plan, ids, matrix, total, on_batch)
    if not roots and index.count(flt) == total:
        # The whole index is the pool (the usual diversity run): no scroll, and no copy.
        pool.ids, pool.no_vector, take = list(ids), total - len(ids), None
        on_batch(len(ids))
    else:
        take = _scroll(index, plan, pool, flt=flt, roots=roots, on_batch=on_batch, rows=rows)
        if np.array_equal(take, np.arange(len(ids))):
            take = None  # every point with a vector, in the cache's order
    if take is None:
        pool.vectors = _compared(matrix, plan.space.distance, owned=False) if len(ids) else None
    elif len(take):
        pool.vectors = _compared(matrix[take], plan.space.distance, owned=True)  # a gathered copy
    if plan.diversity is not None and plan.seeds is not None:
        pool.seeds, pool.seed_count = _seeds(index, plan, matrix, rows)
    return pool


def _few_excluded(index: VectorIndex, plan: Plan, total: int) -> bool:
    """Whether the pool is the whole index but at most half of it excluded (earlier selections,
    exports, a labelled set): reading the excluded then costs less than scrolling the pool."""
    if plan.excluded is None or index.count(parse_filter(plan.base)) != total:
        return False
    return index.count(parse_filter(plan.excluded)) <= total // 2


def _all_but_excluded(
    index: VectorIndex,
    plan: Plan,
    ids: list[str],
    matrix: np.ndarray,
    total: int,
    on_batch: Callable[[int], None],
) -> Pool:
    """Every point with a vector but the excluded ones: the excluded ids scrolled by a filter the
    payload indexes answer (only they are read), their rows masked in the cache's own matrix. The
    excluded with a vector are the seeds too (the base is the whole index), in id order."""
    excluded: list[str] = []
    cursor: str | None = None
    flt = parse_filter(plan.excluded)
    while True:
        recs, cursor = index.scroll(filter=flt, limit=BATCH, cursor=cursor, fields=[])
        excluded.extend(r.id for r in recs)
        if cursor is None:
            break
    out = set(excluded)
    masked = np.fromiter((i in out for i in ids), dtype=bool, count=len(ids))
    pool = Pool(ids=list(ids), candidates=~masked)
    # Points without a vector cannot be placed: those of the pool are counted, not chosen.
    pool.no_vector = (total - len(ids)) - (len(out) - int(masked.sum()))
    on_batch(pool.size)
    if len(ids):
        pool.vectors = _compared(matrix, plan.space.distance, owned=False)
    if plan.diversity is not None and masked.any():
        of = {ids[r]: r for r in np.flatnonzero(masked).tolist()}
        take = [of[i] for i in excluded if i in of][:MAX_SEEDS]
        pool.seeds = _compared(matrix[np.asarray(take, dtype=np.int64)], plan.space.distance, owned=True)
        pool.seed_count = len(take)
    return pool


class _Rows:
    """Row of each id in the cached matrix, the dict built when first asked (1M ids: ~0.4 s)."""

    def __init__(self, ids: list[str]) -> None:
        self.ids = ids
        self._of: dict[str, int] | None = None

    def get(self, asset_id: str) -> int | None:
        if self._of is None:
            self._of = {i: n for n, i in enumerate(self.ids)}
        return self._of.get(asset_id)


def _scroll(
    index: VectorIndex,
    plan: Plan,
    pool: Pool,
    *,
    flt: Any,
    roots: list[str],
    on_batch: Callable[[int], None],
    rows: _Rows | None = None,
) -> np.ndarray:
    """The pool's ids and payload values into `pool`; with `rows`, only the points that have a
    vector (the others are counted in `no_vector`: they cannot be placed, so not chosen), and
    their rows in the matrix are returned."""
    values: list[list[float]] = [[] for _ in plan.weights]
    take: list[int] = []
    cursor: str | None = None
    while True:
        recs, cursor = index.scroll(filter=flt, limit=BATCH, cursor=cursor, fields=roots)
        for rec in recs:
            if rows is not None:
                row = rows.get(rec.id)
                if row is None:
                    pool.no_vector += 1
                    continue
                take.append(row)
            pool.ids.append(rec.id)
            for n, weight in enumerate(plan.weights):
                values[n].append(_number(lookup(rec.payload, weight.path)))
            if plan.balance_path:
                pool.groups.append(_group(lookup(rec.payload, plan.balance_path)))
        on_batch(len(pool.ids))
        if cursor is None:
            break
    pool.values = [np.asarray(v, dtype=np.float64) for v in values]
    return np.asarray(take, dtype=np.int64)


def _compared(matrix: np.ndarray, distance: Distance, *, owned: bool) -> np.ndarray:
    """`prepare`d vectors, written into `matrix` only when `owned` (the cache's is a read-only
    mapped file). Cosine vectors come out of the index normalised already: when every norm is 1
    to float32 rounding they are used as stored (normalising again would only move them by a
    rounding step, and needs a pool-sized copy of a mapped matrix); otherwise normalised."""
    if distance != Distance.cosine:
        return matrix
    for at in range(0, len(matrix), BATCH):
        norms = np.linalg.norm(matrix[at : at + BATCH], axis=1)
        if not np.all(np.abs(norms - 1.0) <= UNIT_TOLERANCE):
            copy = matrix if owned else np.array(matrix, dtype=np.float32)
            return prepare(copy, distance, in_place=True)
    return matrix


def _seeds(index: VectorIndex, plan: Plan, matrix: np.ndarray, rows: _Rows) -> tuple[np.ndarray | None, int]:
    """The first MAX_SEEDS seeds (by id) that have a vector, gathered from the matrix."""
    take: list[int] = []
    cursor: str | None = None
    flt = parse_filter(plan.seeds)
    while len(take) < MAX_SEEDS:
        recs, cursor = index.scroll(filter=flt, limit=BATCH, cursor=cursor, fields=[])
        for rec in recs:
            row = rows.get(rec.id)
            if row is not None and len(take) < MAX_SEEDS:
                take.append(row)
        if cursor is None:
            break
    if not take:
        return None, 0
    return _compared(matrix[np.asarray(take, dtype=np.int64)], plan.space.distance, owned=True), len(take)
