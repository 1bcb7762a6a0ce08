"""Class-probability vectors (`scores`) live in the state store, not in the index payload
(service/catalog/label_scores.py): an import puts them in the `label_scores` table and the REST API puts
them back into `labels.<set>`; a re-import without them, a hand label and the set's removal take
them away; the label_issues signal reads them from the table and scores as it did from the
payload. On SQLite and on PostgreSQL (skipped when no server is reachable)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from service.catalog.assets import asset_id
from service.catalog.catalog import Catalog
from service.config import Settings
from service.index.spaces import resolve_space
from service.signals import scores
from service.signals.neighbours import build_graph
from service.signals.plan import label_scope
from service.synth.shapes import Sample
from tests.conftest import LiveServer
from tests.fakes import FakeEncoder
from tests.integration.labels_helpers import (
    add_and_sync,
    all_assets,
    create_set,
    filename,
    imported,
    jsonl,
    upload,
    write_shapes,
)
from tests.integration.sql_dbs import private_database, unreachable_reason
from tests.jobs import wait_job


@dataclass
class World:
    client: httpx.Client
    catalog: Catalog
    truth: list[Sample]
    ids: list[str]  # the asset id of each sample, in sample order


@pytest.fixture(params=["sqlite", "postgresql"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    from service.api.app import create_app

    with ExitStack() as stack:
        extra: dict[str, Any] = {}
        if request.param == "postgresql":
            reason = unreachable_reason("postgresql")
            if reason is not None:
                pytest.skip(reason)
            db = stack.enter_context(private_database("postgresql"))
            extra["database_url"] = SecretStr(db.url)
        settings = Settings(home=tmp_path / "home", _env_file=None, **extra)  # type: ignore[call-arg]
        catalog = Catalog(settings, encoder=FakeEncoder())
        stack.callback(catalog.close)
        server = stack.enter_context(LiveServer(create_app(settings, catalog=catalog)))
        client = stack.enter_context(httpx.Client(base_url=server.url, timeout=60))
        truth = write_shapes(tmp_path / "shapes")
        add_and_sync(client, "shapes", tmp_path / "shapes")
        ids = [asset_id("shapes", filename(s.index)) for s in truth]
        yield World(client, catalog, truth, ids)


def vectors(truth: list[Sample]) -> list[dict[str, float]]:
    """A probability vector per sample over its true shape and two others, the true one often
    not the largest (so that its probability differs from what `label` + `score` would give)."""
    rng = np.random.default_rng(11)
    classes = sorted({s.attributes["shape"] for s in truth})
    out = []
    for s in truth:
        mine = s.attributes["shape"]
        others = [c for c in classes if c != mine]
        picked = [mine, *rng.choice(others, size=2, replace=False)]
        p = rng.dirichlet([1.0, 1.0, 1.0])
        out.append({str(c): round(float(v), 6) for c, v in zip(picked, p, strict=True)})
    return out


def rows(catalog: Catalog, name: str) -> dict[str, dict[str, float]]:
    """Set `name`'s rows of the state store's table, read with plain SQL."""
    q = sa.text("SELECT asset_id, scores FROM label_scores WHERE set_name = :name")
    with catalog.state.engine.connect() as conn:
        found = conn.execute(q, {"name": name}).all()
    return {a: s if isinstance(s, dict) else json.loads(s) for a, s in found}


def raw_labels(catalog: Catalog, ids: list[str]) -> dict[str, dict[str, Any]]:
    """Each asset's `labels` as the engine holds them (its payload, nothing added)."""
    return {r.id: r.payload.get("labels") or {} for r in catalog.index.retrieve(ids)}


def import_sets(w: World, given: list[dict[str, float]]) -> None:
    create_set(w.client, "gt", "ground_truth", "classification")
    truth = [{"source": "shapes", "key": filename(s.index), "label": s.attributes["shape"]} for s in w.truth]
    imported(w.client, upload(w.client, "gt", jsonl(truth), "loupe"))
    create_set(w.client, "pred", "predictions", "classification", model="rule v1")
    records = [
        {"source": "shapes", "key": filename(s.index), "scores": v}
        for s, v in zip(w.truth, given, strict=True)
    ]
    assert imported(w.client, upload(w.client, "pred", jsonl(records), "loupe"))["counts"]["imported"] == 40


