"""The projector: UMAP (default) and PCA layouts' correctness and determinism, the streamed sample, colour
columns, the cache, the binary frames."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import silhouette_score

from service.api.routes.projector import MAGIC, decode_frame, encode_frame
from service.catalog.fields import catalog_fields
from service.catalog.layout import MAX_CATEGORIES, OTHER, Layout, build_column, pca_layout, umap_layout
from service.catalog.projector import Projector, _Scan
from service.catalog.reduce import PcaReduction, Streamed
from service.errors import Conflict, InvalidQuery
from service.index.base import FieldType, Record
from service.jobs.queue import JobQueue
from service.state import StateStore, utcnow

DIM = 64


def clusters(n_per: int = 200, k: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`k` tight clusters of unit vectors sharing a strong common direction (as CLIP vectors do)."""
    rng = np.random.default_rng(seed)
    common = rng.normal(size=DIM) * 3
    centres = common + rng.normal(size=(k, DIM))
    labels = np.repeat(np.arange(k), n_per)
    x = centres[labels] + rng.normal(scale=0.08, size=(k * n_per, DIM))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), labels


# -- layout math -------------------------------------------------------------------------


def test_pca_keeps_clusters_apart() -> None:
    x, labels = clusters()
    xy = pca_layout(x)
    assert xy.shape == (len(x), 2) and xy.dtype == np.float32
    assert_separated(xy, labels)


def test_pca_matches_svd_up_to_sign() -> None:
    x, _ = clusters(seed=3)
    centred = x.astype(np.float64) - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    expected = centred @ vt[:2].T
    got = pca_layout(x)
    for axis in range(2):
        sign = np.sign(np.dot(got[:, axis], expected[:, axis]))
        np.testing.assert_allclose(got[:, axis], sign * expected[:, axis], atol=1e-4)


def test_pca_is_deterministic_and_order_independent() -> None:
    x, _ = clusters(seed=5)
    a, b = pca_layout(x), pca_layout(x)
    np.testing.assert_array_equal(a, b)
    perm = np.random.default_rng(1).permutation(len(x))
    np.testing.assert_allclose(pca_layout(x[perm]), a[perm], atol=1e-5)  # no mirror flips


def test_streamed_pca_equals_pca_of_all_vectors() -> None:
    x, _ = clusters(n_per=700, seed=7)
    scan = _Scan([], method="pca")
    for start in range(0, len(x), 256):  # pages, as the index scrolls them
        scan.add([Record(id=str(uuid.uuid4()), payload={}, vector=v) for v in x[start : start + 256]])
    np.testing.assert_allclose(scan.xy(), pca_layout(x), atol=1e-5)


def test_axes_fitted_on_a_sample_match_the_full_fit() -> None:
    x, labels = clusters(n_per=700, seed=9)
    order = np.random.default_rng(2).permutation(len(x))  # ids are hashes: id order is random order
    x, labels = x[order], labels[order]
    scan = _Scan([], method="pca", fit=300)
    for start in range(0, len(x), 256):
        scan.add([Record(id=str(uuid.uuid4()), payload={}, vector=v) for v in x[start : start + 256]])
    assert scan.fitted == 300
    sampled, full = scan.xy(), pca_layout(x)
    for axis in range(2):  # nearly the same plane (a sample tilts it a little) ...
        assert abs(np.corrcoef(sampled[:, axis], full[:, axis])[0, 1]) > 0.97
    assert_separated(sampled, labels)  # ... and the same story


def assert_separated(xy: np.ndarray, labels: np.ndarray) -> None:
    k = int(labels.max()) + 1
    centres = np.stack([xy[labels == c].mean(axis=0) for c in range(k)])
    spread = max(float(xy[labels == c].std(axis=0).max()) for c in range(k))
    gaps = [np.linalg.norm(centres[a] - centres[b]) for a in range(k) for b in range(a + 1, k)]
    assert min(gaps) > 6 * spread


