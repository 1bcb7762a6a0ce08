"""Classification evaluations on scikit-learn's digits and a small trained model: every number
equals scikit-learn called directly on the same pairs; outcomes, cells, slices, compare,
"more like these" and bad input."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from service.catalog.catalog import Catalog
from service.config import Settings
from service.errors import Conflict, InvalidQuery, LabelSetNotFound
from service.evals.compare import compare
from service.evals.runner import begin, delete, evaluation_public, run_now
from service.evals.schemas import EvaluationRequest, SimilarRequest, SliceChoice
from service.evals.similar import similar
from service.evals.store import EvaluationNotFound, EvaluationStore
from service.jobs.runner import cancel, execute
from service.labels.store import LabelSetStore
from service.schemas import MAX_EXAMPLES
from tests.fakes import FakeEncoder
from tests.unit.evals import scenes

N = 1500  # the rest of the digits stay unlabeled, for "more like these"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    settings = Settings(home=tmp_path_factory.mktemp("home"), _env_file=None)  # type: ignore[call-arg]
    catalog = Catalog(settings, encoder=FakeEncoder())
    vectors, truth, weak = scenes.digits(60)
    _, _, strong = scenes.digits(400)
    ids = scenes.add_points(catalog, vectors, scenes.digit_metas(len(truth)))
    scenes.label_set(
        catalog,
        "gt",
        role="ground_truth",
        task="classification",
        values=[(ids[i], {"label": truth[i], "score": None}) for i in range(N)],
    )
    for name, pred in (("weak", weak), ("strong", strong)):
        scenes.label_set(
            catalog,
            name,
            role="predictions",
            task="classification",
            values=[(ids[i], {"label": pred[i], "score": 0.9}) for i in range(len(ids))],
        )
    scenes.label_set(
        catalog, "boxes", role="predictions", task="detection", values=[(ids[0], scenes.detection_value([]))]
    )
    yield {"catalog": catalog, "ids": ids, "truth": truth[:N], "weak": weak[:N], "strong": strong[:N]}
    catalog.close()


def evaluate(world: dict[str, Any], **body: Any) -> dict[str, Any]:
    row = run_now(world["catalog"], EvaluationRequest(**body))
    out = evaluation_public(row).model_dump(mode="json")
    assert out["state"] == "succeeded", out
    return out


def sklearn_metrics(t: np.ndarray, p: np.ndarray) -> dict[str, float]:
    return {
        "accuracy": accuracy_score(t, p),
        "macro_f1": f1_score(t, p, average="macro", zero_division=0),
        "weighted_f1": f1_score(t, p, average="weighted", zero_division=0),
    }


def close(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert set(a) == set(b)
    for k in a:
        assert a[k] == pytest.approx(b[k], abs=1e-9), k


def test_overall_per_class_and_confusion_equal_scikit_learn(world):
    ev = evaluate(world, predictions="weak", ground_truth="gt")
    t, p = world["truth"], world["weak"]
    assert ev["counts"] == {"assets": N, "matched": N}
    assert (t != p).sum() > 50  # the model makes real mistakes
    close(ev["metrics"], sklearn_metrics(t, p))
    labels = sorted(set(t) | set(p))
    prec, rec, f1, sup = precision_recall_fscore_support(t, p, labels=labels, zero_division=0)
    assert list(ev["per_class"]) == labels
    for i, label in enumerate(labels):
        close(
            ev["per_class"][label], {"precision": prec[i], "recall": rec[i], "f1": f1[i], "support": sup[i]}
        )
    assert ev["confusion"]["labels"] == labels
    assert ev["confusion"]["matrix"] == confusion_matrix(t, p, labels=labels).tolist()


def test_wrong_assets_are_a_filter_and_every_cell_filter_selects_its_cell(world):
    catalog, ids = world["catalog"], world["ids"]
    ev = evaluate(world, predictions="weak", ground_truth="gt")
    wrong = {ids[i] for i in range(N) if world["truth"][i] != world["weak"][i]}
    listed, cursor = [], None
    while True:
        page, cursor = catalog.list_assets(
            filter={f"evals.{ev['id']}.correct": False}, limit=500, cursor=cursor
        )
        listed += [a["id"] for a in page]
        if cursor is None:
            break
    assert set(listed) == wrong and len(listed) == len(wrong)
    assert ev["outcomes"]["wrong"] == {f"evals.{ev['id']}.correct": False}
    conf = ev["confusion"]
    for i, row in enumerate(conf["matrix"]):
        for j, n in enumerate(row):
            assert catalog.count(conf["filters"][i][j]) == n, (conf["labels"][i], conf["labels"][j])


def test_under_a_filter_and_per_slice(world):
    t, p = world["truth"], world["weak"]
    metas = scenes.digit_metas(N)
    ev = evaluate(
        world,
        predictions="weak",
        ground_truth="gt",
        filter={"site": "north"},
        slice_by=["hour", "night", "site"],
    )
    north = np.array([m["site"] == "north" for m in metas])
    assert ev["counts"]["matched"] == int(north.sum())
    close(ev["metrics"], sklearn_metrics(t[north], p[north]))
    by_field: dict[str, list[Any]] = {}
    for s in ev["slices"]:
        by_field.setdefault(s["field"], []).append(s["value"])
        members = north & np.array(
            [m[s["field"]] == s["value"] and type(m[s["field"]]) is type(s["value"]) for m in metas]
        )
        assert s["count"] == int(members.sum())
        close(s["metrics"], sklearn_metrics(t[members], p[members]))
    assert sorted(by_field["hour"]) == [0, 1, 2, 3]
    assert sorted(by_field["night"]) == [False, True]
    assert by_field["site"] == ["north"]


def test_compare_gives_deltas_and_the_fixed_and_broken_assets(world):
    catalog = world["catalog"]
    a = evaluate(world, predictions="weak", ground_truth="gt", slice_by=["site"])
    b = evaluate(world, predictions="strong", ground_truth="gt", slice_by=["site"])
    cmp = compare(catalog, a["id"], b["id"]).model_dump(mode="json")
    t, pa, pb = world["truth"], world["weak"], world["strong"]
    for k, v in sklearn_metrics(t, pb).items():
        assert cmp["metrics"][k] == pytest.approx(v - sklearn_metrics(t, pa)[k], abs=1e-9)
    assert cmp["per_class"]["3"]["f1"] == pytest.approx(
        b["per_class"]["3"]["f1"] - a["per_class"]["3"]["f1"], abs=1e-12
    )
    assert {s["value"] for s in cmp["slices"]} == set(scenes.SITES)
    fixed, broken = int(((t != pa) & (t == pb)).sum()), int(((t == pa) & (t != pb)).sum())
    assert fixed > broken > 0
    assert cmp["fixed"]["count"] == fixed and catalog.count(cmp["fixed"]["filter"]) == fixed
    assert cmp["broken"]["count"] == broken


def test_more_like_a_cell_searches_unlabeled_assets_by_its_most_typical_errors(world):
    catalog, ids = world["catalog"], world["ids"]
    ev = evaluate(world, predictions="weak", ground_truth="gt", slice_by=["site"])
    matrix, labels = ev["confusion"]["matrix"], ev["confusion"]["labels"]
    # The largest off-diagonal cell.
    n, i, j = max((matrix[i][j], i, j) for i in range(len(labels)) for j in range(len(labels)) if i != j)
    out = similar(catalog, ev["id"], SimilarRequest(cell=[labels[i], labels[j]], limit=30)).model_dump(
        mode="json"
    )
    cell_ids = {ids[k] for k in range(N) if world["truth"][k] == labels[i] and world["weak"][k] == labels[j]}
    assert out["errors"] == n == len(cell_ids)
    assert set(out["search"]["like"]) <= cell_ids and out["examples"] == min(n, MAX_EXAMPLES)
    assert out["search"]["filter"] == {
        "and": [{"not": {"labels.gt.label": {"exists": True}}}, {"status": "ok"}]
    }
    unlabeled = set(ids[N:])
    assert out["hits"] and {h["id"] for h in out["hits"]} <= unlabeled
    wrong_north = similar(
        catalog, ev["id"], SimilarRequest(slice=SliceChoice(field="site", value="north"), limit=5)
    )
    north_wrong = {ids[k] for k in range(0, N, 3) if world["truth"][k] != world["weak"][k]}
    assert wrong_north.errors == len(north_wrong) and set(wrong_north.search.like) <= north_wrong


@pytest.mark.parametrize(
    ("body", "error", "names"),
    [
        ({"predictions": "nope", "ground_truth": "gt"}, LabelSetNotFound, "nope"),
        ({"predictions": "gt", "ground_truth": "weak"}, InvalidQuery, "predictions"),
        ({"predictions": "weak", "ground_truth": "strong"}, InvalidQuery, "ground_truth"),
        ({"predictions": "boxes", "ground_truth": "gt"}, InvalidQuery, "detection"),
        ({"predictions": "weak", "ground_truth": "gt", "iou": 0.0}, InvalidQuery, "iou"),
        ({"predictions": "weak", "ground_truth": "gt", "iou": 1.5}, InvalidQuery, "iou"),
        ({"predictions": "weak", "ground_truth": "gt", "slice_by": ["weather"]}, InvalidQuery, "weather"),
        (
            {"predictions": "weak", "ground_truth": "gt", "filter": {"site": "mars"}},
            InvalidQuery,
            "no asset in common",
        ),
        (
            {"predictions": "weak", "ground_truth": "gt", "filter": {"site": {"near": 1}}},
            InvalidQuery,
            "site.near",
        ),
    ],
)
def test_bad_requests_name_the_problem_and_write_nothing(world, body, error, names):
    catalog = world["catalog"]
    before = (len(EvaluationStore(catalog.state).list(limit=500)), len(catalog.jobs.list(limit=500)))
    with pytest.raises(error) as caught:
        begin(catalog, EvaluationRequest(**body))
    assert names in caught.value.detail
    assert (len(EvaluationStore(catalog.state).list(limit=500)), len(catalog.jobs.list(limit=500))) == before


def test_compare_needs_one_ground_truth_and_finished_evaluations(world):
    catalog, ids = world["catalog"], world["ids"]
    a = evaluate(world, predictions="weak", ground_truth="gt")
    scenes.label_set(
        catalog,
        "gt2",
        role="ground_truth",
        task="classification",
        values=[(ids[i], {"label": world["truth"][i]}) for i in range(100)],
    )
    other = evaluate(world, predictions="weak", ground_truth="gt2")
    with pytest.raises(InvalidQuery, match="same ground truth"):
        compare(catalog, a["id"], other["id"])
    queued = begin(catalog, EvaluationRequest(predictions="strong", ground_truth="gt"))
    with pytest.raises(Conflict, match="queued"):
        compare(catalog, a["id"], queued.id)
    with pytest.raises(InvalidQuery, match="cell\\[1\\]"):
        similar(catalog, a["id"], SimilarRequest(cell=["3", "thirty"]))
    with pytest.raises(InvalidQuery, match="not sliced by"):
        similar(catalog, a["id"], SimilarRequest(slice=SliceChoice(field="site", value="north")))
    cancel(catalog, queued.id)  # queued, so closed at once
    assert EvaluationStore(catalog.state).get(queued.id).state == "cancelled"


def test_an_evaluation_is_deleted_only_once_its_job_has_ended(world):
    """Queued or running: a 409 saying to wait or cancel; cancelled or succeeded: deleted, with
    its outcome fields and their payload indexes, and another evaluation's kept."""
    catalog = world["catalog"]
    kept = evaluate(world, predictions="strong", ground_truth="gt")
    for here, state in ((False, "queued"), (True, "running")):
        row = begin(catalog, EvaluationRequest(predictions="weak", ground_truth="gt"), here=here)
        assert catalog.jobs.get(row.id).state == state
        with pytest.raises(Conflict, match=f"is {state}; wait for it to finish, or cancel it"):
            delete(catalog, row.id)
        assert EvaluationStore(catalog.state).get(row.id).id == row.id  # kept
        if here:
            assert execute(catalog, catalog.jobs.get(row.id)).state == "succeeded"
            assert catalog.count({f"evals.{row.id}.correct": {"exists": True}}) == N
        else:
            cancel(catalog, row.id)
        delete(catalog, row.id)
        with pytest.raises(EvaluationNotFound, match=row.id):
            EvaluationStore(catalog.state).get(row.id)
        assert not [k for k in catalog.index.indexed_fields() if k.startswith(f"evals.{row.id}")]
        assert catalog.count({f"evals.{row.id}.correct": {"exists": True}}) == 0
    assert catalog.count({f"evals.{kept['id']}.correct": {"exists": True}}) == N
    assert f"evals.{kept['id']}.correct" in catalog.index.indexed_fields()
    with pytest.raises(EvaluationNotFound, match="nope"):
        delete(catalog, "nope")


