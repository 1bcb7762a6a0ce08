"""VectorCache on its own: a build that a vector write overlaps is returned but never kept."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from service.index.vector_cache import Page, VectorCache, stage

DIM = 3


def _rows(n: int, start: int = 0) -> list[tuple[str, list[float]]]:
    return [(f"id-{i}", [float(i), 0.0, 1.0]) for i in range(start, start + n)]


def test_a_build_is_kept_and_then_held(tmp_path: Path) -> None:
    cache = VectorCache(tmp_path / "vectors")
    ids, matrix = cache.get("s", dim=DIM, count=lambda: 5, pages=lambda: [_rows(3), _rows(2, 3)])
    assert ids == [f"id-{i}" for i in range(5)] and matrix.shape == (5, DIM)
    assert cache.on_disk("s")
    again = cache.get("s", dim=DIM, count=lambda: 5, pages=lambda: [])  # held: pages not read
    assert again[1] is matrix
    reopened = VectorCache(tmp_path / "vectors")  # mapped from its files, pages not read
    ids2, matrix2 = reopened.get("s", dim=DIM, count=lambda: 5, pages=lambda: [])
    assert ids2 == ids
    np.testing.assert_array_equal(matrix2, matrix)


def test_a_write_during_a_build_keeps_the_build_off_disk(tmp_path: Path) -> None:
    cache = VectorCache(tmp_path / "vectors")

    def pages(grow: int) -> Iterator[Page]:
        yield _rows(2)
        with cache.writing():  # a writer adds points while the reader scrolls
            pass
        yield _rows(2 + grow, 2)

    for grow, n in ((0, 4), (2, 6), (-1, 3)):  # the count right, too low, too high
        ids, matrix = cache.get("s", dim=DIM, count=lambda: 4, pages=lambda g=grow: pages(g))
        assert ids == [f"id-{i}" for i in range(n)]
        np.testing.assert_array_equal(matrix[:, 0], np.arange(n, dtype=np.float32))
        assert not cache.on_disk("s") and list((tmp_path / "vectors").iterdir()) == []
    # With no writer the next build is kept.
    cache.get("s", dim=DIM, count=lambda: 4, pages=lambda: [_rows(4)])
    assert cache.on_disk("s")


def test_an_empty_space_has_no_files(tmp_path: Path) -> None:
    cache = VectorCache(tmp_path / "vectors")
    ids, matrix = cache.get("s", dim=DIM, count=lambda: 0, pages=lambda: [[]])
    assert ids == [] and matrix.shape == (0, DIM)
    assert not cache.on_disk("s")


def test_a_staged_cache_is_installed_only_if_no_vector_write_began_since_its_stamp(tmp_path: Path) -> None:
    cache = VectorCache(tmp_path / "vectors")
    staged = tmp_path / "shard-2.vectors"
    stamp = cache.stamp()
    assert stage(staged, "s", dim=DIM, count=4, pages=[_rows(3), _rows(1, 3)])
    with cache.writing():
        assert cache.stamp() is None  # a write in flight: a copy taken now could miss it
    assert cache.install(staged, stamp=stamp) == [] and not cache.on_disk("s")

    stamp = cache.stamp()
    assert cache.install(staged, stamp=stamp) == ["s"] and cache.on_disk("s")
    assert list(staged.glob("*.npy")) == []  # moved, not copied
    ids, matrix = cache.get("s", dim=DIM, count=lambda: 4, pages=lambda: [])  # mapped: pages unread
    assert ids == [f"id-{i}" for i in range(4)]
    np.testing.assert_array_equal(matrix[:, 0], np.arange(4, dtype=np.float32))
    with cache.writing():  # an installed cache is dropped by the next vector write like any
        pass
    assert not cache.on_disk("s") and list((tmp_path / "vectors").iterdir()) == []


def test_pages_that_miss_the_count_stage_nothing(tmp_path: Path) -> None:
    staged = tmp_path / "staged"
    assert not stage(staged, "s", dim=DIM, count=5, pages=[_rows(4)])
    assert not stage(staged, "s", dim=DIM, count=3, pages=[_rows(4)])
    assert not stage(staged, "s", dim=DIM, count=0, pages=[[]])
    assert list(staged.iterdir()) == []
    cache = VectorCache(tmp_path / "vectors")
    assert cache.install(staged, stamp=cache.stamp()) == []
