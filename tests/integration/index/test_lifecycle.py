"""Opening, locking, recovering and reaching the index: edge directories and a server URL."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from service.config import IndexSettings, Settings
from service.errors import IndexLocked, IndexUnavailable, InvalidConfig
from service.index import open_index, vector_name_for
from service.index.base import Point
from service.index.edge import EdgeIndex
from service.index.server import ServerIndex
from tests.conftest import free_port

DIM = 8


def _edge(path: Path, *, dim: int = DIM) -> EdgeIndex:
    return EdgeIndex(path, vector_name="clip", dim=dim, settings=IndexSettings())


def _points(n: int) -> list[Point]:
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(n, DIM)).astype(np.float32)
    return [Point(id=str(uuid.uuid4()), vector=v, payload={"source": "s"}) for v in vectors]


def test_per_point_writes_during_an_optimize_are_journaled_for_its_copy(tmp_path: Path) -> None:
    index = _edge(tmp_path / "index")
    try:
        points = _points(3)
        index.upsert(points)
        index._store._journal = []  # as optimize() keeps it while the copy is being built
        gone = str(uuid.uuid4())
        index.set_payloads([(points[0].id, {"a": 1}), (gone, {"a": 2}), (points[2].id, {"a": 3})], key="x")
        assert len(index._store._journal) == 2  # the missing point's write was skipped, not kept
        fresh = _edge(tmp_path / "replayed")
        try:
            fresh.upsert(points)
            with fresh._store.shard() as shard:
                for op in index._store._journal:
                    shard.update(op)
            replayed = fresh.retrieve([p.id for p in points])
            assert [r.payload.get("x") for r in replayed] == [{"a": 1}, None, {"a": 3}]
        finally:
            fresh.close()
    finally:
        index._store._journal = None
        index.close()


def test_a_second_open_in_this_process_is_refused(tmp_path: Path) -> None:
    index = _edge(tmp_path)
    try:
        with pytest.raises(IndexLocked) as info:
            _edge(tmp_path)
        assert "is open in another process" in info.value.detail
        assert "LOUPE_URL" in info.value.detail
    finally:
        index.close()
    _edge(tmp_path).close()  # closing released the lock


def test_a_second_process_is_refused_and_told_who_holds_it(tmp_path: Path) -> None:
    index = _edge(tmp_path)
    script = textwrap.dedent(f"""
        from pathlib import Path
        from service.config import IndexSettings
        from service.errors import IndexLocked
        from service.index.edge import EdgeIndex
        try:
            EdgeIndex(Path({str(tmp_path)!r}), vector_name="clip", dim={DIM},
                      settings=IndexSettings())
        except IndexLocked as exc:
            print(exc.detail)
    """)
    try:
        out = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
        ).stdout
    finally:
        index.close()
    assert f"(pid {os.getpid()})" in out


def test_data_survives_a_reopen(tmp_path: Path) -> None:
    points = _points(30)
    index = _edge(tmp_path)
    index.upsert(points)
    index.close()
    index = _edge(tmp_path)
    try:
        assert index.count() == 30
        assert index.query(positive=[points[4].vector], limit=1)[0].id == points[4].id
    finally:
        index.close()


def test_a_new_model_adds_its_vector_and_a_changed_dimension_is_refused(tmp_path: Path) -> None:
    _edge(tmp_path).close()
    other = EdgeIndex(tmp_path, vector_name="other-model", dim=4, settings=IndexSettings())
    other.close()
    with pytest.raises(InvalidConfig, match="dimension 8"):
        _edge(tmp_path, dim=16)


def test_leftovers_of_a_crashed_optimize_are_removed(tmp_path: Path) -> None:
    index = _edge(tmp_path)
    index.upsert(_points(5))
    index.close()
    (tmp_path / "shard-7" / "segments").mkdir(parents=True)  # a half-made copy
    index = _edge(tmp_path)
    index.close()
    assert sorted(p.name for p in tmp_path.glob("shard-*")) == ["shard-1"]


def test_a_lost_current_file_is_recovered_or_reported(tmp_path: Path) -> None:
    index = _edge(tmp_path)
    index.upsert(_points(5))
    index.close()
    (tmp_path / "CURRENT").unlink()
    index = _edge(tmp_path)  # a single shard directory is unambiguous
    assert index.count() == 5
    index.close()
    (tmp_path / "CURRENT").unlink()
    (tmp_path / "shard-2").mkdir()
    with pytest.raises(IndexUnavailable, match="CURRENT is missing"):
        _edge(tmp_path)
    assert (tmp_path / "shard-1").is_dir()  # nothing was deleted on a guess


def test_a_changed_quantization_setting_applies_to_an_existing_index(tmp_path: Path) -> None:
    points = _points(3000)
    plain = IndexSettings(quantization="none")
    index = EdgeIndex(tmp_path, vector_name="clip", dim=DIM, settings=plain, indexing_threshold_kb=10)
    index.upsert(points)
    index.optimize()
    before = [h.id for h in index.query(positive=[points[7].vector], limit=10)]
    index.close()
    quantized = "shard-*/segments/*/vector_storage-*/quantized.data"
    assert not list(tmp_path.glob(quantized))

    int8 = IndexSettings(quantization="int8")
    index = EdgeIndex(tmp_path, vector_name="clip", dim=DIM, settings=int8, indexing_threshold_kb=10)
    try:
        assert index.count() == 3000
        assert index.stats()["reconfigured"] == 1  # the service optimizes at start-up (catalog.py)
        index.optimize()
        assert index.stats()["reconfigured"] == 0
        assert list(tmp_path.glob(quantized))
        after = [h.id for h in index.query(positive=[points[7].vector], limit=10)]
        assert after[0] == points[7].id and len(set(after) & set(before)) >= 9
    finally:
        index.close()


def test_optimize_without_new_data_does_nothing(tmp_path: Path) -> None:
    index = _edge(tmp_path)
    try:
        index.upsert(_points(10))
        index.optimize()  # small: nothing to index, the copy is dropped
        index.optimize()
        assert sorted(p.name for p in tmp_path.glob("shard-*")) == ["shard-1"]
        assert index.count() == 10
    finally:
        index.close()


def test_an_unreachable_server_is_unavailable_quickly() -> None:
    port = free_port()
    started = time.monotonic()
    with pytest.raises(IndexUnavailable) as info:
        ServerIndex(
            f"http://127.0.0.1:{port}",
            api_key=None,
            collection="assets",
            vector_name="clip",
            dim=DIM,
            settings=IndexSettings(timeout_s=1, retries=1),
        )
    assert time.monotonic() - started < 5
    assert f"cannot reach Qdrant at http://127.0.0.1:{port}" in info.value.detail


def test_open_index_picks_the_backend(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, _env_file=None)  # type: ignore[call-arg]
    index = open_index(settings, vector_name="clip", dim=DIM)
    try:
        assert isinstance(index, EdgeIndex) and index.path == settings.index_path
    finally:
        index.close()
    remote = Settings(
        home=tmp_path,
        qdrant_url=f"http://127.0.0.1:{free_port()}",
        index=IndexSettings(retries=0),
        _env_file=None,  # type: ignore[call-arg]
    )
    with pytest.raises(IndexUnavailable):
        open_index(remote, vector_name="clip", dim=DIM)


def test_vector_names_are_safe_stable_and_distinct(tmp_path: Path) -> None:
    name = vector_name_for("ViT-B-32", "laion2b_s34b_b79k")
    assert name == vector_name_for("ViT-B-32", "laion2b_s34b_b79k")
    assert name.startswith("vit-b-32.laion2b-s34b-b79k.")
    assert all(c.isalnum() or c in ".-" for c in name)
    assert vector_name_for("ViT-B-32", "openai") != name
    assert vector_name_for("vit_b_32", "laion2b-s34b-b79k") != name  # alike once normalised
    weights = tmp_path / "a" / "tiny.pt"
    weights.parent.mkdir()
    weights.write_bytes(b"weights")
    moved = tmp_path / "b" / "tiny.pt"
    moved.parent.mkdir()
    moved.write_bytes(b"weights")
    assert vector_name_for("loupe-tiny", str(weights)) == vector_name_for("loupe-tiny", str(moved))
    moved.write_bytes(b"retrained")
    assert vector_name_for("loupe-tiny", str(weights)) != vector_name_for("loupe-tiny", str(moved))


def test_payload_indexes_live_on_disk_but_status_stays_in_ram(tmp_path: Path) -> None:
    """On-disk payload indexes open fast at 1M assets; `status` filters every search, so RAM."""
    from service.index.base import FieldType

    index = _edge(tmp_path)
    try:
        index.ensure_field("meta.label", FieldType.keyword)
        index.ensure_field("meta.score", FieldType.float)
        with index._store.shard() as shard:
            schema = shard.info().payload_schema
        assert schema["meta.label"].params.on_disk is True
        assert schema["meta.score"].params.on_disk is True
        assert schema["status"].params is None  # the engine's default: in RAM
    finally:
        index.close()
    reopened = _edge(tmp_path)  # and the schema survives a reopen
    try:
        assert reopened.indexed_fields()["meta.label"] == FieldType.keyword
    finally:
        reopened.close()
