"""How the strategies combine into picks (numpy; no index).

The rule, after Lightly's: every weighting objective (uncertainty, similarity, a numeric
field) is normalised to [0, 1] over the candidate pool and the candidate's weight is their
product, each raised to its strength:

    w_i = prod_s  o_s(i) ** strength_s          (no weighting objective: w_i = 1)

Uncertainty is already in [0, 1] (1 - margin for `margin`, so the smallest margin weighs
most); a field and a similarity are min-max normalised; a missing value is 0. A floor of
EPS keeps every candidate comparable, so diversity still orders the zero-weight ones.

Without diversity the picks are the `budget` largest weights. With diversity of strength b
the picks are greedy farthest-first (k-centre): each step takes the candidate maximising

    w_i * (d_i / d_max) ** b

where d_i is its euclidean distance to the nearest seed (labelled or earlier chosen asset)
or pick so far, and d_max the largest d_i (with no seed, the first pick is the largest
weight); the picked candidate's distances then update
the others' d_i: one pool x dim product per pick (O(pool * budget) in all). On a large pool
that product reads an int8 copy of the pool instead, and each pick is checked on the exact
vectors (service.selections.quantised: 4x less memory read per pick). Balance caps
each value of its field at its share of the budget (rounded up) until no value with room
has candidates left, then lifts the caps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from service.selections.quantised import QuantisedDistances

EPS = 1e-6
SEED_CHUNK = 1024
POOL_CHUNK = 16_384  # a 16k x 1k block of distances: 64 MB
# Below these the plain float32 update is fast enough (100,000 x 512: ~20 ms a pick), and it
# is exact; the int8 copy costs its set-up, a quarter of the pool's memory and a numba import.
QUANTISED_MIN_POOL = 200_000
QUANTISED_MIN_BUDGET = 50


def normalise(
    values: np.ndarray, *, invert: bool, minmax: bool, over: np.ndarray | None = None
) -> np.ndarray:
    """`over`: the rows whose range the min-max takes (the candidates; None: every row)."""
    v = np.where(np.isnan(values), np.nan, 1.0 - values if invert else values)
    if minmax:
        finite = v[~np.isnan(v) & (True if over is None else over)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        v = (v - lo) / (hi - lo) if hi > lo else np.where(np.isnan(v), np.nan, 1.0)
    return np.clip(np.nan_to_num(v, nan=0.0), 0.0, 1.0)


def combine(objectives: Sequence[tuple[np.ndarray, float]], n: int) -> np.ndarray:
    """The product of the normalised objectives raised to their strengths, floored at EPS."""
    weight = np.ones(n, dtype=np.float64)
    for values, strength in objectives:
        weight *= np.power(np.maximum(values, EPS), strength)
    return np.maximum(weight, EPS)


def quotas(groups: Sequence[Any], budget: int, target: str | dict[str, float]) -> dict[Any, int]:
    """Per value of the balance field, the most picks it gets while others have room."""
    present = sorted({g for g in groups if g is not None}, key=str)
    if isinstance(target, str):  # "uniform"
        shares = dict.fromkeys(present, 1.0 / max(1, len(present)))
    else:
        total = sum(target.values())
        by_text = {str(g): g for g in present}
        shares = {by_text[k]: v / total for k, v in target.items() if k in by_text}
    return {g: int(np.ceil(budget * s - 1e-9)) for g, s in shares.items()}


def pick(
    weight: np.ndarray,
    *,
    budget: int,
    vectors: np.ndarray | None = None,
    seeds: np.ndarray | None = None,
    diversity: float | None = None,
    groups: Sequence[Any] | None = None,
    target: str | dict[str, float] = "uniform",
    on_pick: Callable[[int], None] = lambda n: None,
    accelerate: bool | None = None,
    candidates: np.ndarray | None = None,
) -> list[int]:
    """Indices into the pool, in the order chosen (see the module docstring). `accelerate`
    updates the distances on an int8 copy of the pool, each pick checked on the exact vectors
    (service.selections.quantised); None: when the pool and the budget are large. `candidates`:
    the rows that may be chosen (None: all); the others only sit in `vectors`."""
    n = len(weight)
    allowed = np.ones(n, dtype=bool) if candidates is None else np.asarray(candidates, dtype=bool)
    budget = min(budget, int(allowed.sum()))
    caps = _Caps(groups, budget, target) if groups is not None else None
    open_ = (caps.initial() if caps is not None else np.ones(n, dtype=bool)) & allowed
    taken = ~allowed  # never opened again when the caps are lifted
    out: list[int] = []
    if diversity is not None and vectors is not None:
        # d_max scales every candidate alike, so the argmax of w * d**b is that of the rule.
        vectors = np.asarray(vectors, dtype=np.float32)  # no copy when it already is
        sq = np.einsum("ij,ij->i", vectors, vectors)  # without a pool-sized temporary
        dist = _seed_distances(vectors, seeds, sq)
        if accelerate is None:
            accelerate = int(allowed.sum()) >= QUANTISED_MIN_POOL and budget >= QUANTISED_MIN_BUDGET
        near = _distances(vectors, sq, dist, accelerate=accelerate)
        # The scores in one buffer, rewritten in place each pick (at 1M, a third of the numpy
        # time per pick of allocating where/power/product temporaries).
        score = np.empty(n, dtype=np.float64)
        placed = seeds is not None and len(seeds) > 0
        try:
            while len(out) < budget:
                if not open_.any():
                    open_, caps = ~taken, None  # every capped value is full or empty: caps lifted
                if not placed and np.isinf(dist).all():
                    np.copyto(score, weight)
                elif diversity == 1.0:
                    placed = True
                    np.multiply(weight, dist, out=score)
                else:
                    placed = True
                    np.power(dist, diversity, out=score)
                    score *= weight
                np.copyto(score, -1.0, where=~open_)
                i = int(np.argmax(score))
                i = near.choose(score, i, weight=weight, diversity=diversity)
                near.update(i)
                open_, caps = _take(i, out, taken, open_, caps, on_pick)
        finally:
            near.close()
        return out
    order = np.lexsort((np.arange(n), -weight))
    cursor = 0
    while len(out) < budget:
        while cursor < n and not open_[order[cursor]]:
            cursor += 1
        if cursor == n:
            open_, caps, cursor = ~taken, None, 0  # caps lifted: skipped candidates are open again
            continue
        open_, caps = _take(int(order[cursor]), out, taken, open_, caps, on_pick)
    return out


class _Caps:
    """The balance caps and each candidate's value."""

    def __init__(self, groups: Sequence[Any], budget: int, target: str | dict[str, float]) -> None:
        self.limit = {str(g): c for g, c in quotas(groups, budget, target).items()}
        self.of = np.asarray(["" if g is None else str(g) for g in groups], dtype=object)
        self.missing = np.asarray([g is None for g in groups])
        self.counts: dict[str, int] = {}

    def initial(self) -> np.ndarray:
        allowed = {g for g, c in self.limit.items() if c > 0}
        return np.asarray([g in allowed for g in self.of]) & ~self.missing

    def full_after(self, i: int) -> str | None:
        g = str(self.of[i])
        self.counts[g] = self.counts.get(g, 0) + 1
        return g if self.counts[g] >= self.limit.get(g, 0) else None


