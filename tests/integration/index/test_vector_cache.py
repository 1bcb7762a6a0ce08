"""`all_vectors` and the embedded index's vector cache: the same vectors as a scroll on every
backend, the same picks as reading the pool's vectors by scrolling, dropped by every vector
write and kept by payload writes, and never used stale after a reopen."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from service.config import IndexSettings
from service.index import vector_cache
from service.index.base import Distance, Point, VectorIndex, VectorSpec
from service.index.edge import EdgeIndex
from service.index.filters import parse_filter
from service.index.vector_cache import Page
from service.selections import greedy, pool
from service.selections.plan import Plan, Weight
from tests.integration.index import test_congruence as base
from tests.integration.index.test_congruence import DIM, IDS, POINTS, VECTORS

# The congruence suite's fixtures: an empty index of each backend, and the Qdrant server.
fresh, qdrant_url = base.fresh, base.qdrant_url

SPEC = VectorSpec("clip", DIM, Distance.cosine)
RNG = np.random.default_rng(5)


def _open(where: Path) -> EdgeIndex:
    return EdgeIndex(where, vector_name="clip", dim=DIM, settings=IndexSettings())


def _cache_files(index: EdgeIndex) -> list[str]:
    folder = index.path / "vectors"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def _scrolled(index: VectorIndex, space: str) -> dict[str, np.ndarray]:
    """Every point's vector in `space`, read the slow way (a scroll with vectors)."""
    out: dict[str, np.ndarray] = {}
    cursor = None
    while True:
        recs, cursor = index.scroll(limit=64, cursor=cursor, fields=[], with_vectors=[space])
        out.update({r.id: r.vectors[space] for r in recs if space in r.vectors})
        if cursor is None:
            return out


def _assert_matches_scroll(index: VectorIndex, space: str) -> None:
    ids, matrix = index.all_vectors(space)
    scrolled = _scrolled(index, space)
    assert ids == list(scrolled)  # the scroll's order, the same points
    np.testing.assert_array_equal(matrix, np.stack(list(scrolled.values())) if ids else matrix)


def test_all_vectors_is_the_scroll_on_every_backend(fresh: VectorIndex) -> None:
    fresh.upsert(POINTS[:120])
    fresh.add_vector(VectorSpec("mine", 5, Distance.euclid))
    held = [(IDS[i], RNG.normal(size=5).astype(np.float32)) for i in range(0, 120, 3)]
    fresh.update_vectors("mine", held)
    _assert_matches_scroll(fresh, "clip")
    ids, matrix = fresh.all_vectors("mine")
    # Points without a vector in the space are not in it.
    assert sorted(ids) == sorted(i for i, _ in held) and matrix.shape == (40, 5)
    _assert_matches_scroll(fresh, "mine")
    fresh.delete(IDS[:10])
    _assert_matches_scroll(fresh, "clip")
    assert len(fresh.all_vectors("clip")[0]) == 110


def _reference_pool(index: VectorIndex, plan: Plan) -> tuple[list[str], np.ndarray, np.ndarray | None]:
    """The pool as read before the cache: its vectors scrolled with it, then prepared."""
    space = plan.space.name

    def scroll(flt: dict[str, object] | None) -> list[tuple[str, np.ndarray]]:
        out: list[tuple[str, np.ndarray]] = []
        cursor = None
        while True:
            recs, cursor = index.scroll(
                filter=parse_filter(flt), limit=50, cursor=cursor, fields=[], with_vectors=[space]
            )
            out.extend((r.id, r.vectors[space]) for r in recs if space in r.vectors)
            if cursor is None:
                return out

    rows = scroll(plan.pool)
    seeds = scroll(plan.seeds) if plan.seeds is not None else []
    seed_matrix = pool.prepare(np.stack([v for _, v in seeds]), plan.space.distance) if seeds else None
    return (
        [i for i, _ in rows],
        pool.prepare(np.stack([v for _, v in rows]), plan.space.distance),
        seed_matrix,
    )


def _picks(ids: list[str], vectors: np.ndarray, seeds: np.ndarray | None, budget: int) -> list[str]:
    weight = np.ones(len(ids))
    chosen = greedy.pick(weight, budget=budget, vectors=vectors, seeds=seeds, diversity=1.0, accelerate=False)
    return [ids[i] for i in chosen]


