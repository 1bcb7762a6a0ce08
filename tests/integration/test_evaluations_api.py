"""Evaluations through the REST API alone (and `loupe eval` against it): label sets imported the
way users import them, numbers equal to scikit-learn and pycocotools on the same pairs, wrong
assets as a filter, compare, more like a cell ready to export, and refused requests."""

from __future__ import annotations

import contextlib
import copy
import functools
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from service import cli
from service.catalog.catalog import Catalog
from service.config import Settings
from service.synth import SHAPES, write_dataset
from tests.conftest import LiveServer
from tests.fakes import FakeEncoder
from tests.jobs import wait_job as wait_ended
from tests.unit.evals import scenes

N = 48
HARD = ("noisy", "striped")  # the rule-based model misreads shapes on these backgrounds


def model(shape: str, background: str, *, hard: tuple[str, ...]) -> str:
    return (
        SHAPES[(SHAPES.index(shape) + 1) % len(SHAPES)] if background in hard and shape in SHAPES else shape
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("shapes")
    write_dataset(root / "shapes", N, seed=11, size=64, edge_cases=False)
    write_dataset(root / "more", 12, seed=12, size=64, edge_cases=False)
    boxes = scenes.write_scenes(root / "scenes", 30, seed=4, size=96)
    settings = Settings(home=tmp_path_factory.mktemp("home"), _env_file=None)  # type: ignore[call-arg]
    catalog = Catalog(settings, encoder=FakeEncoder())
    for name in ("shapes", "scenes"):
        catalog.add_source(name, "local", {"path": str(root / name)})
        assert catalog.sync(name).state == "succeeded"
    from service.api.app import create_app

    with (
        LiveServer(create_app(settings, catalog=catalog)) as server,
        httpx.Client(base_url=f"{server.url}/api/v1", timeout=60) as client,
    ):
        yield {"client": client, "catalog": catalog, "root": root, "boxes": boxes, "url": server.url}
    catalog.close()


wait_job = functools.partial(wait_ended, succeeded=True)


def create_set(client: httpx.Client, name: str, role: str, task: str) -> None:
    resp = client.post("/labelsets", json={"name": name, "role": role, "task": task})
    assert resp.status_code == 201, resp.text


def upload(client: httpx.Client, name: str, data: bytes, fmt: str, source: str) -> dict[str, Any]:
    resp = client.post(
        f"/labelsets/{name}/annotations", files={"file": ("f", data)}, data={"format": fmt, "source": source}
    )
    assert resp.status_code == 202, resp.text
    return wait_job(client, resp.json())


def evaluate(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    resp = client.post("/evaluations", json=body)
    assert resp.status_code == 202, resp.text
    ev = resp.json()
    assert ev["state"] == "queued" and ev["job_id"] == ev["id"]
    deadline = time.monotonic() + 60
    while ev["state"] in ("queued", "running"):
        assert time.monotonic() < deadline, ev
        time.sleep(0.05)
        ev = client.get(f"/evaluations/{ev['id']}").json()
    assert ev["state"] == "succeeded", ev
    return ev


def sidecars(root: Path) -> dict[str, dict[str, Any]]:
    return {p.name[: -len(".json")]: json.loads(p.read_text()) for p in sorted(root.glob("*.json"))}


@pytest.fixture(scope="module")
def classified(world: dict[str, Any]) -> dict[str, Any]:
    client = world["client"]
    create_set(client, "shape", "ground_truth", "classification")
    job = wait_job(client, client.post("/labelsets/shape/annotations", json={"from_field": "shape"}).json())
    assert job["counts"]["imported"] == N
    meta = sidecars(world["root"] / "shapes")
    runs = {}
    for name, hard in (("m1", HARD), ("m2", HARD[1:])):
        create_set(client, name, "predictions", "classification")
        lines = [
            json.dumps(
                {
                    "source": "shapes",
                    "key": key,
                    "label": model(m["shape"], m["background"], hard=hard),
                    "score": 0.8,
                }
            )
            for key, m in meta.items()
        ]
        upload(client, name, "\n".join(lines).encode(), "loupe", "shapes")
        runs[name] = {key: model(m["shape"], m["background"], hard=hard) for key, m in meta.items()}
    # Synced after the ground truth was imported: these assets are unlabeled.
    world["catalog"].add_source("more", "local", {"path": str(world["root"] / "more")})
    assert world["catalog"].sync("more").state == "succeeded"
    return {"meta": meta, "runs": runs}


def ids_of(client: httpx.Client, flt: dict[str, Any]) -> list[str]:
    resp = client.get("/assets", params={"filter": json.dumps(flt), "limit": 1000})
    assert resp.status_code == 200, resp.text
    return [a["key"] for a in resp.json()["data"]]


def test_classification_numbers_equal_scikit_learn_and_wrong_assets_are_a_filter(world, classified):
    client, meta = world["client"], classified["meta"]
    ev = evaluate(
        client, {"predictions": "m1", "ground_truth": "shape", "slice_by": ["site", "background", "split"]}
    )
    keys = sorted(meta)
    t = np.array([meta[k]["shape"] for k in keys])
    p = np.array([classified["runs"]["m1"][k] for k in keys])
    assert ev["counts"] == {"assets": N, "matched": N}
    assert ev["metrics"]["accuracy"] == pytest.approx(accuracy_score(t, p), abs=1e-9)
    assert ev["metrics"]["macro_f1"] == pytest.approx(f1_score(t, p, average="macro"), abs=1e-9)
    assert ev["metrics"]["weighted_f1"] == pytest.approx(f1_score(t, p, average="weighted"), abs=1e-9)
    labels = ev["confusion"]["labels"]
    assert ev["confusion"]["matrix"] == confusion_matrix(t, p, labels=labels).tolist()
    prec, rec, _, sup = precision_recall_fscore_support(t, p, labels=labels, zero_division=0)
    for i, label in enumerate(labels):
        assert ev["per_class"][label]["precision"] == pytest.approx(prec[i], abs=1e-9)
        assert ev["per_class"][label]["recall"] == pytest.approx(rec[i], abs=1e-9)
        assert ev["per_class"][label]["support"] == sup[i]
    wrong = sorted(k for k in keys if meta[k]["shape"] != classified["runs"]["m1"][k])
    assert wrong and sorted(ids_of(client, {f"evals.{ev['id']}.correct": False})) == wrong
    # A cell's filter lists its assets; slices come one per value.
    i, j = next(
        (i, j)
        for i in range(len(labels))
        for j in range(len(labels))
        if i != j and ev["confusion"]["matrix"][i][j]
    )
    assert len(ids_of(client, ev["confusion"]["filters"][i][j])) == ev["confusion"]["matrix"][i][j]
    backgrounds = {s["value"]: s for s in ev["slices"] if s["field"] == "background"}
    assert set(backgrounds) == {m["background"] for m in meta.values()}
    for bg, s in backgrounds.items():
        members = [k for k in keys if meta[k]["background"] == bg]
        assert s["count"] == len(members)
        expected = accuracy_score(
            [meta[k]["shape"] for k in members], [classified["runs"]["m1"][k] for k in members]
        )
        assert s["metrics"]["accuracy"] == pytest.approx(expected, abs=1e-9)
    job = client.get(f"/jobs/{ev['id']}").json()
    assert job["kind"] == "evaluation" and job["counts"] == {"assets": N, "matched": N}
    assert ev["id"] in [e["id"] for e in client.get("/evaluations").json()["data"]]
    asset = client.get("/assets", params={"filter": json.dumps({"key": wrong[0]})}).json()["data"][0]
    assert asset["evals"][ev["id"]] == {"correct": False}


def test_fields_list_the_label_sets_and_evaluations_fields(world, classified):
    """GET /fields names the fields the sets and evaluations write (the filter sidebar's controls),
    typed as indexed, by each set's task and role, and no longer once a set is removed."""
    client = world["client"]
    ev = evaluate(client, {"predictions": "m1", "ground_truth": "shape"})
    fields = {f["name"]: f for f in client.get("/fields").json()["data"]}
    gt, pr = fields["labels.shape.label"], fields["labels.m1.label"]
    outcome = fields[f"evals.{ev['id']}.correct"]
    assert gt["type"] == pr["type"] == "keyword" and gt["facetable"] and gt["derived"] and not gt["builtin"]
    assert gt["label"] == "labels.shape.label" and gt["distinct"] == len(SHAPES)
    for leaf in ("score", "margin", "entropy", "least_confidence"):
        assert fields[f"labels.m1.{leaf}"]["type"] == "float", leaf
        assert f"labels.shape.{leaf}" not in fields  # ground truth has no uncertainty
    assert "labels.m1.count" not in fields and "labels.m1.classes" not in fields  # detection only
    assert outcome["type"] == "bool" and outcome["facetable"] and outcome["indexed"]
    # Each one filters as listed.
    wrong = client.get("/assets/count", params={"filter": json.dumps({outcome["name"]: False})}).json()
    assert wrong["count"] == round(N * (1 - ev["metrics"]["accuracy"]))
    sure = {"labels.m1.margin": {"gte": 0.6}}  # score 0.8: margin |2p - 1| = 0.6 on every asset
    assert client.get("/assets/count", params={"filter": json.dumps(sure)}).json()["count"] == N
    create_set(client, "gone", "predictions", "detection")
    names = {f["name"] for f in client.get("/fields").json()["data"]}
    assert {"labels.gone.classes", "labels.gone.count", "labels.gone.margin"} <= names
    assert client.delete("/labelsets/gone").status_code == 204
    assert not any(f["name"].startswith("labels.gone.") for f in client.get("/fields").json()["data"])


def test_compare_and_more_like_a_cell_ready_to_export(world, classified):
    client, meta = world["client"], classified["meta"]
    a = evaluate(client, {"predictions": "m1", "ground_truth": "shape", "slice_by": ["background"]})
    b = evaluate(client, {"predictions": "m2", "ground_truth": "shape", "slice_by": ["background"]})
    cmp = client.post("/evaluations/compare", json={"a": a["id"], "b": b["id"]}).json()
    assert cmp["metrics"]["accuracy"] == pytest.approx(
        b["metrics"]["accuracy"] - a["metrics"]["accuracy"], abs=1e-12
    )
    noisy = sorted(k for k, m in meta.items() if m["background"] == "noisy" and m["shape"] in SHAPES)
    assert cmp["fixed"]["count"] == len(noisy) > 0 and cmp["broken"]["count"] == 0
    assert sorted(ids_of(client, cmp["fixed"]["filter"])) == noisy
    striped = next(s for s in cmp["slices"] if s["value"] == "striped")
    assert striped["delta"]["accuracy"] == pytest.approx(0.0, abs=1e-12)
    labels, matrix = a["confusion"]["labels"], a["confusion"]["matrix"]
    cell = next(
        [labels[i], labels[j]]
        for i in range(len(labels))
        for j in range(len(labels))
        if i != j and matrix[i][j]
    )
    out = client.post(f"/evaluations/{a['id']}/similar", json={"cell": cell, "limit": 5})
    assert out.status_code == 200, out.text
    found = out.json()
    # Unlabeled assets only: the ground-truth set holds every asset of `shapes`.
    assert found["hits"] and all("shape" not in (h["asset"].get("labels") or {}) for h in found["hits"])
    assert "shapes" not in {h["asset"]["source"] for h in found["hits"]}
    export = client.post("/exports", json={"target": "jsonl", "search": found["search"]})
    assert export.status_code == 202, export.text
    done = export.json()
    while done["state"] in ("queued", "running"):
        time.sleep(0.05)
        done = client.get(f"/exports/{done['id']}").json()
    assert done["state"] == "succeeded" and done["counts"]["selected"] == len(found["hits"])


def test_detection_from_coco_files_equals_pycocotools(world):
    client, boxes = world["client"], world["boxes"]
    names = [f"scene_{i:05d}.png" for i in range(len(boxes))]
    pred = scenes.predict_boxes(boxes, seed=9)
    gt_file, dt_file = scenes.coco_files(names, boxes, pred, 96)
    create_set(client, "objects", "ground_truth", "detection")
    create_set(client, "detector", "predictions", "detection")
    upload(client, "objects", json.dumps(gt_file).encode(), "coco", "scenes")
    upload(client, "detector", json.dumps(dt_file).encode(), "coco", "scenes")
    ev = evaluate(client, {"predictions": "detector", "ground_truth": "objects", "iou": 0.5})
    with contextlib.redirect_stdout(io.StringIO()):
        g = COCO()
        g.dataset = copy.deepcopy(gt_file)
        g.createIndex()
        ref = COCOeval(g, g.loadRes(copy.deepcopy(dt_file["annotations"])), "bbox")
        ref.evaluate()
        ref.accumulate()
        ref.summarize()
    assert ev["counts"]["matched"] == len(names)
    assert ev["metrics"]["map"] == pytest.approx(ref.stats[0], abs=1e-9)
    assert ev["metrics"]["map_50"] == pytest.approx(ref.stats[1], abs=1e-9)
    assert ev["metrics"]["fp"] > 0
    # The class confusion: a row per ground-truth class adds up to its boxes, a column to its
    # detections, and each cell's filter lists the images holding one of its box pairs.
    labels, matrix, filters = (ev["confusion"][k] for k in ("labels", "matrix", "filters"))
    assert labels[-1] == "(none)" and matrix[-1][-1] == 0
    for k, name in enumerate(labels[:-1]):
        c = ev["per_class"][name]
        assert sum(matrix[k]) == c["tp"] + c["fn"] and sum(row[k] for row in matrix) == c["tp"] + c["fp"]
    for i in range(len(labels)):
        for j in range(len(labels)):
            found = len(ids_of(client, filters[i][j]))
            assert (found > 0) == (matrix[i][j] > 0) and found <= matrix[i][j], (labels[i], labels[j])
    assert len(ids_of(client, ev["outcomes"]["wrong"])) > 0


@pytest.mark.parametrize(
    ("body", "status", "names"),
    [
        ({"predictions": "nope", "ground_truth": "shape"}, 404, "nope"),
        ({"predictions": "shape", "ground_truth": "shape"}, 422, "predictions"),
        ({"predictions": "m1", "ground_truth": "m2"}, 422, "ground_truth"),
        ({"predictions": "detector", "ground_truth": "shape"}, 422, "detection"),
        ({"predictions": "m1", "ground_truth": "shape", "iou": 0}, 422, "iou"),
        ({"predictions": "m1", "ground_truth": "shape", "iou": 1.01}, 422, "iou"),
        ({"predictions": "m1", "ground_truth": "shape", "slice_by": ["weather"]}, 422, "weather"),
        ({"predictions": "m1", "ground_truth": "objects"}, 422, "task"),
        (
            {"predictions": "m1", "ground_truth": "shape", "filter": {"source": "more"}},
            422,
            "no asset in common",
        ),
    ],
)
def test_bad_requests_are_4xx_naming_the_problem_and_record_nothing(world, classified, body, status, names):
    client = world["client"]
    if "detector" in body.values() or "objects" in body.values():
        if client.get("/labelsets/objects").status_code == 404:
            pytest.skip("needs the detection sets of test_detection_from_coco_files_equals_pycocotools")
    before = len(client.get("/evaluations", params={"limit": 500}).json()["data"])
    resp = client.post("/evaluations", json=body)
    assert resp.status_code == status, resp.text
    assert resp.json()["error"] and names in resp.json()["detail"]
    assert len(client.get("/evaluations", params={"limit": 500}).json()["data"]) == before


def payload_evals(client: httpx.Client) -> dict[str, set[str]]:
    """Every asset's key and the evaluations its payload holds outcomes of."""
    assets = client.get("/assets", params={"limit": 1000}).json()["data"]
    return {a["id"]: set(a.get("evals") or {}) for a in assets}


def test_deleting_an_evaluation_removes_its_fields_and_index_and_nothing_else(world, classified):
    client, index = world["client"], world["catalog"].index
    a = evaluate(client, {"predictions": "m1", "ground_truth": "shape"})
    b = evaluate(client, {"predictions": "m2", "ground_truth": "shape"})
    b_wrong = client.get("/assets/count", params={"filter": json.dumps(b["outcomes"]["wrong"])}).json()
    assert f"evals.{a['id']}.correct" in index.indexed_fields()
    assert sum(a["id"] in held for held in payload_evals(client).values()) == N
    resp = client.delete(f"/evaluations/{a['id']}")
    assert resp.status_code == 204 and resp.content == b""
    gone = client.get(f"/evaluations/{a['id']}")
    assert gone.status_code == 404 and a["id"] in gone.json()["detail"]
    assert a["id"] not in [e["id"] for e in client.get("/evaluations", params={"limit": 500}).json()["data"]]
    held = payload_evals(client)
    assert not any(a["id"] in h for h in held.values())
    assert sum(b["id"] in h for h in held.values()) == N
    indexed = index.indexed_fields()
    assert not [k for k in indexed if k.startswith(f"evals.{a['id']}")]
    assert f"evals.{b['id']}.correct" in indexed and "labels.m1.label" in indexed
    names = {f["name"] for f in client.get("/fields").json()["data"]}
    assert f"evals.{a['id']}.correct" not in names and f"evals.{b['id']}.correct" in names
    # The other evaluation and the label sets it read are untouched.
    assert client.get(f"/evaluations/{b['id']}").json() == b
    again = client.get("/assets/count", params={"filter": json.dumps(b["outcomes"]["wrong"])}).json()
    assert again == b_wrong
    assert client.get("/labelsets/m1").json()["assets"] == N
    compared = client.post("/evaluations/compare", json={"a": a["id"], "b": b["id"]})
    assert compared.status_code == 404 and a["id"] in compared.json()["detail"]
    # A second delete, or an id that never was: 404 with a detail, nothing else removed.
    for missing in (a["id"], "no-such-evaluation"):
        resp = client.delete(f"/evaluations/{missing}")
        assert resp.status_code == 404, resp.text
        assert resp.json()["error"] == "EvaluationNotFound" and missing in resp.json()["detail"]
    assert sum(b["id"] in h for h in payload_evals(client).values()) == N


def test_deleting_a_running_evaluation_is_a_409_until_it_ends(world, classified):
    from service.evals.runner import begin
    from service.evals.schemas import EvaluationRequest
    from service.jobs.runner import execute

    client, catalog = world["client"], world["catalog"]
    # Owned by this process and running (the server's runner never claims it); run here below.
    row = begin(catalog, EvaluationRequest(predictions="m1", ground_truth="shape"), here=True)
    assert client.get(f"/jobs/{row.id}").json()["state"] == "running"
    resp = client.delete(f"/evaluations/{row.id}")
    assert resp.status_code == 409, resp.text
    detail = resp.json()["detail"]
    assert resp.json()["error"] == "Conflict" and "running" in detail
    assert "wait" in detail and "cancel" in detail
    assert client.get(f"/evaluations/{row.id}").status_code == 200
    assert execute(catalog, catalog.jobs.get(row.id)).state == "succeeded"
    assert sum(row.id in h for h in payload_evals(client).values()) == N
    assert client.delete(f"/evaluations/{row.id}").status_code == 204
    assert not any(row.id in h for h in payload_evals(client).values())


def test_loupe_eval_against_the_server(world, classified, capsys, monkeypatch):
    monkeypatch.setenv("LOUPE_URL", world["url"])
    monkeypatch.setenv("LOUPE_HOME", str(world["catalog"].settings.home))
    assert cli.main(["eval", "m1", "--gt", "shape", "--slice-by", "background"]) == 0
    out = capsys.readouterr().out
    assert "per class:" in out and "per slice:" in out and "background=noisy" in out
    assert cli.main(["eval", "m2", "--gt", "shape", "--json"]) == 0
    b = json.loads(capsys.readouterr().out)
    assert cli.main(["eval", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    a = next(e for e in listed if e["predictions"] == "m1")
    assert cli.main(["eval", "compare", a["id"], b["id"]]) == 0
    out = capsys.readouterr().out
    assert "fixed:" in out and "broken: 0 asset(s)" in out
    assert cli.main(["eval", "show", b["id"], "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == b["id"]
    with pytest.raises(SystemExit) as exited:
        cli.main(["eval", "m1", "--gt", "nope"])
    assert exited.value.code == 1 and "nope" in capsys.readouterr().err


def test_loupe_eval_remove_against_the_server(world, classified, capsys, monkeypatch):
    monkeypatch.setenv("LOUPE_URL", world["url"])
    monkeypatch.setenv("LOUPE_HOME", str(world["catalog"].settings.home))
    client = world["client"]
    a = evaluate(client, {"predictions": "m1", "ground_truth": "shape"})
    b = evaluate(client, {"predictions": "m2", "ground_truth": "shape"})
    assert cli.main(["eval", "remove", a["id"]]) == 0
    assert capsys.readouterr().out.strip() == f"removed evaluation {a['id']}"
    assert client.get(f"/evaluations/{a['id']}").status_code == 404
    assert cli.main(["eval", "remove", b["id"], "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"removed": b["id"]}
    assert not any({a["id"], b["id"]} & h for h in payload_evals(client).values())
    with pytest.raises(SystemExit) as exited:
        cli.main(["eval", "remove", a["id"]])
    err = capsys.readouterr().err
    assert exited.value.code == 1 and a["id"] in err and "Traceback" not in err
    with pytest.raises(SystemExit) as exited:
        cli.main(["eval", "remove"])
    assert exited.value.code != 0 and "remove ID" in capsys.readouterr().err
