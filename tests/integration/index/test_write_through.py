"""A payload write to many points of an embedded index, applied by the optimizer's child
(`write_payloads` -> edge_store.write_through): every value lands, the graph comes back built,
writes made meanwhile are replayed after it, a cancel writes nothing, and a signal job takes this
path when its write is large enough (`write_through_min`).

Small indexes are built with a 1 KB indexing threshold, so their optimize builds an HNSW graph
(and the engine would move every point a payload write touches out of it).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from service.config import IndexSettings, Settings
from service.errors import IndexUnavailable, InvalidQuery
from service.index import edge_store
from service.index.base import Condition, Filter, Point
from service.index.edge import EdgeIndex

DIM = 8
N = 400


def _index(path: Path, *, through_min: int = 1) -> EdgeIndex:
    settings = IndexSettings(write_through_min=through_min)
    return EdgeIndex(path, vector_name="clip", dim=DIM, settings=settings, indexing_threshold_kb=1)


def _built(path: Path, *, through_min: int = 1) -> tuple[EdgeIndex, list[str]]:
    index = _index(path, through_min=through_min)
    rng = np.random.default_rng(5)
    vectors = rng.normal(size=(N, DIM)).astype(np.float32)
    ids = [str(uuid.UUID(int=n + 1)) for n in range(N)]
    index.upsert(
        [
            Point(id=i, vector=v, payload={"source": "s", "key": f"k{n}"})
            for n, (i, v) in enumerate(zip(ids, vectors, strict=True))
        ]
    )
    index.optimize()
    assert index.stats()["indexed_vectors"] == N  # the graph holds every point before the write
    return index, ids


@pytest.fixture
def built(tmp_path: Path) -> Iterator[tuple[EdgeIndex, list[str]]]:
    index, ids = _built(tmp_path / "index")
    yield index, ids
    index.close()


@pytest.fixture
def quick_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The write-through asks its caller every 10 ms (not 2 s): these small writes take ~1 s."""
    monkeypatch.setattr(edge_store, "CHECK_S", 0.01)


def _values(index: EdgeIndex, ids: list[str]) -> list[Any]:
    return [r.payload.get("signals", {}).get("u") for r in index.retrieve(ids, fields=["signals"])]


def test_every_value_lands_with_the_graph_built_and_survives_a_reopen(tmp_path: Path) -> None:
    index, ids = _built(tmp_path / "index")
    gone = str(uuid.UUID(int=10**6))  # never written: skipped, not an error
    items = [(pid, {"u": n / N}) for n, pid in enumerate(ids)] + [(gone, {"u": 9.0})]
    calls: list[int] = []
    index.write_payloads(items, key="signals", progress=calls.append)
    assert _values(index, ids) == [n / N for n in range(N)]
    assert calls[-1] == len(items)
    # The child moved the points and rebuilt the graph: nothing left unindexed, nothing to optimize.
    assert index.stats()["indexed_vectors"] == N and not index._store.dirty
    assert index.count(Filter(must=[Condition(key="signals.u", range={"gte": 0.5})])) == N // 2
    assert not (tmp_path / "index" / edge_store.WRITES).exists()
    assert len(list((tmp_path / "index").glob("shard-*"))) == 1
    index.close()
    reopened = _index(tmp_path / "index")
    try:
        assert _values(reopened, ids[:3]) == [0.0, 1 / N, 2 / N]
    finally:
        reopened.close()


def test_a_value_that_is_not_json_is_refused_and_nothing_is_written(
    built: tuple[EdgeIndex, list[str]], tmp_path: Path
) -> None:
    index, ids = built
    with pytest.raises(InvalidQuery, match="no NaN"):
        index.write_payloads([(ids[0], {"u": 0.1}), (ids[1], {"u": float("nan")})], key="signals")
    assert _values(index, ids[:2]) == [None, None]
    assert not (tmp_path / "index" / edge_store.WRITES).exists()


def test_a_write_below_the_threshold_goes_in_place(tmp_path: Path) -> None:
    index, ids = _built(tmp_path / "index", through_min=N + 1)
    try:
        calls: list[int] = []
        index.write_payloads([(pid, {"u": 1.0}) for pid in ids], key="signals", progress=calls.append)
        assert _values(index, ids) == [1.0] * N
        assert calls == [N]  # one batch of WRITE_RUN (2,000)
        # In place: the engine moved the written points out of their graph segment; the next
        # optimize has that to rebuild (after a write-through it has nothing: the test above).
        assert index._store.dirty
    finally:
        index.close()