@pytest.mark.parametrize(
    ("pool_filter", "seeds"),
    [
        ({}, None),  # the whole index: the cache's matrix itself
        ({"meta.label": {"in": ["bike", "car", "dog"]}}, None),  # a subset: rows gathered
        ({"not": {"meta.label": "bike"}}, {"meta.label": "bike"}),  # with seeds
    ],
)
def test_picks_with_the_cache_equal_picks_without_it(
    tmp_path: Path, pool_filter: dict[str, object], seeds: dict[str, object] | None
) -> None:
    index = _open(tmp_path / "index")
    try:
        index.ensure_field("meta.label", base.FieldType.keyword)
        index.upsert(POINTS)
        plan = Plan(name="s", budget=25, pool=pool_filter, seeds=seeds, space=SPEC, diversity=1.0)
        ref_ids, ref_vectors, ref_seeds = _reference_pool(index, plan)
        expected = _picks(ref_ids, ref_vectors, ref_seeds, plan.budget)
        for _ in ("cold", "warm"):  # built by this read, then mapped from its file
            found = pool.read(index, plan)
            assert found.ids == ref_ids
            assert found.vectors is not None
            np.testing.assert_allclose(found.vectors, ref_vectors, atol=1e-6)
            assert _picks(found.ids, found.vectors, found.seeds, plan.budget) == expected
            assert found.seed_count == (0 if ref_seeds is None else len(ref_seeds))
        assert _cache_files(index)
    finally:
        index.close()


def test_a_pool_of_all_but_a_few_masks_their_rows_and_picks_as_the_scrolled_pool(tmp_path: Path) -> None:
    """The whole index but the excluded (earlier selections, exports): the excluded are read by
    their filter and masked in the cache's matrix, not copied out of it; the picks, candidates,
    seeds and the count of points without a vector are those of the scrolled pool."""
    index = _open(tmp_path / "index")
    try:
        index.ensure_field("meta.label", base.FieldType.keyword)
        index.upsert(POINTS)
        without = "00000000-0000-4000-8000-000000000001"  # no vector: counted, never chosen
        index.upsert([Point(id=without, vector=None, payload={"meta": {}})])
        excluded = {"meta.label": "bike"}
        scrolled = Plan(
            name="s", budget=25, pool={"not": excluded}, seeds=excluded, space=SPEC, diversity=1.0
        )
        ref_ids, ref_vectors, ref_seeds = _reference_pool(index, scrolled)
        assert ref_seeds is not None and len(ref_seeds)
        expected = _picks(ref_ids, ref_vectors, ref_seeds, 25)
        masked = Plan(
            name="s",
            budget=25,
            pool={"not": excluded},
            seeds=excluded,
            space=SPEC,
            diversity=1.0,
            base={},
            excluded=excluded,
        )
        found = pool.read(index, masked)
        assert found.candidates is not None and found.size == len(ref_ids)
        ids, matrix = index.all_vectors("clip")
        assert found.ids == ids and found.vectors is matrix  # the cache's matrix, no copy
        assert [i for i, c in zip(found.ids, found.candidates, strict=True) if c] == ref_ids
        assert found.no_vector == 1 and found.seed_count == len(ref_seeds)
        np.testing.assert_allclose(found.seeds, ref_seeds, atol=1e-6)
        weight = np.ones(len(found.ids))
        chosen = greedy.pick(
            weight,
            budget=25,
            vectors=found.vectors,
            seeds=found.seeds,
            diversity=1.0,
            accelerate=False,
            candidates=found.candidates,
        )
        assert [found.ids[i] for i in chosen] == expected
        # The excluded are never chosen, even when the budget exceeds the candidates.
        every = greedy.pick(weight, budget=len(found.ids), candidates=found.candidates)
        assert sorted(found.ids[i] for i in every) == sorted(ref_ids)
    finally:
        index.close()


def test_a_pool_with_weights_reads_their_values_beside_the_cached_vectors(tmp_path: Path) -> None:
    index = _open(tmp_path / "index")
    try:
        index.upsert(POINTS)
        # A point without a vector in the space cannot be placed: counted, not chosen.
        index.upsert([Point(id="00000000-0000-4000-8000-000000000001", vector=None, payload={"meta": {}})])
        weights = [Weight(path="meta.score", strength=1.0)]
        plan = Plan(name="s", budget=10, pool={}, seeds=None, space=SPEC, diversity=1.0, weights=weights)
        found = pool.read(index, plan)
        assert sorted(found.ids) == sorted(IDS) and found.no_vector == 1
        by_id = {p.id: p.payload["meta"]["score"] for p in POINTS}
        np.testing.assert_array_equal(found.values[0], [by_id[i] for i in found.ids])
        assert found.vectors is not None
        row = {i: n for n, i in enumerate(found.ids)}
        np.testing.assert_allclose(found.vectors[row[IDS[7]]], VECTORS[7], atol=1e-6)
    finally:
        index.close()