def _take(
    i: int,
    out: list[int],
    taken: np.ndarray,
    open_: np.ndarray,
    caps: _Caps | None,
    on_pick: Callable[[int], None],
) -> tuple[np.ndarray, _Caps | None]:
    out.append(i)
    taken[i] = True
    open_[i] = False
    if caps is not None and not caps.missing[i]:
        full = caps.full_after(i)
        if full is not None:
            open_ &= caps.of != full
    if len(out) % 100 == 0:
        on_pick(len(out))
    return open_, caps


class _PlainDistances:
    """Each candidate's distance to its nearest seed or pick (`dist`, in place), exactly."""

    def __init__(self, vectors: np.ndarray, sq: np.ndarray, dist: np.ndarray) -> None:
        self.vectors, self.sq, self.dist = vectors, sq, dist

    def update(self, i: int) -> None:
        d2 = self.sq + self.sq[i] - 2.0 * (self.vectors @ self.vectors[i])
        np.minimum(self.dist, np.sqrt(np.maximum(d2, 0.0)), out=self.dist)

    def choose(self, score: np.ndarray, i: int, *, weight: np.ndarray, diversity: float) -> int:
        return i  # the distances are exact: so is the argmax

    def close(self) -> None:
        pass


def _distances(
    vectors: np.ndarray, sq: np.ndarray, dist: np.ndarray, *, accelerate: bool
) -> _PlainDistances | QuantisedDistances:
    if not accelerate:
        return _PlainDistances(vectors, sq, dist)
    from service.selections.quantised import QuantisedDistances  # numba: imported when needed

    return QuantisedDistances(vectors, sq, dist)


def _seed_distances(vectors: np.ndarray, seeds: np.ndarray | None, sq: np.ndarray) -> np.ndarray:
    """Each candidate's distance to its nearest seed (inf without seeds), in blocks of both."""
    dist = np.full(len(vectors), np.inf, dtype=np.float32)
    if seeds is None or not len(seeds):
        return dist
    for s0 in range(0, len(seeds), SEED_CHUNK):
        chunk = seeds[s0 : s0 + SEED_CHUNK]
        csq = (chunk**2).sum(axis=1)
        for p0 in range(0, len(vectors), POOL_CHUNK):
            block = vectors[p0 : p0 + POOL_CHUNK]
            d2 = sq[p0 : p0 + POOL_CHUNK, None] + csq[None, :] - 2.0 * (block @ chunk.T)
            near = np.sqrt(np.maximum(d2.min(axis=1), 0.0))
            np.minimum(dist[p0 : p0 + POOL_CHUNK], near, out=dist[p0 : p0 + POOL_CHUNK])
    return dist
