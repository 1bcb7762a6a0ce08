"""Vector spaces on every backend: named vectors beside the encoder's, of their own size and distance.

The same operations run on the embedded engine, qdrant-client's local mode and a Qdrant
server (skipped, with its reason, without a Docker engine), each checked against numpy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from service.config import IndexSettings
from service.errors import InvalidConfig, InvalidQuery
from service.index.base import Distance, Filter, HasVector, Point, VectorIndex, VectorSpec
from service.index.edge import EdgeIndex
from service.index.filters import parse_filter
from tests.integration.index import test_congruence as base
from tests.integration.index.test_congruence import DIM, IDS, POINTS, VECTORS

# The congruence suite's fixtures: an empty index of each backend, and the Qdrant server.
fresh, qdrant_url = base.fresh, base.qdrant_url

USER_DIM = 6
HELD = 40  # points with a user-space vector; the rest lack one
RNG = np.random.default_rng(11)
USER = RNG.normal(size=(HELD, USER_DIM)).astype(np.float32)


def _reference(query: np.ndarray, distance: Distance) -> list[tuple[str, float]]:
    """Every held point by closeness to `query`, with its score as Loupe reports it."""
    if distance is Distance.cosine:
        unit = USER / np.linalg.norm(USER, axis=1, keepdims=True)
        scores = unit @ (query / np.linalg.norm(query))
        order = np.argsort(-scores)
    elif distance is Distance.dot:
        scores = USER @ query
        order = np.argsort(-scores)
    else:
        scores = np.linalg.norm(USER - query, axis=1)
        order = np.argsort(scores)
    return [(IDS[i], float(scores[i])) for i in order]


def _loaded(index: VectorIndex, distance: Distance) -> VectorIndex:
    index.upsert(POINTS[:100])
    index.add_vector(VectorSpec("mine", USER_DIM, distance))
    index.update_vectors("mine", [(IDS[i], USER[i]) for i in range(HELD)])
    return index


@pytest.mark.parametrize("distance", list(Distance))
def test_search_in_a_user_space_ranks_by_its_vectors(fresh: VectorIndex, distance: Distance) -> None:
    index = _loaded(fresh, distance)
    query = RNG.normal(size=USER_DIM).astype(np.float32)
    hits = index.query(positive=[query], limit=HELD + 10, using="mine")
    expected = _reference(query, distance)
    # Points without a vector in the space are not seen; the order is exactly numpy's.
    assert [h.id for h in hits] == [i for i, _ in expected]
    np.testing.assert_allclose([h.score for h in hits], [s for _, s in expected], rtol=1e-4, atol=1e-4)
    # The encoder's space is untouched and still sees every point.
    assert len(index.query(positive=[VECTORS[0]], limit=200)) == 100


def test_spaces_are_listed_counted_and_kept_apart(fresh: VectorIndex) -> None:
    index = _loaded(fresh, Distance.dot)
    specs = index.vector_specs()
    assert specs["mine"] == VectorSpec("mine", USER_DIM, Distance.dot)
    assert specs[index.vector_name] == VectorSpec(index.vector_name, DIM, Distance.cosine)
    assert index.count(Filter(must=[HasVector("mine")])) == HELD
    assert index.count(Filter(must=[HasVector(index.vector_name)])) == 100
    # Writing one space leaves the payload and the encoder's vector as they were.
    rec = index.retrieve([IDS[3]], with_vectors=[index.vector_name, "mine"])[0]
    assert rec.payload == POINTS[3].payload
    np.testing.assert_allclose(rec.vectors[index.vector_name], VECTORS[3], atol=1e-6)
    np.testing.assert_allclose(rec.vectors["mine"], USER[3], atol=1e-6)
    one = index.retrieve([IDS[3]], with_vectors=True, using="mine")[0]
    np.testing.assert_allclose(one.vector, USER[3], atol=1e-6)
    assert index.retrieve([IDS[60]], with_vectors=["mine"])[0].vectors == {}
    # Re-adding the same space is a no-op; another shape under the same name is refused.
    index.add_vector(VectorSpec("mine", USER_DIM, Distance.dot))
    with pytest.raises(InvalidConfig):
        index.add_vector(VectorSpec("mine", USER_DIM + 1, Distance.dot))
    with pytest.raises(InvalidQuery):
        index.query(positive=[np.ones(USER_DIM)], using="nowhere")


def test_an_upsert_carries_the_vectors_it_is_given(fresh: VectorIndex) -> None:
    index = _loaded(fresh, Distance.cosine)
    old = index.retrieve([IDS[5], IDS[6]], with_vectors=["mine"])
    carried = Point(id=IDS[5], vector=VECTORS[7], payload={"source": "again"}, vectors=old[0].vectors)
    index.upsert([carried, Point(id=IDS[6], vector=VECTORS[8], payload={"source": "bare"})])
    five, six = index.retrieve([IDS[5], IDS[6]], with_vectors=["mine", index.vector_name])
    # A cosine space keeps unit vectors (Qdrant normalises them on write).
    np.testing.assert_allclose(five.vectors["mine"], USER[5] / np.linalg.norm(USER[5]), atol=1e-6)
    np.testing.assert_allclose(five.vectors[index.vector_name], VECTORS[7], atol=1e-6)
    assert "mine" not in six.vectors  # an upsert replaces the whole point
    assert index.count(Filter(must=[HasVector("mine")])) == HELD - 1


def test_recommend_and_filters_in_a_user_space(fresh: VectorIndex) -> None:
    index = _loaded(fresh, Distance.cosine)
    flt = parse_filter({"source": "s3-prod"})
    hits = index.query(positive=[USER[0], USER[1]], negative=[USER[2]], filter=flt, limit=5, using="mine")
    assert hits and all(POINTS[IDS.index(h.id)].payload["source"] == "s3-prod" for h in hits)
    assert hits[0].id in (IDS[0], IDS[1]) and hits[0].score == pytest.approx(1.0, abs=1e-4)


def test_vectors_deleted_and_spaces_removed(fresh: VectorIndex) -> None:
    index = _loaded(fresh, Distance.euclid)
    index.delete_vectors("mine", IDS[:10])
    assert index.count(Filter(must=[HasVector("mine")])) == HELD - 10
    assert index.retrieve([IDS[0]])[0].payload == POINTS[0].payload
    index.remove_vector("mine")
    assert "mine" not in index.vector_specs()
    with pytest.raises(InvalidQuery):
        index.remove_vector(index.vector_name)
    assert index.count() == 100


def test_embedded_spaces_survive_a_reopen(tmp_path: Path) -> None:
    index = EdgeIndex(tmp_path, vector_name="clip", dim=DIM, settings=IndexSettings())
    _loaded(index, Distance.euclid)
    index.close()
    again = EdgeIndex(tmp_path, vector_name="clip", dim=DIM, settings=IndexSettings())
    try:
        assert again.vector_specs()["mine"] == VectorSpec("mine", USER_DIM, Distance.euclid)
        hits = again.query(positive=[USER[4]], limit=3, using="mine")
        assert hits[0].id == IDS[4] and hits[0].score == pytest.approx(0.0, abs=1e-5)
        assert again.count(Filter(must=[HasVector("mine")])) == HELD
    finally:
        again.close()
