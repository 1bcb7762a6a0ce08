"""Batched neighbours and ordered scrolls on every backend, each checked against numpy and sorted().

The embedded engine, qdrant-client's local mode and a Qdrant server (skipped, with its
reason, without a Docker engine) answer the same batch and the same ordering.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from service.index.base import VectorIndex
from service.index.filters import parse_filter
from tests.integration.index.test_congruence import (  # noqa: F401  (fixtures)
    IDS,
    PAYLOADS,
    VECTORS,
    index,
    qdrant_url,
)


def _reference_knn(rows: np.ndarray, k: int, allowed: list[int]) -> list[list[str]]:
    sims = VECTORS[rows] @ VECTORS[allowed].T
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return [[IDS[allowed[j]] for j in line] for line in order]


@pytest.mark.parametrize("flt", [None, {"source": "nfs"}])
def test_neighbours_in_one_batch_equal_brute_force(
    index: VectorIndex,  # noqa: F811
    flt: dict[str, Any] | None,
) -> None:
    parsed = parse_filter(flt)
    allowed = [i for i, p in enumerate(PAYLOADS) if flt is None or p["source"] == "nfs"]
    rows = np.array(allowed[:30])
    got = index.neighbours([VECTORS[i] for i in rows], k=6, filter=parsed)
    expected = _reference_knn(rows, 6, allowed)
    assert len(got) == len(rows)
    for hits, want, row in zip(got, expected, rows, strict=True):
        assert hits[0].id == IDS[row]  # a point in the set is its own nearest
        # Same neighbours (ties at the last place may swap: compare the first five).
        assert [h.id for h in hits][:5] == want[:5]
        sims = VECTORS[[IDS.index(h.id) for h in hits]] @ VECTORS[row]
        np.testing.assert_allclose([h.score for h in hits], sims, atol=1e-4)
        assert hits[0].payload == {}
    assert index.neighbours([], k=3) == []


def _value(p: dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        p = p[part]
    return p


@pytest.mark.parametrize(("key", "descending"), [("size_bytes", True), ("meta.score", False)])
def test_scroll_ordered_pages_through_ties_in_order(
    index: VectorIndex,  # noqa: F811
    key: str,
    descending: bool,
) -> None:
    flt = parse_filter({"source": "s3-prod"})
    wanted = sorted((_value(p, key) for p in PAYLOADS if p["source"] == "s3-prod"), reverse=descending)
    seen: list[Any] = []
    ids: list[str] = []
    start: Any = None
    tied: list[str] = []
    while True:
        page = index.scroll_ordered(
            key=key, descending=descending, filter=flt, limit=7, start_from=start, exclude_ids=tied
        )
        if not page:
            break
        for rec in page:
            value = _value(rec.payload, key)
            tied = [*tied, rec.id] if value == start else [rec.id]
            start = value
            seen.append(value)
            ids.append(rec.id)
    assert seen == wanted
    assert len(set(ids)) == len(ids)


def test_refine_replaces_a_missed_answer_and_keeps_good_ones(index: VectorIndex) -> None:  # noqa: F811
    """The second pass of the neighbour graph (service/signals/neighbours.refine) on a real index:
    rows whose first answer was planted far away get the true k nearest; a right answer stays."""
    from service.index.spaces import resolve_space
    from service.signals.neighbours import refine, with_vector

    space = resolve_space(index, None)
    k, rows = 3, list(range(40))
    allowed = list(range(len(IDS)))
    truth = _reference_knn(np.array(rows), k + 1, allowed)
    ids = [IDS[r] for r in rows]
    neighbour_ids = [line[1 : k + 1] for line in truth]  # the right answer, own id dropped
    scores = [
        np.asarray(VECTORS[[IDS.index(i) for i in line]] @ VECTORS[r], dtype=np.float32)
        for line, r in zip(neighbour_ids, rows, strict=True)
    ]
    far = list(np.argsort(VECTORS @ VECTORS[0])[:k])  # the points least like row 0: a "miss"
    missed = {0, 7}
    for r in missed:
        neighbour_ids[r] = [IDS[j] for j in far]
        scores[r] = np.asarray(VECTORS[far] @ VECTORS[r], dtype=np.float32)
    asked = refine(
        index,
        space=space,
        filter=with_vector(None, space),
        k=k,
        ids=ids,
        neighbour_ids=neighbour_ids,
        scores=scores,
    )
    assert asked >= len(missed)
    for r in rows:
        assert neighbour_ids[r] == truth[r][1 : k + 1], r
        np.testing.assert_allclose(
            scores[r], VECTORS[[IDS.index(i) for i in truth[r][1 : k + 1]]] @ VECTORS[r], atol=1e-4
        )
    # A wider search answers the same on a small index.
    wide = index.neighbours([VECTORS[i] for i in rows], k=k + 1, ef=512)
    assert [[h.id for h in hits][:2] for hits in wide] == [line[:2] for line in truth]
