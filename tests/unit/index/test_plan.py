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
    recommend_pool,
)

SETTINGS = IndexSettings(exact_below=20_000, hnsw_ef=128)
TOTAL = 1_000_000
SITE = Condition(key="meta.site", eq="a")
LABEL = Condition(key="meta.label", eq="b")
OK = Condition(key="status", eq="ok")
INDEXED = {"meta.site", "meta.label", "status"}


def plan(flt: Filter | None, counts: dict[str, int], *, want: int = 10, total: int = TOTAL) -> SearchPlan:
    """Plan with `counts`: estimated matches per condition key, and "all" for the whole filter."""

    def estimate(part: Filter) -> int:
        keys = list(filter_keys(part))
        return counts["all"] if part == flt else counts[keys[0]] if len(keys) == 1 else total

    return plan_search(flt, estimate=estimate, indexed=INDEXED, total=total, want=want, settings=SETTINGS)


def test_no_filter_searches_the_graph() -> None:
    assert plan(None, {}) == SearchPlan(hnsw_ef=128)
    assert plan(None, {}, want=500) == SearchPlan(hnsw_ef=500)


def test_a_selective_filter_scans_exactly() -> None:
    assert plan(Filter(must=[SITE, LABEL]), {"all": 19_999}) == SearchPlan(exact=True)
    small = plan(Filter(must=[SITE]), {"all": 5_000}, total=10_000)
    assert small == SearchPlan(exact=True)


def test_two_selective_parts_use_the_graph_with_acorn() -> None:
    flt = Filter(must=[SITE, LABEL])
    counts = {"all": 30_000, "meta.site": 100_000, "meta.label": 300_000}
    assert plan(flt, counts) == SearchPlan(hnsw_ef=256, acorn=True)


def test_one_selective_part_relies_on_the_payload_links() -> None:
    # A catalog search: the user's filter plus status = ok, which selects (almost) nothing.
    flt = Filter(must=[Filter(must=[SITE]), OK])
    counts = {"all": 30_000, "meta.site": 30_000, "status": 999_000}
    assert plan(flt, counts) == SearchPlan(hnsw_ef=256)


def test_a_broad_filter_searches_the_graph_plainly() -> None:
    assert plan(Filter(must=[SITE, LABEL]), {"all": 400_000}) == SearchPlan(hnsw_ef=128)


def test_an_unindexed_field_plans_from_the_collection_size() -> None:
    flt = Filter(must=[Condition(key="meta.camera", eq="x")])
    assert plan(flt, {}, total=19_000) == SearchPlan(exact=True)
    assert plan(flt, {}, total=50_000) == SearchPlan(hnsw_ef=256, acorn=True)


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


def test_each_recommend_positive_brings_a_pool_of_candidates() -> None:
    assert recommend_pool(10) == 64
    assert recommend_pool(100) == 400


def test_server_search_params_rescore_the_int8_copy_unless_quantization_is_off():
    from service.index.plan import SearchPlan
    from service.index.server_client import quantization_config, search_params

    on = search_params(SearchPlan(hnsw_ef=128), IndexSettings(oversampling=3.0))
    assert on.quantization is not None and on.quantization.rescore and on.quantization.oversampling == 3.0
    assert quantization_config(IndexSettings()) is not None
    off = IndexSettings(quantization="none")
    assert search_params(SearchPlan(exact=True), off).quantization is None
    assert quantization_config(off) is None