def test_vector_writes_drop_the_cache_and_payload_writes_keep_it(tmp_path: Path) -> None:
    index = _open(tmp_path / "index")
    try:
        index.upsert(POINTS)
        index.add_vector(VectorSpec("mine", 4, Distance.dot))
        index.update_vectors("mine", [(IDS[0], np.ones(4, dtype=np.float32))])
        ids, matrix = index.all_vectors("clip")
        index.all_vectors("mine")
        files = _cache_files(index)
        assert len(files) == 6  # two spaces: manifest, matrix, ids each
        index.set_payloads([(IDS[1], {"signals": {"x": 1.0}})])
        index.set_payload(IDS[:3], {"flag": True})
        index.delete_keys(["flag"], ids=IDS[:3])
        assert _cache_files(index) == files
        again_ids, again = index.all_vectors("clip")
        assert again_ids is ids and again is matrix  # held in memory, not read again

        moved = -VECTORS[5]
        index.upsert([Point(id=IDS[5], vector=moved, payload=POINTS[5].payload)])
        assert _cache_files(index) == []  # dropped before the write reached the engine
        ids, matrix = index.all_vectors("clip")
        np.testing.assert_allclose(matrix[ids.index(IDS[5])], moved, atol=1e-6)

        index.delete([IDS[6]])
        assert IDS[6] not in index.all_vectors("clip")[0]

        index.update_vectors("mine", [(IDS[2], np.full(4, 2.0, dtype=np.float32))])
        mine_ids, mine = index.all_vectors("mine")
        assert sorted(mine_ids) == sorted([IDS[0], IDS[2]])
        np.testing.assert_array_equal(mine[mine_ids.index(IDS[2])], np.full(4, 2.0))

        index.delete_vectors("mine", [IDS[0]])
        assert index.all_vectors("mine")[0] == [IDS[2]]
        assert _cache_files(index)  # saved again
        _assert_matches_scroll(index, "clip")
    finally:
        index.close()


def test_a_cache_from_before_a_vector_write_is_never_used_after_a_reopen(tmp_path: Path) -> None:
    where = tmp_path / "index"
    index = _open(where)
    index.upsert(POINTS)
    index.all_vectors("clip")
    index.close()

    index = _open(where)  # the saved cache is current: it is mapped, not rebuilt
    ids, matrix = index.all_vectors("clip")
    assert isinstance(matrix, np.memmap) and len(ids) == len(POINTS)
    files = _cache_files(index)
    stale = tmp_path / "stale"
    shutil.copytree(where / "vectors", stale)
    moved = -VECTORS[9]
    index.upsert([Point(id=IDS[9], vector=moved, payload=POINTS[9].payload)])
    assert _cache_files(index) == []  # a crash from here on leaves no cache to trust
    index.close()

    index = _open(where)
    try:
        ids, matrix = index.all_vectors("clip")
        np.testing.assert_allclose(matrix[ids.index(IDS[9])], moved, atol=1e-6)
        index.delete([IDS[10]])
        index.close()
        # A stale cache put back by hand (a program that does not know of it wrote meanwhile):
        # its count no longer matches the space's, so it is rebuilt, not used.
        shutil.rmtree(where / "vectors")
        shutil.copytree(stale, where / "vectors")
        index = _open(where)
        ids, matrix = index.all_vectors("clip")
        assert IDS[10] not in ids and len(ids) == len(POINTS) - 1
        assert _cache_files(index) != files
    finally:
        index.close()


# -- warmed by the optimizer ---------------------------------------------------


def _indexing(where: Path) -> EdgeIndex:
    """An index whose optimize builds the graph even for these few points (and so swaps)."""
    return EdgeIndex(where, vector_name="clip", dim=DIM, settings=IndexSettings(), indexing_threshold_kb=1)