@pytest.mark.parametrize("ending", ["cancelled", "failed"])
def test_a_write_that_ends_badly_leaves_no_outcome_fields(world, monkeypatch, ending):
    """The outcomes are written by a worker thread while the slices are scored: a cancel seen
    meanwhile, or the write's own error, ends the job only after the worker has stopped, and
    the fields are cleared after its last write (none is left behind)."""
    catalog = world["catalog"]
    row = begin(
        catalog, EvaluationRequest(predictions="weak", ground_truth="gt", slice_by=["site"]), here=True
    )
    original = catalog.index.set_payload

    def slow_write(ids, payload, *, key=None):
        if ending == "failed":
            raise RuntimeError("the disk is full")
        catalog.jobs.cancel(row.id)  # seen by the job's next report, while this write runs
        time.sleep(0.7)
        original(ids, payload, key=key)

    monkeypatch.setattr(catalog.index, "set_payload", slow_write)
    job = execute(catalog, catalog.jobs.get(row.id))
    monkeypatch.undo()
    assert job.state == ending, job.detail
    if ending == "failed":
        assert "the disk is full" in (job.detail or "")
    assert EvaluationStore(catalog.state).get(row.id).state == ending
    assert catalog.count({f"evals.{row.id}.correct": {"exists": True}}) == 0
    assert not [k for k in catalog.index.indexed_fields() if k.startswith(f"evals.{row.id}")]


