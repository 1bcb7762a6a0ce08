"""Detection evaluations on synthetic shape scenes and a rule-based box predictor: mAP, mAP@.5,
per-class AP and per-asset tp/fp/fn equal pycocotools (the reference implementation) and
faster-coco-eval called directly on the same boxes."""

from __future__ import annotations

import contextlib
import copy
import io
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from faster_coco_eval import COCO as FastCOCO
from faster_coco_eval import COCOeval_faster
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from service.catalog.catalog import Catalog
from service.config import Settings
from service.evals.compare import compare
from service.evals.runner import evaluation_public, run_now
from service.evals.schemas import EvaluationRequest, SimilarRequest, SliceChoice
from service.evals.similar import similar
from tests.fakes import FakeEncoder
from tests.unit.evals import scenes

N = 120


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    settings = Settings(home=tmp_path_factory.mktemp("home"), _env_file=None)  # type: ignore[call-arg]
    catalog = Catalog(settings, encoder=FakeEncoder())
    truth = scenes.scene_boxes(N + 30)
    rng = np.random.default_rng(1)
    metas = [{"site": scenes.SITES[i % 3]} for i in range(N + 30)]
    ids = scenes.add_points(catalog, rng.normal(size=(N + 30, 48)), metas)
    runs = {
        "rough": scenes.predict_boxes(truth, seed=2, drop=0.25),
        "fine": scenes.predict_boxes(truth, seed=3, drop=0.05),
    }
    scenes.label_set(
        catalog,
        "boxes",
        role="ground_truth",
        task="detection",
        values=[(ids[i], scenes.detection_value(truth[i])) for i in range(N)],
    )
    for name, pred in runs.items():
        scenes.label_set(
            catalog,
            name,
            role="predictions",
            task="detection",
            values=[(ids[i], scenes.detection_value(pred[i])) for i in range(N + 30)],
        )
    yield {"catalog": catalog, "ids": ids, "truth": truth[:N], "runs": {k: v[:N] for k, v in runs.items()}}
    catalog.close()


def coco_json(
    truth: list[list[dict[str, Any]]], pred: list[list[dict[str, Any]]]
) -> tuple[dict[str, Any], list[dict[str, Any]], list[str]]:
    classes = sorted({b["label"] for boxes in (*truth, *pred) for b in boxes})
    cat = {c: i + 1 for i, c in enumerate(classes)}
    gts = [
        {
            "id": k,
            "image_id": img,
            "category_id": cat[b["label"]],
            "bbox": b["bbox"],
            "area": b["bbox"][2] * b["bbox"][3],
            "iscrowd": 0,
        }
        for k, (img, b) in enumerate(((i + 1, b) for i, boxes in enumerate(truth) for b in boxes), start=1)
    ]
    dts = [
        {"image_id": i + 1, "category_id": cat[b["label"]], "bbox": b["bbox"], "score": b["score"]}
        for i, boxes in enumerate(pred)
        for b in boxes
    ]
    gt = {
        "images": [{"id": i + 1} for i in range(len(truth))],
        "categories": [{"id": v, "name": k} for k, v in cat.items()],
        "annotations": gts,
    }
    return gt, dts, classes


def pycoco(gt: dict[str, Any], dts: list[dict[str, Any]], *, iou: float | None = None) -> COCOeval:
    with contextlib.redirect_stdout(io.StringIO()):
        g = COCO()
        g.dataset = copy.deepcopy(gt)
        g.createIndex()
        ev = COCOeval(g, g.loadRes(copy.deepcopy(dts)), "bbox")
        if iou is not None:
            ev.params.iouThrs = np.array([iou])
            ev.params.areaRng, ev.params.areaRngLbl, ev.params.maxDets = [[0, 1e10]], ["all"], [100]
        ev.evaluate()
        if iou is None:
            ev.accumulate()
            ev.summarize()
    return ev


def per_image_counts(ev: COCOeval, images: int) -> list[tuple[int, int, int]]:
    counts = [[0, 0, 0] for _ in range(images)]
    for e in ev.evalImgs:
        if e is None:
            continue
        dm, di, gm, gi = (
            e["dtMatches"][0],
            e["dtIgnore"][0],
            e["gtMatches"][0],
            np.asarray(e["gtIgnore"], bool),
        )
        c = counts[e["image_id"] - 1]
        c[0] += int(((dm > 0) & ~di).sum())
        c[1] += int(((dm == 0) & ~di).sum())
        c[2] += int(((gm == 0) & ~gi).sum())
    return [tuple(c) for c in counts]  # type: ignore[misc]


def evaluate(world: dict[str, Any], **body: Any) -> dict[str, Any]:
    out = evaluation_public(run_now(world["catalog"], EvaluationRequest(**body))).model_dump(mode="json")
    assert out["state"] == "succeeded", out
    return out