def test_degenerate_inputs() -> None:
    assert pca_layout(np.zeros((0, DIM), np.float32)).shape == (0, 2)
    one = pca_layout(np.ones((1, DIM), np.float32))
    np.testing.assert_array_equal(one, np.zeros((1, 2), np.float32))
    assert _Scan([], method="pca").xy().shape == (0, 2)
    assert _Scan([]).xy().shape == (0, 2)  # UMAP, the default
    few = clusters(n_per=3)[0]  # too few points for UMAP's neighbourhoods: PCA places them
    np.testing.assert_allclose(umap_layout(few), pca_layout(few), atol=1e-5)


class CountingPCA(PcaReduction):
    """The real PCA, recording how many vectors each call is handed (the memory bound)."""

    def __init__(self) -> None:
        super().__init__(2)
        self.calls: list[tuple[str, int]] = []

    def fit(self, sample: np.ndarray) -> np.ndarray:
        self.calls.append(("fit", len(sample)))
        return super().fit(sample)

    def transform(self, batch: np.ndarray) -> np.ndarray:
        self.calls.append(("transform", len(batch)))
        return super().transform(batch)


def test_a_streamed_reduction_holds_the_sample_and_one_batch_at_most() -> None:
    x, _ = clusters(n_per=700, seed=3)  # 2,100 vectors in pages of 256
    pca = CountingPCA()
    streamed = Streamed(pca, fit=500, batch=600)
    for start in range(0, len(x), 256):
        streamed.add(x[start : start + 256])
    out = streamed.result()
    assert pca.calls[0] == ("fit", 500) and all(kind == "transform" for kind, _ in pca.calls[1:])
    assert max(n for _, n in pca.calls[1:]) < 600 + 256 and sum(n for _, n in pca.calls) == len(x)
    reference = PcaReduction(2)
    reference.fit(x[:500])
    np.testing.assert_allclose(out, reference.transform(x), atol=1e-5)  # in scan order


# -- colour columns ------------------------------------------------------------------------


def test_category_column_ranks_values_and_lumps_the_rare_ones() -> None:
    col = build_column("meta.label", FieldType.keyword, ["b", "a", "b", None, "c", "b", "a"])
    assert col is not None and col.kind == "category" and col.data.dtype == np.uint8
    assert col.values == ("b", "a", "c") and col.counts == (3, 2, 1)
    assert col.data.tolist() == [1, 2, 1, 0, 3, 1, 2]  # 0 = no value
    many = [f"v{i % (MAX_CATEGORIES + 10)}" for i in range(2000)]
    col = build_column("meta.tag", FieldType.keyword, many)
    assert col is not None and len(col.values) == MAX_CATEGORIES and col.values[-1] == OTHER
    assert sum(col.counts) == 2000 and col.data.max() == MAX_CATEGORIES


def test_clusters_colour_as_categories_however_many() -> None:
    # 200 clusters of 1-3 assets: an integer field like that would be a ramp (or nothing, as
    # near-unique), but cluster ids name groups: the largest get their own colour, the rest (other).
    ids = [c for c in range(200) for _ in range(1 + c % 3)] + [-1] * 50
    col = build_column("signals.cluster", FieldType.integer, ids)
    assert col is not None and col.kind == "category"
    assert col.values[0] == -1 and col.counts[0] == 50  # noise, the largest
    assert len(col.values) == MAX_CATEGORIES and col.values[-1] == OTHER and sum(col.counts) == len(ids)


def test_near_unique_and_text_fields_colour_nothing() -> None:
    assert build_column("meta.caption", FieldType.keyword, [f"a caption {i}" for i in range(500)]) is None
    assert build_column("filename", FieldType.text, ["a.jpg", "b.jpg"]) is None
    assert build_column("meta.empty", FieldType.keyword, [None, None]) is None