def test_an_evaluation_that_does_not_succeed_leaves_no_outcome_fields(world):
    # Last in this module: it removes a set the others use.
    catalog = world["catalog"]
    row = begin(catalog, EvaluationRequest(predictions="weak", ground_truth="gt"), here=True)
    # The job's predictions set is removed before it runs: it fails, and writes nothing.
    LabelSetStore(catalog.state).remove("weak")
    job = execute(catalog, catalog.jobs.get(row.id))
    assert job.state == "failed" and "weak" in (job.detail or "")
    assert EvaluationStore(catalog.state).get(row.id).state == "failed"
    assert catalog.count({f"evals.{row.id}.correct": {"exists": True}}) == 0


def test_clearing_an_evaluation_removes_its_fields_and_their_payload_indexes(world):
    from types import SimpleNamespace

    from service.evals import outcomes

    index, ids = world["catalog"].index, world["ids"][:10]
    plan = SimpleNamespace(evaluation_id="cleared", task="classification")
    grouped = [({"correct": True}, [0, 2, 4, 6, 8]), ({"correct": False}, [1, 3, 5, 7, 9])]
    outcomes.write(index, plan, ids, grouped)  # type: ignore[arg-type]
    assert "evals.cleared.correct" in index.indexed_fields()
    assert world["catalog"].count({"evals.cleared.correct": False}) == 5
    outcomes.clear(index, "cleared")
    assert "evals.cleared.correct" not in index.indexed_fields()
    assert world["catalog"].count({"evals.cleared.correct": {"exists": True}}) == 0
