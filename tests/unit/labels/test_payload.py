"""The storage contract of label sets: values, uncertainty (checked against scipy), the writer on
both index backends, and the reserved filter roots."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import entropy as scipy_entropy

from service.config import IndexSettings
from service.index.base import FieldType, Point, VectorIndex
from service.index.edge import EdgeIndex
from service.index.filters import field_key, parse_filter
from service.index.server import ServerIndex
from service.labels import payload
from service.labels.records import AssetRef, Record

NOW = "2026-01-01T00:00:00Z"


def _rec(**kw: object) -> Record:
    return Record(where="line 1", ref=AssetRef(asset_id="x"), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "probs", [[0.7, 0.2, 0.1], [0.25, 0.25, 0.25, 0.25], [0.999, 0.001], [1.0, 0.0, 0.0]]
)
def test_uncertainty_from_a_probability_vector_matches_scipy(probs: list[float]) -> None:
    scores = {f"c{i}": p for i, p in enumerate(probs)}
    value = payload.value_of(
        _rec(label="c0", scores=scores), task="classification", predictions=True, imported_at=NOW
    )
    p = np.sort(np.asarray(probs))[::-1]
    assert value["least_confidence"] == pytest.approx(1 - p[0], abs=1e-12)
    assert value["margin"] == pytest.approx(p[0] - p[1], abs=1e-12)
    assert value["entropy"] == pytest.approx(scipy_entropy(probs) / math.log(len(probs)), abs=1e-12)
    assert value["scores"] == scores and value["label"] == "c0" and value["imported_at"] == NOW


def test_uncertainty_from_one_score_is_the_binary_view() -> None:
    value = payload.value_of(
        _rec(label="cat", score=0.8), task="classification", predictions=True, imported_at=NOW
    )
    assert value["least_confidence"] == pytest.approx(0.2)
    assert value["margin"] == pytest.approx(0.6)
    assert value["entropy"] == pytest.approx(scipy_entropy([0.8, 0.2], base=2))
    assert "scores" not in value


def test_ground_truth_has_no_uncertainty_fields() -> None:
    value = payload.value_of(
        _rec(label="cat", score=0.8), task="classification", predictions=False, imported_at=NOW
    )
    assert set(value) == {"label", "score", "imported_at"}


def test_detection_aggregates_over_the_scored_boxes() -> None:
    boxes = [
        {"label": "dog", "score": 0.9, "bbox": [0, 0, 5, 5]},
        {"label": "cat", "score": 0.55, "bbox": [1, 1, 2, 2]},
        {"label": "dog", "score": 0.3, "bbox": [2, 2, 2, 2]},
    ]
    value = payload.value_of(_rec(boxes=boxes), task="detection", predictions=True, imported_at=NOW)
    assert value["classes"] == ["cat", "dog"] and value["count"] == 3 and value["label"] is None
    assert value["score"] == 0.9
    assert value["least_confidence"] == pytest.approx(0.7)
    assert value["margin"] == pytest.approx(0.1)
    mean = np.mean([scipy_entropy([s, 1 - s], base=2) for s in (0.9, 0.55, 0.3)])
    assert value["entropy"] == pytest.approx(mean)
    empty = payload.value_of(_rec(boxes=[]), task="detection", predictions=True, imported_at=NOW)
    assert empty["count"] == 0 and empty["classes"] == [] and "entropy" not in empty


def test_reserved_roots_reach_the_payload_and_meta_keeps_the_name() -> None:
    for name in (
        "labels.gt.label",
        "evals.e1.correct",
        "signals.uniqueness",
        "selections",
        "exports.project",
    ):
        assert field_key(name) == name
    assert field_key("meta.labels") == "meta.labels"
    assert field_key("label") == "meta.label"


# -- the writer, on both backends -------------------------------------------------------

DIM = 4
IDS = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"labels-test/{i}")) for i in range(30)]


@pytest.fixture(params=["edge", "local"])
def index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorIndex]:
    if request.param == "edge":
        idx: VectorIndex = EdgeIndex(tmp_path / "edge", vector_name="v", dim=DIM, settings=IndexSettings())
    else:
        idx = ServerIndex(
            ":memory:", api_key=None, collection="t", vector_name="v", dim=DIM, settings=IndexSettings()
        )
    vec = np.asarray([1, 0, 0, 0], dtype=np.float32)
    idx.upsert(
        [
            Point(id=i, vector=vec, payload={"source": "s", "key": f"k{n}", "meta": {}})
            for n, i in enumerate(IDS)
        ]
    )
    yield idx
    idx.close()


def test_write_replaces_one_set_and_keeps_the_others(index: VectorIndex) -> None:
    payload.ensure_indexes(index, "gt")
    assert index.indexed_fields()["labels.gt.score"] is FieldType.float
    payload.write(
        index,
        "gt",
        [(i, {"label": f"c{n % 3}", "score": n / 30, "imported_at": NOW}) for n, i in enumerate(IDS)],
    )
    payload.write(index, "pred", [(IDS[0], {"label": "z", "score": None, "imported_at": NOW})])
    payload.write(index, "gt", [(IDS[0], {"label": "again", "score": None, "imported_at": NOW})])
    first = index.retrieve([IDS[0]])[0].payload
    assert first["labels"] == {
        "gt": {"label": "again", "score": None, "imported_at": NOW},
        "pred": {"label": "z", "score": None, "imported_at": NOW},
    }
    assert first["source"] == "s"  # the rest of the payload is untouched
    assert index.count(parse_filter({"labels.gt.label": "c1"})) == 10
    assert index.count(parse_filter({"labels.gt.score": {"gte": 0.5}})) == 15
    assert payload.holders(index, "gt") == 30
    # An id that is not (or no longer) in the index is skipped, not an error.
    payload.write(index, "gt", [(str(uuid.uuid4()), {"label": "x", "imported_at": NOW})])


def test_remove_set_deletes_only_that_set(index: VectorIndex) -> None:
    payload.write(index, "gt", [(i, {"label": "a", "imported_at": NOW}) for i in IDS])
    payload.write(index, "pred", [(i, {"label": "b", "imported_at": NOW}) for i in IDS[:5]])
    payload.remove_set(index, "gt")
    assert payload.holders(index, "gt") == 0 and payload.holders(index, "pred") == 5
    assert index.retrieve([IDS[0]])[0].payload["labels"] == {"pred": {"label": "b", "imported_at": NOW}}
    assert index.retrieve([IDS[9]])[0].payload.get("labels") in ({}, None)


def test_a_removed_set_takes_its_payload_indexes_along_and_a_new_one_gets_them_anew(
    index: VectorIndex, tmp_path: Path
) -> None:
    payload.ensure_indexes(index, "gt")
    payload.write(index, "gt", [(i, {"label": "a", "imported_at": NOW}) for i in IDS])
    assert set(payload.field_types("gt")) <= set(index.indexed_fields())
    payload.remove_set(index, "gt")
    assert not set(payload.field_types("gt")) & set(index.indexed_fields())
    if isinstance(index, EdgeIndex):  # the engine forgot them too, not only this process
        index.close()
        again = EdgeIndex(tmp_path / "edge", vector_name="v", dim=DIM, settings=IndexSettings())
        assert not set(payload.field_types("gt")) & set(again.indexed_fields())
        index = again
    payload.ensure_indexes(index, "gt")
    payload.write(index, "gt", [(i, {"label": "b", "imported_at": NOW}) for i in IDS[:3]])
    assert payload.holders(index, "gt") == 3
    assert index.count(parse_filter({"labels.gt.label": "b"})) == 3
    index.close()


def test_clearing_a_set_removes_its_values_and_keeps_its_indexes(index: VectorIndex) -> None:
    payload.ensure_indexes(index, "lf")
    payload.write(index, "lf", [(i, {"label": "a", "imported_at": NOW}) for i in IDS])
    payload.write(index, "gt", [(i, {"label": "b", "imported_at": NOW}) for i in IDS[:5]])
    payload.clear_set(index, "lf")
    assert payload.holders(index, "lf") == 0 and payload.holders(index, "gt") == 5
    assert set(payload.field_types("lf")) <= set(index.indexed_fields())
