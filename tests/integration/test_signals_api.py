"""Signals through the REST API alone, on real images with the FakeEncoder (the model is beside the
point: its colour-layout vectors put a resized copy next to its original).

Planted near-duplicate copies come back in one group, planted outliers top uniqueness,
flipped labels of scikit-learn's digits rank high on label_issue; ordering, stale rows,
keep/exclude and refused requests too.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from service import cli
from service.catalog.assets import asset_id
from service.catalog.catalog import Catalog
from service.config import Settings
from service.synth import write_dataset
from tests.conftest import LiveServer
from tests.fakes import FakeEncoder
from tests.jobs import wait_job as wait_ended

N_SHAPES = 40
N_DIGITS = 300
TIGHT = 0.0005
FLIPPED = list(range(0, N_DIGITS, 20))  # 15 digits whose ground-truth label is wrong


def _plant(root: Path) -> dict[str, list[str]]:
    """Shapes, two originals each with a resized and a re-encoded copy, and three noise outliers."""
    shapes = root / "shapes"
    paths = write_dataset(shapes, N_SHAPES, seed=5, size=96, edge_cases=False, image_format="png")
    groups = {}
    for n in (3, 17):
        original = Image.open(paths[n]).convert("RGB")
        stem = paths[n].stem
        original.resize((80, 80), Image.Resampling.LANCZOS).save(shapes / f"{stem}_small.png")
        original.save(shapes / f"{stem}_copy.jpg", "JPEG", quality=80)
        groups[stem] = [paths[n].name, f"{stem}_small.png", f"{stem}_copy.jpg"]
    rng = np.random.default_rng(3)
    outliers = []
    for n, colour in enumerate(((255, 0, 255), (0, 255, 255), (255, 255, 0))):
        pixels = np.zeros((96, 96, 3), dtype=np.uint8)
        pixels[:48] = colour
        pixels[48:] = rng.integers(0, 40, size=(48, 96, 3))
        name = f"odd_{n}.png"
        Image.fromarray(pixels).save(shapes / name)
        outliers.append(name)
    groups["outliers"] = outliers
    return groups


def _digits(root: Path) -> dict[str, str]:
    """scikit-learn's digits as PNGs with a sidecar label; FLIPPED ones carry a wrong label."""
    data = load_digits()
    folder = root / "digits"
    folder.mkdir()
    truth = {}
    for n in range(N_DIGITS):
        img = (data.images[n] * (255 / 16)).astype(np.uint8)
        name = f"d_{n:04d}.png"
        Image.fromarray(img).resize((32, 32), Image.Resampling.NEAREST).save(folder / name)
        label = int(data.target[n])
        given = (label + 1) % 10 if n in FLIPPED else label
        (folder / f"{name}.json").write_text(json.dumps({"digit": str(given)}))
        truth[name] = str(label)
    return truth


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("signals")
    planted = _plant(root)
    _digits(root)
    settings = Settings(home=tmp_path_factory.mktemp("home"), _env_file=None)  # type: ignore[call-arg]
    catalog = Catalog(settings, encoder=FakeEncoder())
    for name in ("shapes", "digits"):
        catalog.add_source(name, "local", {"path": str(root / name)})
        assert catalog.sync(name).state == "succeeded"
    from service.api.app import create_app

    with (
        LiveServer(create_app(settings, catalog=catalog)) as server,
        httpx.Client(base_url=f"{server.url}/api/v1", timeout=60) as client,
    ):
        yield {"client": client, "catalog": catalog, "root": root, "planted": planted, "url": server.url}
    catalog.close()


# The clusters signal's first UMAP in a process compiles numba code: minutes on a busy machine.
wait_job = functools.partial(wait_ended, timeout_s=600, succeeded=True)


def signal(client: httpx.Client, kind: str, body: dict[str, Any]) -> dict[str, Any]:
    resp = client.post(f"/signals/{kind}", json=body)
    assert resp.status_code == 202, resp.text
    job = resp.json()
    assert job["kind"] == "signal"
    return wait_job(client, job)


