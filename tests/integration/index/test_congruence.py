"""One suite, every backend: the embedded engine, qdrant-client's local mode and a Qdrant server.

Each test runs the same operations on one backend and checks the answer against
a brute-force reference computed here in Python (numpy for scores, plain
predicates for filters); `test_backends_agree` also compares the backends'
answers with each other directly. The server runs from a testcontainers Qdrant
image where a Docker engine exists and is skipped, with the reason, elsewhere.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from service.config import IndexSettings
from service.errors import InvalidQuery
from service.index.base import FieldType, Point, VectorIndex
from service.index.edge import EdgeIndex
from service.index.filters import parse_filter
from service.index.server import ServerIndex

DIM = 16
N = 240
LABELS = ["bike", "car", "unicycle", "person", "dog"]
BACKENDS = ["edge", "local", "server"]
QDRANT_IMAGE = os.environ.get("LOUPE_TEST_QDRANT_IMAGE", "qdrant/qdrant:v1.20.0")
T0 = datetime(2024, 1, 1, tzinfo=UTC)
Payload = dict[str, Any]


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _payload(i: int) -> Payload:
    meta: Payload = {
        "label": LABELS[i % 5],
        "camera": {"make": ["Canon", "Nikon", "Sony"][i % 3], "iso": 100 * (1 + i % 8)},
        "score": round((i % 100) / 100, 2),
        "flagged": i % 2 == 0,
        "captured_at": _iso(T0 + timedelta(days=i)),
    }
    if i % 4:
        meta["tags"] = ["rain", "night"][: i % 3]  # missing, [], ["rain"] or ["rain", "night"]
    return {
        "source": ["s3-prod", "nfs", "db"][i % 3],
        "key": f"img/{i:04d}.jpg",
        "status": "ok" if i % 10 else "missing",
        "media_type": "image/png" if i % 4 == 0 else "image/jpeg",
        "filename": f"{'night' if i % 7 else 'day'}_{'rain' if i % 5 else 'clear'}_{i}.jpg",
        "width": 640 + 64 * (i % 20),
        "height": 480,
        "size_bytes": 1000 * i,
        "modified_at": _iso(T0 + timedelta(hours=i)),
        "meta": meta,
        "exports": [{"target": "jsonl", "project": "p1", "export_id": "e1"}] if i % 9 == 0 else [],
    }


def _dataset() -> tuple[list[str], np.ndarray, list[Payload]]:
    rng = np.random.default_rng(7)
    centers = rng.normal(size=(6, DIM))
    vectors = centers[np.arange(N) % 6] + 0.4 * rng.normal(size=(N, DIM))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    ids = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"loupe-test/{i}")) for i in range(N)]
    return ids, vectors, [_payload(i) for i in range(N)]


IDS, VECTORS, PAYLOADS = _dataset()
POINTS = [Point(id=i, vector=v, payload=p) for i, v, p in zip(IDS, VECTORS, PAYLOADS, strict=True)]


# -- backends -------------------------------------------------------------------


@functools.cache
def _no_docker() -> str | None:
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return None
    except Exception as exc:  # docker missing, engine absent or unreachable
        return f"no Docker engine for a Qdrant server container ({type(exc).__name__}: {exc})"


@pytest.fixture(scope="module")
def qdrant_url() -> Iterator[str]:
    reason = _no_docker()
    if reason is not None:
        pytest.skip(reason)
    from testcontainers.qdrant import QdrantContainer

    with QdrantContainer(image=QDRANT_IMAGE) as qdrant:
        yield f"http://{qdrant.rest_host_address}"


def _open(kind: str, request: pytest.FixtureRequest, where: Path) -> VectorIndex:
    settings = IndexSettings()
    if kind == "edge":
        return EdgeIndex(where, vector_name="clip", dim=DIM, settings=settings)
    location = ":memory:" if kind == "local" else request.getfixturevalue("qdrant_url")
    collection = f"test_{uuid.uuid4().hex[:12]}"
    return ServerIndex(
        location,
        api_key=None,
        collection=collection,
        vector_name="clip",
        dim=DIM,
        settings=settings,
    )


def _loaded(kind: str, request: pytest.FixtureRequest, where: Path) -> VectorIndex:
    index = _open(kind, request, where)
    for name in ("meta.label", "meta.camera.make", "meta.flagged", "meta.score"):
        kinds = {"meta.flagged": FieldType.bool, "meta.score": FieldType.float}
        index.ensure_field(name, kinds.get(name, FieldType.keyword))
    index.ensure_field("meta.captured_at", FieldType.datetime)
    index.upsert(POINTS)
    return index


@pytest.fixture(scope="module", params=BACKENDS)
def index(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[VectorIndex]:
    """A backend loaded with the shared dataset; tests must not change it."""
    loaded = _loaded(request.param, request, tmp_path_factory.mktemp(request.param))
    yield loaded
    loaded.close()


@pytest.fixture(params=BACKENDS)
def fresh(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorIndex]:
    """An empty backend of its own, for tests that write."""
    empty = _open(request.param, request, tmp_path / "index")
    yield empty
    empty.close()


# -- the reference ----------------------------------------------------------------

Predicate = Callable[[Payload], bool]
FILTERS: list[tuple[dict[str, Any], Predicate]] = [
    ({"source": "s3-prod"}, lambda p: p["source"] == "s3-prod"),
    ({"label": {"in": ["bike", "unicycle"]}}, lambda p: p["meta"]["label"] in ("bike", "unicycle")),
    ({"width": {"gte": 1024}}, lambda p: p["width"] >= 1024),
    ({"width": {"gt": 704, "lt": 1024}}, lambda p: 704 < p["width"] < 1024),
    ({"size_bytes": {"lte": 5000}}, lambda p: p["size_bytes"] <= 5000),
    (
        {"modified_at": {"gte": "2024-01-03T00:00:00Z", "lt": "2024-01-05"}},
        lambda p: "2024-01-03T00:00:00Z" <= p["modified_at"] < "2024-01-05T00:00:00Z",
    ),
    (
        {"captured_at": {"gt": "2024-03-01T12:00:00+02:00"}},
        lambda p: p["meta"]["captured_at"] > "2024-03-01T10:00:00Z",
    ),
    ({"tags": {"exists": True}}, lambda p: bool(p["meta"].get("tags"))),
    ({"tags": {"exists": False}}, lambda p: not p["meta"].get("tags")),
    ({"tags": "night"}, lambda p: "night" in p["meta"].get("tags", [])),
    ({"filename": {"match": "night"}}, lambda p: p["filename"].startswith("night_")),
    ({"filename": {"match": "Night RAIN"}}, lambda p: p["filename"].startswith("night_rain")),
    ({"meta.camera.make": "Nikon"}, lambda p: p["meta"]["camera"]["make"] == "Nikon"),
    ({"camera.iso": {"gte": 500}}, lambda p: p["meta"]["camera"]["iso"] >= 500),
    ({"flagged": True}, lambda p: p["meta"]["flagged"]),
    ({"score": 0.25}, lambda p: p["meta"]["score"] == 0.25),
    ({"exports.target": "jsonl"}, lambda p: any(e["target"] == "jsonl" for e in p["exports"])),
    ({"exports": {"exists": False}}, lambda p: not p["exports"]),
    # What a selection excludes as exported (an indexed key of every entry).
    ({"exports.export_id": {"exists": True}}, lambda p: bool(p["exports"])),
    ({"not": {"exports.export_id": {"exists": True}}}, lambda p: not p["exports"]),
    ({"source": {"ne": "db"}}, lambda p: p["source"] != "db"),
    ({"label": {"nin": ["bike", "car"]}}, lambda p: p["meta"]["label"] not in ("bike", "car")),
    (
        {"or": [{"label": "dog"}, {"width": 640}], "status": "ok"},
        lambda p: (p["meta"]["label"] == "dog" or p["width"] == 640) and p["status"] == "ok",
    ),
    (
        {"not": {"source": "nfs", "flagged": True}},
        lambda p: not (p["source"] == "nfs" and p["meta"]["flagged"]),
    ),
    (
        {"and": [{"source": "db"}, {"label": "car"}, {"not": {"media_type": "image/png"}}]},
        lambda p: p["source"] == "db" and p["meta"]["label"] == "car" and p["media_type"] != "image/png",
    ),
]
FILTER_IDS = [str(f) for f, _ in FILTERS]


def expected_ids(predicate: Predicate | None) -> set[str]:
    return {i for i, p in zip(IDS, PAYLOADS, strict=True) if predicate is None or predicate(p)}


def brute_force(
    positive: list[np.ndarray], negative: list[np.ndarray], allowed: set[str]
) -> list[tuple[str, float]]:
    """Loupe's scores by numpy: cosine, or best_score on the cosine scale (see plan.py)."""

    def unit(vectors: list[np.ndarray]) -> np.ndarray:
        stacked = np.stack(vectors)
        return stacked / np.linalg.norm(stacked, axis=1, keepdims=True)

    pos = VECTORS @ unit(positive).T
    best = pos.max(axis=1)
    if len(positive) > 1 or negative:
        worst = (VECTORS @ unit(negative).T).max(axis=1) if negative else np.full(N, -9.0)
        best = np.where(best > worst, best, -2.0 - worst)
    ranked = sorted(((IDS[n], float(best[n])) for n in range(N) if IDS[n] in allowed), key=lambda h: -h[1])
    return ranked