@pytest.mark.usefixtures("quick_checks")
def test_writes_made_while_the_child_works_are_replayed_after_its_values(
    built: tuple[EdgeIndex, list[str]],
) -> None:
    index, ids = built
    done: list[int] = []

    def progress(n: int) -> None:
        if not done:  # the first call: the copy is taken, the child is working on it
            index.set_payloads([(ids[0], {"u": 99.0}), (ids[1], {"other": "x"})], key="signals")
            assert index._store._journal  # journaled for the copy
        done.append(n)

    index.write_payloads([(pid, {"u": 0.5}) for pid in ids], key="signals", progress=progress)
    assert len(done) >= 2
    got = {r.id: r.payload["signals"] for r in index.retrieve(ids[:3], fields=["signals"])}
    assert got[ids[0]] == {"u": 99.0}  # the later write wins
    assert got[ids[1]] == {"u": 0.5, "other": "x"}
    assert got[ids[2]] == {"u": 0.5}


@pytest.mark.usefixtures("quick_checks")
def test_a_cancel_while_the_child_works_stops_it_and_writes_nothing(
    built: tuple[EdgeIndex, list[str]], tmp_path: Path
) -> None:
    index, ids = built

    def cancel(n: int) -> None:
        raise RuntimeError("cancelled")

    with pytest.raises(RuntimeError, match="cancelled"):
        index.write_payloads([(pid, {"u": 0.5}) for pid in ids], key="signals", progress=cancel)
    assert _values(index, ids) == [None] * N
    assert index._store._child is None and index._store._journal is None
    assert len(list((tmp_path / "index").glob("shard-*"))) == 1
    assert not (tmp_path / "index" / edge_store.WRITES).exists()
    assert len(index.neighbours([np.ones(DIM, dtype=np.float32)], k=3)[0]) == 3  # still answers
    index.write_payloads([(pid, {"u": 0.25}) for pid in ids], key="signals")  # and writes again
    assert _values(index, ids[:2]) == [0.25, 0.25]


def test_a_signal_job_writes_its_scores_through_the_child(tmp_path: Path) -> None:
    from service.catalog.catalog import Catalog
    from service.signals.plan import run_now
    from service.signals.schemas import SignalRequest
    from service.synth import write_dataset
    from tests.fakes import FakeEncoder

    write_dataset(tmp_path / "shapes", 60, seed=3, size=48)
    settings = Settings(home=tmp_path / "home", index=IndexSettings(write_through_min=10), _env_file=None)  # type: ignore[call-arg]
    catalog = Catalog(settings, encoder=FakeEncoder())
    try:
        # The catalog's own index, reopened with a threshold that lets 60 small vectors be indexed.
        name, path = catalog.index.vector_name, catalog.index.path
        catalog.index.close()
        catalog.index = EdgeIndex(
            path, vector_name=name, dim=FakeEncoder.dim, settings=settings.index, indexing_threshold_kb=1
        )
        catalog.add_source("shapes", "local", {"path": str(tmp_path / "shapes")})
        assert catalog.sync("shapes").state == "succeeded"
        catalog.index.optimize()
        assert catalog.index.stats()["indexed_vectors"] == 60
        row = run_now(catalog, "uniqueness", SignalRequest.model_validate({}))
        assert row.state == "succeeded", row.detail
        assert row.counts["scored"] == 60
        scored = Filter(must=[Condition(key="signals.uniqueness", exists=True)])
        assert catalog.index.count(scored) == 60
        assert not catalog.index._store.dirty  # written through: no point left for an optimize
    finally:
        catalog.close()


@pytest.mark.usefixtures("quick_checks")
def test_a_close_while_the_child_works_is_an_error_not_a_silent_success(tmp_path: Path) -> None:
    index, ids = _built(tmp_path / "index")
    closed: list[int] = []

    def close(n: int) -> None:
        if not closed:
            closed.append(n)
            index.close()  # as a server shutting down does: it kills the child

    with pytest.raises(IndexUnavailable, match="closed before the payload writes finished"):
        index.write_payloads([(pid, {"u": 0.5}) for pid in ids], key="signals", progress=close)
    reopened = _index(tmp_path / "index")
    try:
        assert _values(reopened, ids[:3]) == [None] * 3
        assert len(list((tmp_path / "index").glob("shard-*"))) == 1
    finally:
        reopened.close()