def ids(source: str, keys: list[str]) -> set[str]:
    return {asset_id(source, k) for k in keys}


def test_planted_copies_come_back_in_one_group_each(world: dict[str, Any]) -> None:
    client = world["client"]
    # The colour layout packs this set tight (median nearest distance 0.008): a tight threshold.
    job = signal(client, "duplicates", {"filter": {"source": "shapes"}, "threshold": TIGHT})
    assert job["counts"]["groups"] >= 2
    groups = client.get("/duplicates", params={"filter": json.dumps({"source": "shapes"})}).json()["data"]
    by_member = {m: g for g in groups for m in g["ids"]}
    for stem, keys in world["planted"].items():
        if stem == "outliers":
            continue
        planted = ids("shapes", keys)
        group = by_member[asset_id("shapes", keys[0])]
        assert set(group["ids"]) == planted, (stem, group)
        # The kept one is the largest image: the 96 px original, not the 80 px copy.
        assert group["keep"] == asset_id("shapes", keys[0])
        asset = client.get(f"/assets/{asset_id('shapes', keys[1])}").json()
        assert asset["signals"]["duplicate_group"] == group["group"]
        assert asset["signals"]["duplicate_of"] == group["keep"]
        assert len(asset["signals"]["sha256"]) == 64
    # The re-encoded JPEG's bytes differ from the PNG's: near, not exact.
    flt = {"signals.duplicate_group": by_member[asset_id("shapes", "img_00003.png")]["group"]}
    assert client.get("/assets/count", params={"filter": json.dumps(flt)}).json()["count"] == 3


def test_keep_excludes_the_others_from_search_and_brings_them_back(world: dict[str, Any]) -> None:
    client = world["client"]
    signal(client, "duplicates", {"filter": {"source": "shapes"}, "threshold": TIGHT})
    small, original = asset_id("shapes", "img_00017_small.png"), asset_id("shapes", "img_00017.png")
    group = client.get(f"/assets/{small}").json()["signals"]["duplicate_group"]
    kept = client.post(f"/duplicates/{group}/keep", json={"keep": small})
    assert kept.status_code == 200, kept.text
    assert kept.json()["keep"] == small and original in kept.json()["excluded"]
    hits = client.post("/search", json={"like": [small], "limit": 60, "filter": {"source": "shapes"}}).json()
    assert original not in {h["id"] for h in hits["hits"]}
    # Named in the filter, the flag is the user's to decide.
    named = {"signals.duplicate_excluded": True}
    hits = client.post("/search", json={"like": [small], "limit": 60, "filter": named}).json()
    assert original in {h["id"] for h in hits["hits"]}
    # A recompute keeps the choice.
    signal(client, "duplicates", {"filter": {"source": "shapes"}, "threshold": TIGHT})
    assert client.get(f"/assets/{original}").json()["signals"]["duplicate_of"] == small
    back = client.post(f"/duplicates/{group}/keep", json={"keep": original, "exclude_others": False}).json()
    assert back["excluded"] == [] and back["keep"] == original
    wrong = client.post(f"/duplicates/{group}/keep", json={"keep": asset_id("shapes", "odd_0.png")})
    assert wrong.status_code == 404 and "not in duplicate group" in wrong.json()["detail"]


def test_planted_outliers_top_uniqueness_and_outliers(world: dict[str, Any]) -> None:
    client = world["client"]
    flt = {"source": "shapes"}
    signal(client, "uniqueness", {"filter": flt})
    signal(client, "outliers", {"filter": flt, "k": 5})
    signal(client, "typicality", {"filter": flt})
    planted = ids("shapes", world["planted"]["outliers"])
    for field in ("signals.uniqueness", "signals.outlier"):
        page = client.get(
            "/assets", params={"filter": json.dumps(flt), "order_by": field, "order": "desc", "limit": 3}
        ).json()
        assert {a["id"] for a in page["data"]} == planted, field
    low = client.get(
        "/assets", params={"filter": json.dumps(flt), "order_by": "signals.typicality", "limit": 10}
    ).json()
    assert planted <= {a["id"] for a in low["data"]}
    values = [a["signals"]["uniqueness"] for a in page["data"]]
    assert all(0 <= v <= 1 for v in values)