def test_number_and_time_columns() -> None:
    col = build_column("width", FieldType.integer, list(range(100, 100 + MAX_CATEGORIES + 1)) + [None])
    assert col is not None and col.kind == "number" and np.isnan(col.data[-1])
    head = col.header()
    assert head["min"] == 100 and head["max"] == 100 + MAX_CATEGORIES
    few = build_column("meta.rating", FieldType.integer, [1, 2, 2, 5])
    assert few is not None and few.kind == "category"  # a handful of integers reads better as classes
    stamps = ["2024-01-01T00:00:00Z", "2024-12-31T23:59:59Z", "not a time"]
    col = build_column("meta.captured_at", FieldType.datetime, stamps)
    assert col is not None and col.kind == "time"
    # Offset from the earliest, so float32 keeps whole seconds across a year.
    assert col.offset == 1704067200.0 and col.data[1] == 366 * 86400 - 1 and np.isnan(col.data[2])


def test_layout_file_round_trip(tmp_path: Path) -> None:
    x, _ = clusters(n_per=20)
    ids = np.frombuffer(b"".join(uuid.uuid4().bytes for _ in x), np.uint8).reshape(-1, 16)
    cols = {
        "meta.k": build_column("meta.k", FieldType.keyword, ["a", "b"] * 30),
        "meta.t": build_column("meta.t", FieldType.datetime, ["2024-05-01T00:00:00Z"] * 60),
    }
    saved = Layout("pca", "f1", ids, pca_layout(x), {k: v for k, v in cols.items() if v}, "now", 1.5)
    saved.save(tmp_path / "pca.npz")
    loaded = Layout.load(tmp_path / "pca.npz")
    assert (loaded.method, loaded.fingerprint, loaded.seconds) == ("pca", "f1", 1.5)
    np.testing.assert_array_equal(loaded.xy, saved.xy)
    np.testing.assert_array_equal(loaded.ids, ids)
    assert loaded.columns["meta.k"].values == ("a", "b")
    assert loaded.columns["meta.t"].header() == saved.columns["meta.t"].header()
    assert not list(tmp_path.glob("*.tmp"))


# -- binary frames -------------------------------------------------------------------------


def test_frame_round_trip_and_alignment() -> None:
    xy = np.arange(10, dtype=np.float32)
    ids = np.arange(5 * 16, dtype=np.uint8)
    codes = np.array([3, 1, 2], dtype=np.uint8)
    frame = encode_frame({"version": "v", "count": 5}, {"xy": xy, "ids": ids, "codes": codes})
    assert frame[:4] == MAGIC
    size = int.from_bytes(frame[4:8], "little")
    assert (8 + size) % 8 == 0  # typed arrays in the page need aligned offsets
    header, arrays = decode_frame(frame)
    assert header["version"] == "v" and header["count"] == 5
    assert all(a["offset"] % 8 == 0 for a in header["arrays"])
    np.testing.assert_array_equal(arrays["xy"], xy)
    np.testing.assert_array_equal(arrays["ids"], ids)
    np.testing.assert_array_equal(arrays["codes"], codes)


def test_frame_size_at_100k_points() -> None:
    n = 100_000
    frame = encode_frame({"count": n}, {"xy": np.zeros(2 * n, np.float32), "ids": np.zeros(16 * n, np.uint8)})
    assert len(frame) < 2.5e6  # 24 bytes a point, plus a small header


def test_decode_refuses_other_data() -> None:
    with pytest.raises(ValueError, match="not a Loupe projector frame"):
        decode_frame(b'{"json": true}')


# -- the projector over an index -------------------------------------------------------------


