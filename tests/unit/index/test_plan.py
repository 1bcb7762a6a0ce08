"""Search plans, payload paths and recommend score scales shared by both backends."""

from __future__ import annotations

import pytest

from service.config import IndexSettings
from service.index.base import Condition, Filter
from service.index.plan import (
    SearchPlan,
    best_score_threshold,
    cosine_from_best_score,
    filter_keys,
    loupe_key,
    plan_search,
    qdrant_key,
)

SETTINGS = IndexSettings(exact_below=20_000, hnsw_ef=128)


def plan(*, filtered: bool = True, estimate: int | None, total: int = 1_000_000, want: int = 10):
    return plan_search(
        filtered=filtered, estimate=estimate, total=total, want=want, settings=SETTINGS
    )


def test_no_filter_searches_the_graph() -> None:
    assert plan(filtered=False, estimate=None) == SearchPlan(hnsw_ef=128)
    assert plan(filtered=False, estimate=None, want=500) == SearchPlan(hnsw_ef=500)


def test_a_selective_filter_scans_exactly() -> None:
    assert plan(estimate=19_999) == SearchPlan(exact=True)
    assert plan(estimate=5_000_000, total=10_000) == SearchPlan(exact=True)  # small collection


def test_a_broad_filter_uses_the_graph_with_acorn_while_it_is_selective() -> None:
    assert plan(estimate=20_000) == SearchPlan(hnsw_ef=256, acorn=True)
    assert plan(estimate=399_999) == SearchPlan(hnsw_ef=256, acorn=True)
    assert plan(estimate=400_000) == SearchPlan(hnsw_ef=128)


def test_an_unestimable_filter_plans_from_the_collection_size() -> None:
    assert plan(estimate=None, total=19_000) == SearchPlan(exact=True)
    assert plan(estimate=None, total=50_000) == SearchPlan(hnsw_ef=256, acorn=True)


def test_filter_keys_walks_the_tree() -> None:
    flt = Filter(
        must=[Condition(key="a", eq=1), Filter(should=[Condition(key="b", eq=2)])],
        must_not=[Condition(key="c", exists=True)],
    )
    assert list(filter_keys(flt)) == ["a", "b", "c"]
    assert list(filter_keys(None)) == []


@pytest.mark.parametrize(
    ("loupe", "qdrant"),
    [
        ("exports.target", "exports[].target"),
        ("exports", "exports"),
        ("source", "source"),
        ("meta.camera.make", "meta.camera.make"),
    ],
)
def test_array_roots_are_walked_with_brackets(loupe: str, qdrant: str) -> None:
    assert qdrant_key(loupe) == qdrant
    assert loupe_key(qdrant) == loupe


@pytest.mark.parametrize("cosine", [-0.99, -0.5, 0.0, 0.3, 0.91, 1.0])
def test_best_score_maps_back_to_cosine(cosine: float) -> None:
    engine = 0.5 * (cosine / (1 + abs(cosine)) + 1)  # Qdrant's scaled fast sigmoid
    assert cosine_from_best_score(engine) == pytest.approx(cosine, abs=1e-5)
    assert cosine_from_best_score(-engine) == pytest.approx(-2.0 - cosine, abs=1e-5)
    assert best_score_threshold(cosine) == pytest.approx(engine)
    assert best_score_threshold(-2.0 - cosine) == pytest.approx(-engine)