def test_scores_are_kept_out_of_the_payload_and_shown_by_the_api(world: World) -> None:
    w, given = world, vectors(world.truth)
    import_sets(w, given)
    want = dict(zip(w.ids, given, strict=True))
    payloads = raw_labels(w.catalog, w.ids)
    assert all("scores" not in p["pred"] for p in payloads.values())
    # The uncertainty fields made from them stay in the payload, indexed.
    assert all({"margin", "entropy", "least_confidence"} <= set(p["pred"]) for p in payloads.values())
    assert w.catalog.count({"labels.pred.margin": {"gte": 0}}) == 40
    assert rows(w.catalog, "pred") == want
    # Over REST: one asset, a listing, search hits.
    one = w.client.get(f"/api/v1/assets/{w.ids[0]}").json()["labels"]
    assert one["pred"]["scores"] == want[w.ids[0]] and "scores" not in one["gt"]
    assert one["pred"]["label"] == max(given[0], key=given[0].__getitem__)
    assert {a["id"]: a["labels"]["pred"]["scores"] for a in all_assets(w.client)} == want
    page = w.client.get("/api/v1/assets", params={"limit": 7}).json()["data"]
    assert [a["labels"]["pred"]["scores"] for a in page] == [want[a["id"]] for a in page]
    hits = w.client.post("/api/v1/search", json={"like": [w.ids[0]], "limit": 10}).json()["hits"]
    assert hits and all(h["asset"]["labels"]["pred"]["scores"] == want[h["id"]] for h in hits)


def test_reimport_hand_labels_and_removal_take_the_scores_away(world: World) -> None:
    w, given = world, vectors(world.truth)
    import_sets(w, given)
    # A re-import of ten assets without a vector: those lose theirs, the other thirty keep them.
    again = [
        {"source": "shapes", "key": filename(s.index), "label": "circle", "score": 0.9} for s in w.truth[:10]
    ]
    imported(w.client, upload(w.client, "pred", jsonl(again), "loupe"))
    kept = dict(zip(w.ids[10:], given[10:], strict=True))
    assert rows(w.catalog, "pred") == kept
    shown = {a["id"]: a["labels"]["pred"] for a in all_assets(w.client)}
    assert all("scores" not in shown[i] and shown[i]["score"] == 0.9 for i in w.ids[:10])
    assert shown[w.ids[0]]["least_confidence"] == pytest.approx(0.1)  # the binary view of the score
    assert {i: shown[i]["scores"] for i in w.ids[10:]} == kept
    # A ground-truth set given vectors, then labelled by hand: the hand label has none.
    create_set(w.client, "gt2", "ground_truth", "classification")
    recs = [{"asset_id": i, "scores": v} for i, v in zip(w.ids[:4], given[:4], strict=True)]
    imported(w.client, upload(w.client, "gt2", jsonl(recs), "loupe"))
    assert len(rows(w.catalog, "gt2")) == 4
    resp = w.client.post("/api/v1/labelsets/gt2/labels", json={"label": "star", "ids": w.ids[:2]})
    assert resp.status_code == 200, resp.text
    assert set(rows(w.catalog, "gt2")) == set(w.ids[2:4])
    hand = w.client.get(f"/api/v1/assets/{w.ids[0]}").json()["labels"]["gt2"]
    assert hand["label"] == "star" and "scores" not in hand
    # Removing a set drops its rows and no other set's.
    assert w.client.delete("/api/v1/labelsets/pred").status_code == 204
    assert rows(w.catalog, "pred") == {} and len(rows(w.catalog, "gt2")) == 2
    assert all("pred" not in a.get("labels", {}) for a in all_assets(w.client))


def test_label_issues_use_the_scores_from_the_table(world: World) -> None:
    w, given = world, vectors(world.truth)
    import_sets(w, given)
    resp = w.client.post(
        "/api/v1/signals/label_issues", json={"ground_truth": "gt", "predictions": "pred", "k": 5}
    )
    assert resp.status_code == 202, resp.text
    job = wait_job(w.client, resp.json(), timeout_s=300, succeeded=True)
    assert job["counts"]["scored"] == 40
    # The reference: the job's own steps, with the self-confidence taken from the vectors given.
    index = w.catalog.index
    graph = build_graph(
        index, space=resolve_space(index, None), filter=label_scope(None, "gt"), k=5, fields=["labels"]
    )
    labels = [p["labels"]["gt"]["label"] for p in graph.payloads]
    vote = scores.neighbour_vote(
        labels, graph.idx, graph.dist, scores.typical(scores.weighted_distance(graph.dist))
    )
    n_classes = len({s.attributes["shape"] for s in w.truth})
    vector = dict(zip(w.ids, given, strict=True))
    conf = [
        scores.self_confidence(lab, {"scores": vector[i]}, n_classes)
        for i, lab in zip(graph.ids, labels, strict=True)
    ]
    want = dict(zip(graph.ids, scores.label_issue(vote, conf), strict=True))
    got = {r.id: r.payload["signals"]["label_issue"] for r in index.retrieve(graph.ids, fields=["signals"])}
    assert got == pytest.approx(want, abs=1e-9)
    # Without the vectors (label + score alone) the numbers would differ: the test can tell.
    alone = [
        scores.self_confidence(
            lab, {k: v for k, v in p["labels"]["pred"].items() if k != "scores"}, n_classes
        )
        for lab, p in zip(labels, graph.payloads, strict=True)
    ]
    blind = dict(zip(graph.ids, scores.label_issue(vote, alone), strict=True))
    assert sum(abs(blind[i] - want[i]) > 1e-3 for i in want) >= 10