def _count_scrolls(index: EdgeIndex, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The spaces the cache was built for by reading the engine (the real reader, counted)."""
    calls: list[str] = []
    real = index._vector_pages

    def counted(space: str) -> Iterator[Page]:
        calls.append(space)
        return real(space)

    monkeypatch.setattr(index, "_vector_pages", counted)
    return calls


def _staged(index: EdgeIndex) -> list[str]:
    return sorted(p.name for p in index.path.glob("*.vectors"))


def test_an_optimize_leaves_the_cache_of_every_space_warm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = _indexing(tmp_path / "index")
    try:
        index.upsert(POINTS)
        index.add_vector(VectorSpec("mine", 4, Distance.dot))
        held = [(IDS[i], RNG.normal(size=4).astype(np.float32)) for i in range(0, 60, 2)]
        index.update_vectors("mine", held)
        before = (index.path / "CURRENT").read_text()
        index.optimize()
        assert (index.path / "CURRENT").read_text() != before  # the copy was swapped in
        assert index._cache.on_disk("clip") and index._cache.on_disk("mine")
        assert _staged(index) == []
        scrolls = _count_scrolls(index, monkeypatch)
        ids, matrix = index.all_vectors("clip")
        mine_ids, mine = index.all_vectors("mine")
        assert scrolls == [] and isinstance(matrix, np.memmap)  # mapped, not read from the engine
        assert sorted(mine_ids) == sorted(i for i, _ in held)
        np.testing.assert_array_equal(mine[mine_ids.index(held[3][0])], held[3][1])
        _assert_matches_scroll(index, "clip")
        _assert_matches_scroll(index, "mine")
        assert scrolls == []
    finally:
        index.close()


def test_an_optimize_with_nothing_to_index_warms_it_and_a_cached_space_is_not_written_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = _open(tmp_path / "index")  # the default threshold: these points stay unindexed
    try:
        index.upsert(POINTS)
        index.optimize()
        assert sorted(p.name for p in index.path.glob("shard-*")) == ["shard-1"]  # no swap
        assert index._cache.on_disk("clip")
        files = _cache_files(index)
        index.set_payloads([(IDS[1], {"x": 1.0})], key="signals")  # dirty, vectors unchanged
        index.optimize()
        assert _cache_files(index) == files  # the child left the cached space alone
        scrolls = _count_scrolls(index, monkeypatch)
        _assert_matches_scroll(index, "clip")
        assert scrolls == []
    finally:
        index.close()


@pytest.mark.parametrize("meanwhile", ["vector write", "payload write"])
def test_a_write_while_the_optimizer_runs_decides_whether_its_cache_is_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, meanwhile: str
) -> None:
    index = _indexing(tmp_path / "index")
    moved = -VECTORS[5]
    try:
        index.upsert(POINTS)
        store = index._store
        run = store._run_optimizer

        def run_then_write(work: Path, spaces: dict[str, int], **kw: Any) -> bool:
            changed = run(work, spaces, **kw)  # the child is done: the copy's cache is staged
            assert list(work.with_name(f"{work.name}.vectors").glob("*.json"))
            if meanwhile == "vector write":
                index.upsert([Point(id=IDS[5], vector=moved, payload=POINTS[5].payload)])
            else:
                index.set_payloads([(IDS[5], {"x": 2.0})], key="signals")
            assert store._journal is not None and len(store._journal) == 1  # for the copy
            return changed

        monkeypatch.setattr(store, "_run_optimizer", run_then_write)
        before = (index.path / "CURRENT").read_text()
        index.optimize()
        assert (index.path / "CURRENT").read_text() != before
        assert _staged(index) == []
        installed = meanwhile == "payload write"
        assert index._cache.on_disk("clip") is installed
        scrolls = _count_scrolls(index, monkeypatch)
        ids, matrix = index.all_vectors("clip")
        assert scrolls == ([] if installed else ["clip"])
        expected = VECTORS[5] if installed else moved
        np.testing.assert_allclose(matrix[ids.index(IDS[5])], expected, atol=1e-6)
        _assert_matches_scroll(index, "clip")
        assert index.retrieve([IDS[5]])[0].payload.get("signals") == (
            {"x": 2.0} if installed else POINTS[5].payload.get("signals")
        )
    finally:
        index.close()


def test_a_staged_cache_left_by_a_crash_is_removed_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    where = tmp_path / "index"
    index = _open(where)
    index.upsert(POINTS)
    index.close()
    # A crash after the child staged the cache of a copy whose vectors the live shard no
    # longer has: complete files and a manifest of the right count.
    staged = where / "shard-2.vectors"
    rows = [[(i, list(-v)) for i, v in zip(IDS, VECTORS, strict=True)]]
    assert vector_cache.stage(staged, "clip", dim=DIM, count=len(IDS), pages=rows)
    (where / "CURRENT").unlink()  # one shard besides the staged files: still unambiguous
    index = _open(where)
    try:
        assert not staged.exists()
        scrolls = _count_scrolls(index, monkeypatch)
        _assert_matches_scroll(index, "clip")
        assert scrolls == ["clip"]  # built from the engine, the staged files never read
    finally:
        index.close()
