"""The int8 distance update of farthest-first (service.selections.quantised) against the plain one."""

from __future__ import annotations

import numpy as np
import pytest

from service.selections import greedy
from service.selections.quantised import SIGMAS, QuantisedDistances


def clustered(n: int, *, dim: int = 64, clusters: int = 12, spread: float = 0.08, seed: int = 0):
    """Unit vectors around `clusters` random centres, and each point's cluster."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    member = rng.integers(clusters, size=n)
    x = centres[member] + rng.normal(size=(n, dim)) * spread
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), member


def covering_radius(vectors: np.ndarray, picks: list[int]) -> float:
    d = np.linalg.norm(vectors[:, None, :] - vectors[picks][None, :, :], axis=2)
    return float(d.min(axis=1).max())


def test_int8_distances_stay_inside_the_band_choose_allows() -> None:
    x, _ = clustered(3000)
    sq = np.einsum("ij,ij->i", x, x)
    near = QuantisedDistances(x, sq, np.full(len(x), np.inf, dtype=np.float32))
    try:
        for i in (0, 17, 1234):
            near.update(i)
    finally:
        near.close()
    exact = np.linalg.norm(x[:, None, :] - x[[0, 17, 1234]][None, :, :], axis=2).min(axis=1)
    err = np.abs(near.dist.astype(np.float64) - exact)
    assert err.max() > 0  # the codes are rounded: a check that cannot tell would pass anyway
    away = exact > 0.5  # the band is relative to d: rho(d) * d is the absolute error allowed
    allowed = np.array([near._error(float(d)) * d for d in exact[away]])
    assert np.all(err[away] <= allowed)
    assert err[away].std() < allowed.min() / SIGMAS * 1.5  # the error model is not loose by far


@pytest.mark.parametrize("seeded", [False, True])
def test_int8_picks_are_the_plain_greedys_on_a_clustered_set(seeded: bool) -> None:
    x, _ = clustered(4000, seed=1)
    seeds = x[:50] if seeded else None
    pool = x[50:]
    w = np.ones(len(pool))
    plain = greedy.pick(w, budget=120, vectors=pool, seeds=seeds, diversity=1.0, accelerate=False)
    fast = greedy.pick(w, budget=120, vectors=pool, seeds=seeds, diversity=1.0, accelerate=True)
    assert fast == plain
    assert covering_radius(pool, fast) == pytest.approx(covering_radius(pool, plain))


def test_int8_picks_with_weights_and_balance_match_the_plain_greedys() -> None:
    x, member = clustered(3000, seed=2)
    weight = greedy.combine([(np.random.default_rng(3).random(len(x)), 1.0)], len(x))
    groups = [str(m % 3) for m in member]
    kw = {"budget": 60, "vectors": x, "diversity": 2.0, "groups": groups}
    plain = greedy.pick(weight, accelerate=False, **kw)
    fast = greedy.pick(weight, accelerate=True, **kw)
    assert fast == plain
    counts = np.bincount([int(groups[i]) for i in fast], minlength=3)
    assert counts.tolist() == [20, 20, 20]


def test_int8_diversity_takes_one_from_each_planted_cluster_before_a_second() -> None:
    x, member = clustered(5000, clusters=10, spread=0.03, seed=4)
    picks = greedy.pick(np.ones(len(x)), budget=10, vectors=x, diversity=1.0, accelerate=True)
    assert sorted(member[picks].tolist()) == list(range(10))