def assert_hits(hits: list[Any], ranking: list[tuple[str, float]], k: int) -> None:
    """`hits` is a top-k of `ranking`: the same scores in order, each hit with its true score.

    (Checking scores rather than ids keeps the test honest where two points tie.)
    """
    truth = dict(ranking)
    assert [h.score for h in hits] == pytest.approx([s for _, s in ranking[:k]], abs=2e-4)
    for hit in hits:
        assert hit.id in truth
        assert hit.score == pytest.approx(truth[hit.id], abs=2e-4)


# -- the suite --------------------------------------------------------------------


def test_retrieve_keeps_order_and_drops_unknown(index: VectorIndex) -> None:
    unknown = str(uuid.uuid4())
    records = index.retrieve([IDS[5], unknown, IDS[2]], with_vectors=True)
    assert [r.id for r in records] == [IDS[5], IDS[2]]
    assert records[0].payload == PAYLOADS[5]
    assert records[0].vector is not None
    np.testing.assert_allclose(records[0].vector, VECTORS[5], atol=1e-6)
    assert index.retrieve([IDS[1]])[0].vector is None


@pytest.mark.parametrize(("raw", "predicate"), FILTERS, ids=FILTER_IDS)
def test_filters_count_and_scroll(index: VectorIndex, raw: dict[str, Any], predicate: Predicate) -> None:
    flt = parse_filter(raw)
    want = expected_ids(predicate)
    assert 0 < len(want) < N, "a case that keeps nothing or everything proves little"
    assert index.count(flt) == len(want)
    records, cursor = index.scroll(filter=flt, limit=N)
    assert {r.id for r in records} == want
    assert cursor is None