class MemoryIndex:
    """Just what the projector reads from a VectorIndex, over arrays in memory."""

    vector_name = "mem"
    dim = DIM

    def __init__(self, vectors: np.ndarray, payloads: list[dict[str, Any]]) -> None:
        self.vectors = vectors
        self.payloads = payloads
        self.ids = [str(uuid.UUID(int=i + 1)) for i in range(len(vectors))]
        self.vector_scrolls = 0
        self.retrieved = 0  # payloads read by id (the colour refresh)
        self.fail: Exception | None = None
        self.gate = threading.Event()
        self.gate.set()
        self.indexed = {"source": FieldType.keyword, "meta.label": FieldType.keyword}

    def indexed_fields(self) -> dict[str, FieldType]:
        return dict(self.indexed)

    def retrieve(self, ids: Sequence[str], *, fields: Sequence[str] | None = None) -> list[Record]:
        at = {pid: i for i, pid in enumerate(self.ids)}
        self.retrieved += len(ids)
        keep = (lambda p: p) if fields is None else (lambda p: {k: v for k, v in p.items() if k in fields})
        return [Record(id=i, payload=keep(self.payloads[at[i]]), vector=None) for i in ids if i in at]

    def count(self, filter: object = None) -> int:
        return len(self.vectors)

    def scroll(
        self,
        *,
        filter: object = None,
        limit: int = 100,
        cursor: str | None = None,
        fields: Sequence[str] | None = None,
        with_vectors: bool = False,
    ) -> tuple[list[Record], str | None]:
        if with_vectors:
            self.gate.wait(10)
            self.vector_scrolls += 1
            if self.fail is not None:
                raise self.fail
        start = 0 if cursor is None else int(cursor)
        end = min(start + limit, len(self.vectors))
        recs = [
            Record(id=self.ids[i], payload=self.payloads[i], vector=self.vectors[i] if with_vectors else None)
            for i in range(start, end)
        ]
        return recs, (str(end) if end < len(self.vectors) else None)


@pytest.fixture
def memory_index() -> MemoryIndex:
    x, labels = clusters(n_per=100)
    payloads = [{"source": "s", "meta": {"label": f"c{c}", "caption": f"n{i}"}} for i, c in enumerate(labels)]
    return MemoryIndex(x, payloads)


@pytest.fixture
def state(tmp_path: Path) -> StateStore:
    return StateStore(f"sqlite:///{tmp_path / 'state.db'}")


def ready(projector: Projector, method: str = "umap") -> dict[str, Any]:
    # UMAP's first fit in a process compiles (numba): seconds, minutes on a busy machine.
    deadline = time.monotonic() + 600
    while True:
        st = projector.status(method)
        if st["state"] in ("ready", "failed"):
            return st
        assert time.monotonic() < deadline, st
        time.sleep(0.02)


def test_layout_is_computed_in_the_background_then_cached(
    memory_index: MemoryIndex, state: StateStore, tmp_path: Path
) -> None:
    memory_index.gate.clear()  # hold the computation so its progress can be seen
    projector = Projector(index=memory_index, state=state, directory=tmp_path / "proj")
    first = projector.status()
    assert first["state"] == "computing" and not first["available"]
    with pytest.raises(Conflict, match="not ready yet"):
        projector.layout()
    memory_index.gate.set()
    st = ready(projector)
    assert st["available"] and not st["stale"] and st["count"] == 300
    assert {c["field"] for c in st["colors"]} == {"source", "meta.label"}  # the captions are near-unique
    layout = projector.layout()
    assert [str(uuid.UUID(bytes=bytes(b))) for b in layout.ids[:3]] == memory_index.ids[:3]
    scrolls = memory_index.vector_scrolls
    projector.close()
    # A new process (restart) reads the cache: no second pass over the vectors.
    again = Projector(index=memory_index, state=state, directory=tmp_path / "proj")
    assert again.status()["state"] == "ready" and memory_index.vector_scrolls == scrolls
    np.testing.assert_array_equal(again.layout().xy, layout.xy)


def test_a_finished_sync_invalidates_but_a_running_one_does_not(
    memory_index: MemoryIndex, state: StateStore, tmp_path: Path
) -> None:
    projector = Projector(index=memory_index, state=state, directory=tmp_path / "proj")
    version = ready(projector)["version"]
    jobs = JobQueue(state)
    running = jobs.create("sync", source="s", state="running")
    memory_index.vectors = memory_index.vectors[:250]  # the sync changes the index as it goes
    st = projector.status()
    assert st["state"] == "ready" and st["stale"] and st["syncing"] and st["version"] == version
    jobs.update(running.id, state="succeeded", finished_at=utcnow())
    st = projector.status()
    assert st["state"] == "computing"
    st = ready(projector)
    assert st["count"] == 250 and not st["stale"] and st["version"] != version