def test_flipped_labels_rank_high_on_label_issue(world: dict[str, Any]) -> None:
    client = world["client"]
    resp = client.post("/labelsets", json={"name": "gt", "role": "ground_truth", "task": "classification"})
    assert resp.status_code == 201, resp.text
    wait_job(client, client.post("/labelsets/gt/annotations", json={"from_field": "digit"}).json())
    job = signal(client, "label_issues", {"ground_truth": "gt", "filter": {"source": "digits"}})
    assert job["counts"]["scored"] == N_DIGITS
    top: list[str] = []
    cursor = None
    while len(top) < N_DIGITS // 10:
        params = {"order_by": "signals.label_issue", "order": "desc", "limit": 7}
        page = client.get("/assets", params={**params, **({"cursor": cursor} if cursor else {})}).json()
        top.extend(a["id"] for a in page["data"])
        cursor = page["next_cursor"]
    flipped = ids("digits", [f"d_{n:04d}.png" for n in FLIPPED])
    # Most flipped labels are in the top 10 % (a 4x4 colour layout is a weak but real signal).
    assert len(flipped & set(top[: N_DIGITS // 10])) >= len(FLIPPED) * 0.6


def test_signals_list_says_when_new_assets_make_one_stale(world: dict[str, Any]) -> None:
    client, catalog = world["client"], world["catalog"]
    signal(client, "uniqueness", {"filter": {"source": "shapes"}})
    rows = {
        r["kind"]: r for r in client.get("/signals").json()["data"] if r["filter"] == {"source": "shapes"}
    }
    row = rows["uniqueness"]
    assert row["stale"] is False and row["assets"] == row["scored"] > N_SHAPES
    assert row["params"]["k"] == 3 and row["params"]["weights"] == [0.6, 0.3, 0.1]
    write_dataset(world["root"] / "shapes" / "more", 4, seed=9, size=96, edge_cases=False, image_format="png")
    assert catalog.sync("shapes").state == "succeeded"
    row = next(
        r
        for r in client.get("/signals", params={"kind": "uniqueness"}).json()["data"]
        if r["id"] == row["id"]
    )
    assert row["stale"] is True and row["stale_count"] == 4
    job = signal(client, "uniqueness", {"filter": {"source": "shapes"}})
    # Only the new assets and their neighbours were rescored.
    assert 4 <= job["counts"]["scored"] < row["assets"]
    again = next(r for r in client.get("/signals").json()["data"] if r["id"] == row["id"])
    assert again["stale"] is False and again["params"]["incremental"] is True


def test_clusters_number_every_asset(world: dict[str, Any]) -> None:
    client = world["client"]
    job = signal(client, "clusters", {"filter": {"source": "digits"}, "k": 5})
    assert job["counts"]["scored"] == N_DIGITS and job["counts"]["clusters"] >= 2
    facets = client.get("/facets/signals.cluster", params={"filter": json.dumps({"source": "digits"})}).json()
    assert sum(v["count"] for v in facets["values"]) == N_DIGITS


@pytest.mark.parametrize(
    ("kind", "body", "status", "words"),
    [
        ("sameness", {}, 422, "valid kinds"),
        ("label_issues", {}, 422, "needs ground_truth"),
        ("label_issues", {"ground_truth": "nope"}, 404, "no label set"),
        ("uniqueness", {"filter": {"source": "nowhere"}}, 422, "matches no asset"),
        ("uniqueness", {"k": 0}, 422, "from 1 to"),
        ("outliers", {"k": -3}, 422, "from 1 to"),
        ("duplicates", {"threshold": 2.5}, 422, "cosine distance"),
        ("uniqueness", {"threshold": -0.1}, 422, "score from 0 to 1"),
        ("clusters", {"threshold": 0.5}, 422, "no threshold"),
        ("uniqueness", {"k": 2, "weights": [1, 1, 1]}, 422, "one weight per neighbour"),
        ("outliers", {"ground_truth": "gt"}, 422, "for label_issues"),
        ("uniqueness", {"filter": {"width": {"bogus": 1}}}, 422, "filter"),
    ],
)
def test_bad_requests_are_4xx_and_write_nothing(
    world: dict[str, Any], kind: str, body: dict[str, Any], status: int, words: str
) -> None:
    client = world["client"]
    before = client.get("/jobs", params={"kind": "signal"}).json()["data"]
    resp = client.post(f"/signals/{kind}", json=body)
    assert resp.status_code == status, resp.text
    assert words in resp.json()["detail"]
    assert client.get("/jobs", params={"kind": "signal"}).json()["data"] == before


def test_ordering_refuses_unindexed_fields_and_foreign_cursors(world: dict[str, Any]) -> None:
    client = world["client"]
    resp = client.get("/assets", params={"order_by": "filename"})
    assert resp.status_code == 422 and "numeric or datetime" in resp.json()["detail"]
    page = client.get("/assets", params={"order_by": "width", "limit": 2}).json()
    resp = client.get("/assets", params={"order_by": "height", "limit": 2, "cursor": page["next_cursor"]})
    assert resp.status_code == 422 and "another order_by" in resp.json()["detail"]
    resp = client.get("/assets", params={"order_by": "width", "cursor": "abc"})
    assert resp.status_code == 422


def test_loupe_signals_and_duplicates_against_the_server(
    world: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOUPE_URL", world["url"])
    monkeypatch.setenv("LOUPE_HOME", str(world["catalog"].settings.home))
    flt = json.dumps({"source": "shapes"})
    assert cli.main(["signals", "compute", "duplicates", "--filter", flt, "--threshold", str(TIGHT)]) == 0
    assert "duplicates: succeeded" in capsys.readouterr().out
    assert cli.main(["duplicates", "--filter", flt, "--json"]) == 0
    groups = json.loads(capsys.readouterr().out)
    assert any(asset_id("shapes", "img_00003.png") in g["ids"] for g in groups)
    assert cli.main(["signals", "list", "--json"]) == 0
    assert "duplicates" in {r["kind"] for r in json.loads(capsys.readouterr().out)}
    # Bad input is one line and a non-zero exit, not a traceback.
    with pytest.raises(SystemExit) as exc:
        cli.main(["signals", "compute", "uniqueness", "--k", "0"])
    assert exc.value.code == 1 and "from 1 to" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli.main(["signals", "compute", "label_issues"])
    assert "needs ground_truth" in capsys.readouterr().err


def test_a_recompute_drops_the_old_groups_and_touches_only_their_members(world: dict[str, Any]) -> None:
    client = world["client"]
    shapes = json.dumps({"source": "shapes"})
    grouped = json.dumps({"and": [{"source": "shapes"}, {"signals.duplicate_group": {"exists": True}}]})
    signal(client, "duplicates", {"filter": {"source": "shapes"}, "threshold": TIGHT})
    before = client.get("/assets/count", params={"filter": grouped}).json()["count"]
    assert before >= 6
    catalog, deleted = world["catalog"], []
    real = catalog.index.delete_keys

    def spy(keys: Any, *, ids: Any = None, filter: Any = None) -> None:
        deleted.append(catalog.index.count(filter) if ids is None else len(ids))
        real(keys, ids=ids, filter=filter)

    catalog.index.delete_keys = spy  # type: ignore[method-assign]
    try:
        # Threshold 0: the resized and re-encoded copies are no longer near; no group is left.
        job = signal(client, "duplicates", {"filter": {"source": "shapes"}, "threshold": 0.0})
    finally:
        del catalog.index.delete_keys
    assert job["counts"]["groups"] == 0
    assert client.get("/assets/count", params={"filter": grouped}).json()["count"] == 0
    # The delete matched the old groups' members, not every asset of the scope.
    total = client.get("/assets/count", params={"filter": shapes}).json()["count"]
    assert deleted[0] == before < total
    signal(client, "duplicates", {"filter": {"source": "shapes"}, "threshold": TIGHT})  # as the others expect