def test_scroll_pages_cover_every_point_once_in_id_order(index: VectorIndex) -> None:
    seen: list[str] = []
    cursor: str | None = None
    while True:
        records, cursor = index.scroll(limit=37, cursor=cursor, fields=["key"])
        seen.extend(r.id for r in records)
        assert all(set(r.payload) == {"key"} for r in records)
        if cursor is None:
            break
    assert sorted(seen) == sorted(IDS) and len(seen) == N
    assert seen == sorted(seen, key=lambda i: uuid.UUID(i).int)


def test_scroll_can_return_vectors(index: VectorIndex) -> None:
    records, _ = index.scroll(limit=3, with_vectors=True)
    assert all(r.vector is not None and r.vector.shape == (DIM,) for r in records)


def test_nearest(index: VectorIndex) -> None:
    query = VECTORS[11]
    hits = index.query(positive=[query], limit=10)
    assert_hits(hits, brute_force([query], [], set(IDS)), 10)
    assert hits[0].id == IDS[11] and hits[0].payload == PAYLOADS[11]


@pytest.mark.parametrize(("raw", "predicate"), FILTERS[::3], ids=FILTER_IDS[::3])
def test_nearest_with_filter(index: VectorIndex, raw: dict[str, Any], predicate: Predicate) -> None:
    query = VECTORS[3] * 0.5 + VECTORS[40] * 0.5
    hits = index.query(positive=[query], filter=parse_filter(raw), limit=10)
    assert_hits(hits, brute_force([query], [], expected_ids(predicate)), 10)