def test_a_failed_layout_says_why_and_is_not_retried_in_a_loop(
    memory_index: MemoryIndex, state: StateStore, tmp_path: Path
) -> None:
    memory_index.fail = InvalidQuery("the index went away")
    projector = Projector(index=memory_index, state=state, directory=tmp_path / "proj")
    st = ready(projector)
    assert st["state"] == "failed" and st["detail"] == "the index went away"
    scrolls = memory_index.vector_scrolls
    assert projector.status()["state"] == "failed" and memory_index.vector_scrolls == scrolls


def test_unknown_columns_and_methods_are_422(
    memory_index: MemoryIndex, state: StateStore, tmp_path: Path
) -> None:
    projector = Projector(index=memory_index, state=state, directory=tmp_path / "proj")
    ready(projector)
    with pytest.raises(InvalidQuery, match="no colour column 'meta.nope'; choose one of: source"):
        projector.column("umap", "meta.nope")
    with pytest.raises(InvalidQuery, match="unknown method"):
        projector.status("tsne")


def test_umap_is_the_default_layout_and_is_deterministic(
    memory_index: MemoryIndex, state: StateStore, tmp_path: Path
) -> None:
    projector = Projector(index=memory_index, state=state, directory=tmp_path / "proj")
    st = ready(projector)
    assert st["methods"] == ["umap", "pca"] and st["method"] == "umap" and st["state"] == "ready"
    assert (tmp_path / "proj" / "umap.npz").exists()
    xy = projector.layout().xy
    # The same vectors, the same seed: the same map (a reload draws the same picture).
    np.testing.assert_array_equal(xy, umap_layout(memory_index.vectors))
    labels = np.array([p["meta"]["label"] for p in memory_index.payloads])
    assert silhouette_score(xy, labels) > 0.7  # the three planted groups stay apart
    pca = ready(projector, "pca")
    assert pca["method"] == "pca" and (tmp_path / "proj" / "pca.npz").exists()
    np.testing.assert_allclose(projector.layout("pca").xy, pca_layout(memory_index.vectors), atol=1e-5)


def test_umap_fitted_on_a_sample_places_the_rest_by_transform() -> None:
    x, labels = clusters(n_per=150, seed=11)
    order = np.random.default_rng(4).permutation(len(x))  # id order is random order
    x, labels = x[order], labels[order]
    xy = umap_layout(x, sample=200)  # 200 fitted, 250 transformed
    assert xy.shape == (450, 2) and np.isfinite(xy).all()
    assert silhouette_score(xy[200:], labels[200:]) > 0.7  # transformed points land by their group
    np.testing.assert_array_equal(xy, umap_layout(x, sample=200))


def test_fields_list_indexed_and_sampled_metadata(memory_index: MemoryIndex) -> None:
    fields = {f.name: f for f in catalog_fields(memory_index)}
    assert fields["source"].indexed and fields["source"].public()["facetable"]
    assert fields["meta.label"].public() == {
        "name": "meta.label",
        "label": "label",
        "type": "keyword",
        "indexed": True,
        "builtin": False,
        "derived": False,
        "facetable": True,
        "distinct": 3,
        "sampled": 256,
    }
    caption = fields["meta.caption"]  # seen in the payloads, not indexed
    assert not caption.indexed and caption.distinct == 256 and not caption.public()["facetable"]


def finished(state: StateStore, kind: str) -> None:
    jobs = JobQueue(state)
    job = jobs.create(kind, state="running")
    jobs.update(job.id, state="succeeded", finished_at=utcnow())


