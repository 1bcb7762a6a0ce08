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


@dataclass
class Pool:
    ids: list[str] = field(default_factory=list)
    values: list[np.ndarray] = field(default_factory=list)  # per weight: raw values, NaN = missing
    groups: list[Any] = field(default_factory=list)  # balance values (None = missing)
    vectors: np.ndarray | None = None
    seeds: np.ndarray | None = None
    seed_count: int = 0
    no_vector: int = 0


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
    paths = [w.path for w in plan.weights] + ([plan.balance_path] if plan.balance_path else [])
    roots = sorted({p.split(".")[0] for p in paths})
    space = plan.space.name
    pool = Pool()
    values: list[list[float]] = [[] for _ in plan.weights]
    rows: np.ndarray | None = None  # filled in place: one pool-sized array, never a list of rows
    placed = 0
    cursor: str | None = None
    flt = parse_filter(plan.pool)
    if plan.needs_vectors:
        rows = np.empty((index.count(flt), plan.space.dim), dtype=np.float32)  # an upper bound
    while True:
        recs, cursor = index.scroll(
            filter=flt,
            limit=BATCH,
            cursor=cursor,
            fields=roots,
            with_vectors=[space] if plan.needs_vectors else False,
        )
        for rec in recs:
            if plan.needs_vectors:
                vec = rec.vectors.get(space)
                if vec is None:
                    pool.no_vector += 1  # not in this space: it cannot be placed, so not chosen
                    continue
                assert rows is not None
                if placed == len(rows):  # points added since the count
                    rows = np.concatenate([rows, np.empty_like(rows[: max(BATCH, len(rows) // 4)])])
                rows[placed] = vec
                placed += 1
            pool.ids.append(rec.id)
            for n, weight in enumerate(plan.weights):
                values[n].append(_number(lookup(rec.payload, weight.path)))
            if plan.balance_path:
                pool.groups.append(_group(lookup(rec.payload, plan.balance_path)))
        on_batch(len(pool.ids))
        if cursor is None:
            break
    pool.values = [np.asarray(v, dtype=np.float64) for v in values]
    if rows is not None and placed:
        pool.vectors = prepare(rows[:placed], plan.space.distance, in_place=True)
    if plan.diversity is not None and plan.seeds is not None:
        pool.seeds, pool.seed_count = _seeds(index, plan)
    return pool


def _seeds(index: VectorIndex, plan: Plan) -> tuple[np.ndarray | None, int]:
    space = plan.space.name
    rows: list[np.ndarray] = []
    cursor: str | None = None
    flt = parse_filter(plan.seeds)
    while len(rows) < MAX_SEEDS:
        recs, cursor = index.scroll(
            filter=flt,
            limit=min(BATCH, MAX_SEEDS - len(rows)),
            cursor=cursor,
            fields=[],
            with_vectors=[space],
        )
        rows.extend(np.asarray(r.vectors[space], dtype=np.float32) for r in recs if space in r.vectors)
        if cursor is None:
            break
    if not rows:
        return None, 0
    return prepare(np.stack(rows), plan.space.distance), len(rows)