def test_recommend_with_negatives(index: VectorIndex) -> None:
    positive, negative = [VECTORS[0], VECTORS[7]], [VECTORS[6], VECTORS[1]]
    flt = parse_filter({"status": "ok"})
    hits = index.query(positive=positive, negative=negative, filter=flt, limit=15)
    want = brute_force(positive, negative, expected_ids(lambda p: p["status"] == "ok"))
    assert_hits(hits, want, 15)


def test_recommend_orders_points_nearer_a_negative_last(index: VectorIndex) -> None:
    positive, negative = [VECTORS[0]], [VECTORS[1]]
    hits = index.query(positive=positive, negative=negative, limit=N)
    assert_hits(hits, brute_force(positive, negative, set(IDS)), N)
    scores = [h.score for h in hits]
    assert scores[0] > 0.99 and scores[-1] < -1


def test_score_threshold_means_cosine_for_search_and_recommend(index: VectorIndex) -> None:
    query = VECTORS[20]
    hits = index.query(positive=[query], limit=N, score_threshold=0.5)
    want = [h for h in brute_force([query], [], set(IDS)) if h[1] >= 0.5]
    assert_hits(hits, want, len(want))
    reco = index.query(
        positive=[VECTORS[20], VECTORS[21]], negative=[VECTORS[22]], limit=N, score_threshold=0.5
    )
    want = brute_force([VECTORS[20], VECTORS[21]], [VECTORS[22]], set(IDS))
    above = [h for h in want if h[1] >= 0.5]
    assert_hits(reco, above, len(above))


def test_offset_pages_through_the_ranking(index: VectorIndex) -> None:
    query = VECTORS[30]
    first = index.query(positive=[query], limit=20)
    second = index.query(positive=[query], limit=10, offset=10)
    assert [h.id for h in second] == [h.id for h in first[10:]]


@pytest.mark.parametrize(
    ("key", "raw", "keep", "value_of"),
    [
        ("source", None, None, lambda p: p["source"]),
        (
            "meta.label",
            {"source": "nfs"},
            lambda p: p["source"] == "nfs",
            lambda p: p["meta"]["label"],
        ),
        ("width", {"label": "dog"}, lambda p: p["meta"]["label"] == "dog", lambda p: p["width"]),
        ("meta.flagged", None, None, lambda p: p["meta"]["flagged"]),
        (
            "exports.target",
            None,
            None,
            lambda p: p["exports"][0]["target"] if p["exports"] else None,
        ),
    ],
)
def test_facet(
    index: VectorIndex,
    key: str,
    raw: dict[str, Any] | None,
    keep: Predicate | None,
    value_of: Callable[[Payload], Any],
) -> None:
    counts = Counter(value_of(p) for p in PAYLOADS if keep is None or keep(p))
    counts.pop(None, None)
    got = index.facet(key, filter=parse_filter(raw), limit=50)
    assert {c.value: c.count for c in got} == dict(counts)
    assert [c.count for c in got] == sorted((c.count for c in got), reverse=True)


def test_facet_needs_an_index(index: VectorIndex) -> None:
    with pytest.raises(InvalidQuery, match="meta.camera.iso"):
        index.facet("meta.camera.iso")


def test_bad_requests_are_invalid_queries(index: VectorIndex) -> None:
    with pytest.raises(InvalidQuery):
        index.query(positive=[np.ones(DIM + 1, dtype=np.float32)])
    with pytest.raises(InvalidQuery) as info:
        index.scroll(cursor="not-a-cursor")
    assert info.value.path == "cursor"
    with pytest.raises(InvalidQuery):
        index.retrieve(["nope"])


def test_writes(fresh: VectorIndex) -> None:
    fresh.upsert(POINTS[:50])
    assert fresh.count() == 50
    fresh.set_payload([IDS[0], IDS[1], str(uuid.uuid4())], {"status": "missing", "extra": 1})
    assert fresh.count(parse_filter({"status": "missing"})) == 2 + sum(
        1 for p in PAYLOADS[2:50] if p["status"] == "missing"
    )
    assert fresh.retrieve([IDS[0]])[0].payload == {**PAYLOADS[0], "status": "missing", "extra": 1}
    fresh.delete([IDS[2], IDS[3], str(uuid.uuid4())])
    assert fresh.count() == 48 and fresh.retrieve([IDS[2]]) == []
    # An upsert replaces the whole payload; a point without a vector replaces only the payload.
    fresh.upsert([Point(id=IDS[4], vector=VECTORS[5], payload={"source": "new"})])
    fresh.upsert([Point(id=IDS[5], vector=None, payload={"source": "kept-vector"})])
    four, five = fresh.retrieve([IDS[4], IDS[5]], with_vectors=True)
    assert four.payload == {"source": "new"} and five.payload == {"source": "kept-vector"}
    assert five.vector is not None
    np.testing.assert_allclose(four.vector, VECTORS[5], atol=1e-6)
    np.testing.assert_allclose(five.vector, VECTORS[5], atol=1e-6)
    assert fresh.query(positive=[VECTORS[5]], limit=2)[0].score == pytest.approx(1.0, abs=1e-5)