def test_a_finished_signal_recolours_the_map_without_a_new_reduction(
    memory_index: MemoryIndex, state: StateStore, tmp_path: Path
) -> None:
    projector = Projector(index=memory_index, state=state, directory=tmp_path / "proj")
    before = ready(projector)
    layout = projector.layout()
    assert projector.reductions == 1 and "signals.uniqueness" not in {c["field"] for c in before["colors"]}
    scrolls = memory_index.vector_scrolls
    # The signal writes its field on every asset (and indexes it first, as service/signals does).
    scores = np.linspace(0, 1, len(memory_index.payloads))
    for payload, score in zip(memory_index.payloads, scores, strict=True):
        payload["signals"] = {"uniqueness": float(score)}
    memory_index.indexed["signals.uniqueness"] = FieldType.float
    finished(state, "signal")
    st = projector.status()
    assert st["state"] == "computing" and st["stale"] and st["available"]  # the colours are re-read
    after = ready(projector)
    assert not after["stale"] and after["colors_version"] != before["colors_version"]
    assert "signals.uniqueness" in {c["field"] for c in after["colors"]}
    # The points did not move and no reduction ran: the same version, time, bytes; no vector read.
    assert (after["version"], after["computed_at"], after["seconds"]) == (
        before["version"],
        before["computed_at"],
        before["seconds"],
    )
    assert projector.reductions == 1 and memory_index.vector_scrolls == scrolls
    assert memory_index.retrieved == len(scores)
    again, column = projector.column("umap", "signals.uniqueness")
    assert again.xy.tobytes() == layout.xy.tobytes() and again.ids.tobytes() == layout.ids.tobytes()
    np.testing.assert_allclose(column.data + column.offset, scores, atol=1e-6)
    # Nothing more to do: the next poll starts nothing.
    assert projector.status()["state"] == "ready" and memory_index.retrieved == len(scores)
    projector.close()
    # A restart keeps both the points and the new colours (the cache file holds them).
    restarted = Projector(index=memory_index, state=state, directory=tmp_path / "proj")
    st = restarted.status()
    assert st["state"] == "ready" and not st["stale"] and st["colors_version"] == after["colors_version"]
    assert restarted.reductions == 0 and memory_index.retrieved == len(scores)
    assert restarted.layout().columns["signals.uniqueness"].data.tobytes() == column.data.tobytes()


def test_a_sync_adding_assets_still_recomputes_the_points(
    memory_index: MemoryIndex, state: StateStore, tmp_path: Path
) -> None:
    projector = Projector(index=memory_index, state=state, directory=tmp_path / "proj")
    before = ready(projector)
    extra, _ = clusters(n_per=20, seed=21)
    memory_index.vectors = np.concatenate([memory_index.vectors, extra])
    memory_index.payloads += [{"source": "s", "meta": {"label": "new"}} for _ in extra]
    memory_index.ids += [str(uuid.UUID(int=10_000 + i)) for i in range(len(extra))]
    finished(state, "sync")
    after = ready(projector)
    assert projector.reductions == 2 and after["count"] == 360 and after["version"] != before["version"]
    assert projector.layout().columns["meta.label"].values[-1] == "new"


def test_the_colours_follow_label_imports_and_removed_fields(
    memory_index: MemoryIndex, state: StateStore, tmp_path: Path
) -> None:
    derived = {"labels.gt.label": FieldType.keyword}
    for i, payload in enumerate(memory_index.payloads):
        payload["labels"] = {"gt": {"label": f"g{i % 2}"}}
    projector = Projector(
        index=memory_index, state=state, directory=tmp_path / "proj", derived=lambda: dict(derived)
    )
    first = ready(projector)
    assert projector.layout().columns["labels.gt.label"].values == ("g0", "g1")
    for payload in memory_index.payloads:
        payload["labels"]["gt"]["label"] = "g2"
    finished(state, "label_import")  # a re-import: new values, the same fields
    second = ready(projector)
    assert second["colors_version"] != first["colors_version"]
    assert projector.layout().columns["labels.gt.label"].values == ("g2",)
    derived.clear()  # the set is removed (no job says so): its column goes
    third = ready(projector)
    assert "labels.gt.label" not in {c["field"] for c in third["colors"]}
    assert projector.reductions == 1 and third["version"] == first["version"]
