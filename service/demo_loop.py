"""`loupe demo`'s second half: the active-learning loop on the shapes, through the client's methods.

The shapes carry their ground truth: the generator wrote each image's class (`shape`) into
its sidecar. The demo treats part of them as labelled, as a team would hold a reviewed
evaluation set and a few labelled training images: every `val`/`test` image and a random
share of `train`. A scikit-learn logistic regression trained on the labelled training
images' vectors is "the team's model". From there the loop runs as a user runs it, through
the same client methods as `loupe labels import`, `loupe eval`, `loupe signals compute`
and `loupe select` (jobs run in this process): the model's class probabilities are uploaded
as a predictions set, evaluated against the ground truth per slice, duplicates and outliers
are found, and the next batch to label is chosen under a budget.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from service.errors import NotFound

if TYPE_CHECKING:
    from service.client import LocalClient

GROUND_TRUTH = "demo-truth"
PREDICTIONS = "demo-model"
SELECTION = "demo-next-batch"
TRAIN_SHARE = 0.1  # of the `train` split, labelled
BUDGET = 50
SLICE_BY = ("kind", "size")
SEED = 7
PAGE = 1000


@dataclass
class Loop:
    """What each step of the loop gave, for printing and for the tests."""

    assets: int = 0
    labelled: int = 0
    trained_on: int = 0
    predictions: dict[str, Any] = field(default_factory=dict)  # the import job
    evaluation: dict[str, Any] = field(default_factory=dict)
    duplicates: dict[str, Any] = field(default_factory=dict)  # the signal's job
    groups: list[tuple[dict[str, Any], list[dict[str, Any]]]] = field(default_factory=list)
    outliers: dict[str, Any] = field(default_factory=dict)
    top_outliers: list[dict[str, Any]] = field(default_factory=list)
    selection: dict[str, Any] = field(default_factory=dict)
    selected: list[dict[str, Any]] = field(default_factory=list)
    edge_share: float = 0.0  # of every asset, the share of rare or occluded ones
    seconds: dict[str, float] = field(default_factory=dict)


def _pool(client: LocalClient, source: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        page, cursor = client.catalog.list_assets(filter={"source": source}, limit=PAGE, cursor=cursor)
        out += page
        if cursor is None:
            return out


def _ensure_set(client: LocalClient, name: str, role: str, model: str | None = None) -> None:
    """The set, made on the first run (a later run's import replaces the same assets' labels)."""
    try:
        client.get_labelset(name)
        return
    except NotFound:
        pass
    body = {"name": name, "role": role, "task": "classification"}
    client.create_labelset(body if model is None else {**body, "model": model})


def _import(client: LocalClient, name: str, annotations: list[dict[str, Any]]) -> dict[str, Any]:
    body = {"format": "loupe", "annotations": annotations}
    job = client.import_labels(name, file=None, fmt=None, source=None, body=body)
    if job["state"] != "succeeded":
        raise RuntimeError(f"importing {name} ended {job['state']}: {job.get('detail')}")
    return job


def _train(client: LocalClient, assets: list[dict[str, Any]], labelled: list[dict[str, Any]]) -> Any:
    """The team's model: a logistic regression on the labelled training images' vectors."""
    from sklearn.linear_model import LogisticRegression

    ids = [a["id"] for a in assets]
    recs = {r.id: r.vector for r in client.catalog.index.retrieve(ids, with_vectors=True)}
    x = {i: np.asarray(recs[i], dtype=np.float32) for i in ids if recs.get(i) is not None}
    train = [a for a in labelled if a["metadata"].get("split") == "train" and a["id"] in x]
    model = LogisticRegression(max_iter=1000, C=10.0)
    model.fit(np.stack([x[a["id"]] for a in train]), [a["metadata"]["shape"] for a in train])
    scored = [i for i in ids if i in x]
    proba = model.predict_proba(np.stack([x[i] for i in scored]))
    classes = [str(c) for c in model.classes_]
    preds = [
        {"asset_id": i, "scores": {c: round(float(p), 6) for c, p in zip(classes, row, strict=True)}}
        for i, row in zip(scored, proba, strict=True)
    ]
    return len(train), preds


def run_loop(client: LocalClient, *, source: str, budget: int = BUDGET) -> Loop | None:
    """The loop on the demo's shapes, stored in the catalog as a user's results are; None if too few."""
    from service.evals.schemas import EvaluationRequest

    loop = Loop()
    t0 = time.perf_counter()

    def lap(step: str) -> None:
        nonlocal t0
        now = time.perf_counter()
        loop.seconds[step] = now - t0
        t0 = now

    assets = [a for a in _pool(client, source) if "shape" in a["metadata"]]
    loop.assets = len(assets)
    loop.edge_share = sum(a["metadata"].get("kind") != "normal" for a in assets) / max(1, len(assets))
    rng = np.random.default_rng(SEED)
    labelled = [a for a in assets if a["metadata"].get("split") != "train" or rng.random() < TRAIN_SHARE]
    loop.labelled = len(labelled)
    if len({a["metadata"]["shape"] for a in labelled if a["metadata"].get("split") == "train"}) < 2:
        return None  # a model needs two classes to tell apart: too few images (a tiny --n)
    _ensure_set(client, GROUND_TRUTH, "ground_truth")
    _import(client, GROUND_TRUTH, [{"asset_id": a["id"], "label": a["metadata"]["shape"]} for a in labelled])
    lap("ground truth")

    loop.trained_on, preds = _train(client, assets, labelled)
    _ensure_set(client, PREDICTIONS, "predictions", model="logistic regression on loupe-tiny vectors")
    loop.predictions = _import(client, PREDICTIONS, preds)
    lap("model")

    req = EvaluationRequest(
        predictions=PREDICTIONS,
        ground_truth=GROUND_TRUTH,
        filter={"split": {"in": ["val", "test"]}},
        slice_by=list(SLICE_BY),
    )
    loop.evaluation = client.evaluate(req, progress=lambda _: None)
    lap("evaluation")

    loop.duplicates = client.compute_signal(
        "duplicates", {"filter": {"source": source}}, progress=lambda _: None
    )
    for group in client.list_duplicates(filter={"source": source}, limit=3):
        loop.groups.append((group, [client.get_asset(i) for i in group["ids"]]))
    lap("duplicates")
    loop.outliers = client.compute_signal("outliers", {"filter": {"source": source}}, progress=lambda _: None)
    loop.top_outliers, _ = client.catalog.list_assets(
        filter={"source": source}, limit=10, cursor=None, order_by="signals.outlier", order="desc"
    )
    lap("outliers")

    try:
        client.remove_selection(SELECTION)
    except NotFound:
        pass
    body = {
        "name": SELECTION,
        "budget": budget,
        "filter": {"source": source, "split": "train"},
        "strategies": [
            {"kind": "uncertainty", "predictions": PREDICTIONS, "measure": "margin"},
            {"kind": "diversity"},
        ],
        "exclude_labeled": GROUND_TRUTH,
    }
    loop.selection = client.select(body, progress=lambda _: None)
    by_id = {
        a["id"]: a
        for a in client.catalog.list_assets(
            filter={"selections": SELECTION}, limit=max(1, budget), cursor=None
        )[0]
    }
    loop.selected = [by_id[i] for i in loop.selection["ids"] if i in by_id]
    lap("selection")
    return loop


def _edge(assets: list[dict[str, Any]]) -> int:
    return sum(a["metadata"].get("kind") != "normal" for a in assets)


def _looks(asset: dict[str, Any]) -> str:
    meta = asset["metadata"]
    return " ".join(str(meta.get(k)) for k in ("size", "color", "shape")) + f" on {meta.get('background')}"


def print_loop(loop: Loop) -> None:
    """A few lines per step, each with the command that does it by hand."""
    ev, sel = loop.evaluation, loop.selection
    m = ev["metrics"]
    print(f"\n== the active-learning loop on the shapes ({sum(loop.seconds.values()):.1f} s)")
    print(
        f"   ground truth {GROUND_TRUTH}: {loop.labelled} of {loop.assets} images (every val/test image, "
        "a tenth of train; the class is the generator's shape)"
    )
    print(
        f"   model {PREDICTIONS}: a logistic regression on {loop.trained_on} labelled train vectors, "
        f"its {loop.predictions['counts']['imported']} predictions uploaded"
    )
    print(f"   loupe labels import {PREDICTIONS} preds.jsonl --role predictions --task classification")
    print(
        f"\n== evaluation {ev['id'][:8]} on val/test: {ev['counts']['matched']} images, "
        f"accuracy {m['accuracy']:.3f}, macro F1 {m['macro_f1']:.3f}"
    )
    for s in ev["slices"]:
        print(
            f"   {s['field']}={s['value']:<9} {s['count']:>5} images  accuracy {s['metrics']['accuracy']:.3f}"
        )
    slices = " ".join(f"--slice-by {f}" for f in ev["slice_by"])
    print(f"   loupe eval {PREDICTIONS} --gt {GROUND_TRUTH} {slices} --filter '{json.dumps(ev['filter'])}'")

    d = loop.duplicates["counts"]
    in_groups, groups = int(d.get("scored", 0)), int(d.get("groups", 0))
    print(
        f"\n== duplicates: {groups} groups hold {in_groups} images the model cannot tell apart; "
        f"one kept per group leaves {loop.assets - in_groups + groups} distinct"
    )
    for g, members in loop.groups:
        print(f"   {len(g['ids'])} x {', '.join(sorted({_looks(a) for a in members}))}")
    print("   loupe signals compute duplicates; loupe duplicates")
    top = loop.top_outliers
    print(
        f"\n== outliers: {_edge(top)} of the top {len(top)} by signals.outlier are rare or occluded shapes "
        f"({loop.edge_share:.0%} of all images are)"
    )
    for a in top[:3]:
        print(f"   {a['signals']['outlier']:.3f}  {a['key']}  {a['metadata'].get('kind')} {_looks(a)}")
    print("   loupe signals compute outliers; GET /api/v1/assets?order_by=signals.outlier&order=desc")

    margins = [a["labels"][PREDICTIONS]["margin"] for a in loop.selected]
    print(
        f"\n== next batch: {sel['count']} of {sel['counts']['candidates']} unlabelled train images, "
        f"uncertainty (margin) x diversity: {_edge(loop.selected)} rare or occluded"
        + (f", median margin {float(np.median(margins)):.3f}" if margins else "")
    )
    print(
        f"   loupe select {sel['name']} --budget {sel['budget']} --filter '{json.dumps(sel['filter'])}' "
        f"--strategy uncertainty:predictions={PREDICTIONS},measure=margin --strategy diversity "
        f"--exclude-labeled {GROUND_TRUTH}"
    )
    print(f"   loupe export --selection {sel['name']} --to jsonl --path next-batch.jsonl")