def test_per_point_payloads_skip_missing_points_and_reads_can_skip_payloads(fresh: VectorIndex) -> None:
    fresh.upsert(POINTS)
    gone = str(uuid.uuid4())
    # More writes than one run of the embedded engine's (256), a missing point in the middle;
    # a point written twice keeps the later value.
    items = [(IDS[i % N], {"gt": {"label": LABELS[i % 5], "n": i}}) for i in range(N + 40)]
    fresh.set_payloads([*items[:100], (gone, {"gt": {"label": "x"}}), *items[100:]], key="labels")
    fresh.set_payloads([(IDS[0], {"gt": {"label": "car"}})], key="labels")  # replaces labels.gt
    assert fresh.count(parse_filter({"labels.gt.label": {"exists": True}})) == N
    assert fresh.retrieve([gone]) == []
    first, second, last = fresh.retrieve([IDS[0], IDS[1], IDS[N - 1]])
    assert first.payload == {**PAYLOADS[0], "labels": {"gt": {"label": "car"}}}
    assert second.payload["labels"] == {"gt": {"label": LABELS[(N + 1) % 5], "n": N + 1}}
    assert last.payload["labels"] == {"gt": {"label": LABELS[(N - 1) % 5], "n": N - 1}}
    # An empty field list: the ids alone.
    assert [(r.id, r.payload) for r in fresh.retrieve([IDS[3], gone, IDS[1]], fields=[])] == [
        (IDS[3], {}),
        (IDS[1], {}),
    ]
    page, _ = fresh.scroll(limit=5, fields=[])
    assert len(page) == 5 and all(r.payload == {} for r in page)


def test_indexed_fields_survive_and_are_idempotent(fresh: VectorIndex) -> None:
    assert set(fresh.indexed_fields()) >= {"source", "filename", "exports.target", "modified_at"}
    fresh.ensure_field("meta.camera.make", FieldType.keyword)
    fresh.ensure_field("meta.camera.make", FieldType.keyword)
    assert fresh.indexed_fields()["meta.camera.make"] is FieldType.keyword


def test_backends_agree(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """The same calls on every available backend give the same answers."""
    kinds = ["edge", "local"] + ([] if _no_docker() else ["server"])
    answers = []
    for kind in kinds:
        index = _loaded(kind, request, tmp_path / kind)
        try:
            answers.append(_answers(index))
        finally:
            index.close()
    first = answers[0]
    for kind, other in zip(kinds[1:], answers[1:], strict=True):
        assert other["count"] == first["count"], kind
        assert other["scroll"] == first["scroll"], kind
        assert other["facet"] == first["facet"], kind
        for name in ("search", "recommend"):
            ranking = [(h.id, h.score) for h in first[name]]
            assert_hits(other[name], ranking, len(ranking))
            mine = {h.id: h.payload for h in other[name]}
            assert all(mine[h.id] == h.payload for h in first[name] if h.id in mine), kind


def _answers(index: VectorIndex) -> dict[str, Any]:
    flt = parse_filter({"or": [{"label": "bike"}, {"filename": {"match": "rain"}}]})
    reco = {"positive": [VECTORS[9], VECTORS[50]], "negative": [VECTORS[8]]}
    return {
        "count": index.count(flt),
        "scroll": [r.id for r in index.scroll(filter=flt, limit=500)[0]],
        "search": index.query(positive=[VECTORS[9]], filter=flt, limit=12),
        "recommend": index.query(**reco, filter=flt, limit=12),
        "facet": index.facet("meta.camera.make", filter=flt),
    }