@pytest.mark.parametrize("iou", [0.5, 0.75])
def test_map_ap_and_counts_equal_pycocotools_and_faster_coco_eval(world, iou):
    ev = evaluate(world, predictions="rough", ground_truth="boxes", iou=iou)
    gt, dts, classes = coco_json(world["truth"], world["runs"]["rough"])
    ref = pycoco(gt, dts)
    assert ev["metrics"]["map"] == pytest.approx(ref.stats[0], abs=1e-9)
    assert ev["metrics"]["map_50"] == pytest.approx(ref.stats[1], abs=1e-9)
    for k, name in enumerate(classes):
        p = ref.eval["precision"][:, :, k, 0, -1]
        assert ev["per_class"][name]["ap"] == pytest.approx(float(np.mean(p[p > -1])), abs=1e-9)
    # faster-coco-eval on its own agrees with the reference too (Loupe runs it, this is a check of it).
    fast = COCOeval_faster(
        FastCOCO(copy.deepcopy(gt)),
        FastCOCO(copy.deepcopy(gt)).loadRes(copy.deepcopy(dts)),
        "bbox",
        print_function=lambda *_: None,
    )
    fast.evaluate()
    fast.accumulate()
    fast.summarize()
    assert fast.stats[:2] == pytest.approx(ref.stats[:2], abs=1e-12)
    counts = per_image_counts(pycoco(gt, dts, iou=iou), N)
    tp, fp, fn = (sum(c[i] for c in counts) for i in range(3))
    assert (ev["metrics"]["tp"], ev["metrics"]["fp"], ev["metrics"]["fn"]) == (tp, fp, fn)
    assert fp > 0 and fn > 0 and tp > 0
    assert ev["metrics"]["precision"] == pytest.approx(tp / (tp + fp), abs=1e-12)
    catalog, ids = world["catalog"], world["ids"]
    key = f"evals.{ev['id']}"
    for i in (0, 7, 33, 101):
        got = catalog.get_asset(ids[i])["evals"][ev["id"]]
        assert (got["tp"], got["fp"], got["fn"]) == counts[i]
    clean = {i for i, c in enumerate(counts) if c[1] == 0 and c[2] == 0}
    assert catalog.count({f"{key}.fp": 0, f"{key}.fn": 0}) == len(clean)
    assert catalog.count(ev["outcomes"]["wrong"]) == N - len(clean)


def test_slices_run_coco_on_their_images(world):
    ev = evaluate(world, predictions="rough", ground_truth="boxes", slice_by=["site"])
    for s in ev["slices"]:
        members = [i for i in range(N) if scenes.SITES[i % 3] == s["value"]]
        gt, dts, _ = coco_json(
            [world["truth"][i] for i in members], [world["runs"]["rough"][i] for i in members]
        )
        ref = pycoco(gt, dts)
        assert s["count"] == len(members)
        assert s["metrics"]["map"] == pytest.approx(ref.stats[0], abs=1e-9)
        assert s["metrics"]["map_50"] == pytest.approx(ref.stats[1], abs=1e-9)


def test_compare_detection_runs_and_more_like_a_slice(world):
    catalog = world["catalog"]
    a = evaluate(world, predictions="rough", ground_truth="boxes", slice_by=["site"])
    b = evaluate(world, predictions="fine", ground_truth="boxes", slice_by=["site"])
    cmp = compare(catalog, a["id"], b["id"]).model_dump(mode="json")
    assert cmp["metrics"]["map"] == pytest.approx(b["metrics"]["map"] - a["metrics"]["map"], abs=1e-12)
    assert cmp["metrics"]["fn"] == b["metrics"]["fn"] - a["metrics"]["fn"] < 0
    assert cmp["fixed"]["count"] == catalog.count(cmp["fixed"]["filter"]) > 0
    assert "fp or fn" in cmp["definition"]
    out = similar(catalog, a["id"], SimilarRequest(slice=SliceChoice(field="site", value="east"), limit=10))
    assert out.search.filter == {"and": [{"not": {"labels.boxes.count": {"exists": True}}}, {"status": "ok"}]}
    assert {h.id for h in out.hits} <= set(world["ids"][N:])
    # A detection confusion cell works too: unlabeled images like those holding its box pairs.
    labels, matrix = a["confusion"]["labels"], a["confusion"]["matrix"]
    i, j = next((i, j) for i in range(len(labels) - 1) for j in range(len(labels)) if i != j and matrix[i][j])
    cell = similar(catalog, a["id"], SimilarRequest(cell=[labels[i], labels[j]], limit=10))
    assert cell.errors == catalog.count(a["confusion"]["filters"][i][j]) > 0
    assert cell.hits and {h.id for h in cell.hits} <= set(world["ids"][N:])
