"""Two real models side by side: loupe-tiny fills the encoder's space, a second open_clip architecture
(random weights saved to a local checkpoint) fills a user space; syncs keep user vectors, marking
them stale when the source changed the asset."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from service.config import OFFLINE_MODEL, Settings
from tests.conftest import LiveServer
from tests.images import gradient, solid

MINI = "loupe-test-mini"  # another architecture than loupe-tiny: a ResNet tower, 48-d embeddings
MINI_CONFIG = {
    "embed_dim": 48,
    "vision_cfg": {
        "image_size": 32,
        "layers": [1, 1, 1, 1],
        "width": 8,
        "head_width": 16,
        "patch_size": None,
    },
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


@pytest.fixture(scope="module")
def mini_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("mini")
    (folder / f"{MINI}.json").write_text(json.dumps(MINI_CONFIG))
    open_clip.add_model_config(folder)
    torch.manual_seed(0)
    model = open_clip.create_model(MINI, pretrained=None)
    path = folder / "mini.pt"
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, Path, Settings]]:
    from service.api.app import create_app
    from service.catalog.catalog import Catalog

    home = tmp_path_factory.mktemp("models")
    settings = Settings(home=home / "home", model=OFFLINE_MODEL, _env_file=None)  # type: ignore[call-arg]
    photos = home / "photos"
    photos.mkdir()
    for i in range(5):
        gradient(30 + i).save(photos / f"grad{i}.png")
    solid((200, 30, 30)).save(photos / "red.png")
    catalog = Catalog(settings)
    try:
        with LiveServer(create_app(settings, catalog=catalog)) as live:
            yield live, photos, settings
    finally:
        catalog.close()


@pytest.fixture(scope="module")
def client(setup: tuple[LiveServer, Path, Settings]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{setup[0].url}/api/v1", timeout=120) as c:
        yield c


def wait(client: httpx.Client, job: dict) -> dict:
    deadline = time.monotonic() + 120
    while job["state"] in ("queued", "running"):
        assert time.monotonic() < deadline, job
        time.sleep(0.1)
        job = client.get(f"/jobs/{job['id']}").json()
    return job


def sync(client: httpx.Client, **body: object) -> dict:
    resp = client.post("/sources/photos/sync", json=body)
    assert resp.status_code == 202, resp.text
    return wait(client, resp.json())


def listed(client: httpx.Client, name: str) -> dict:
    return next(s for s in client.get("/vector-spaces").json()["data"] if s["name"] == name)


def test_a_second_model_fills_its_own_space(
    client: httpx.Client, setup: tuple[LiveServer, Path, Settings], mini_checkpoint: Path
) -> None:
    _, photos, settings = setup
    body = {"name": "photos", "kind": "local", "config": {"path": str(photos)}}
    assert client.post("/sources", json=body).status_code == 201
    assert sync(client)["state"] == "succeeded"
    assets = {a["key"]: a for a in client.get("/assets").json()["data"]}
    red = assets["red.png"]
    before = client.post("/search", json={"like": [red["id"]], "limit": 10}).json()["hits"]

    job = sync(client, space="mini", model=MINI, pretrained=str(mini_checkpoint))
    assert job["kind"] == "space_sync" and job["state"] == "succeeded", job
    assert job["counts"] == {"seen": 6, "added": 6, "updated": 0, "unchanged": 0, "failed": 0}
    info = listed(client, "mini")
    assert (info["dim"], info["distance"], info["count"], info["model"]) == (48, "cosine", 6, MINI)
    # The encoder's space and the payloads are as they were.
    assert client.post("/search", json={"like": [red["id"]], "limit": 10}).json()["hits"] == [
        {**h, "asset": {**h["asset"], "vectors": h["asset"]["vectors"] + ["mini"]}} for h in before
    ]
    # The space holds what the second model makes of each image, computed here by that model.
    from service.encoder import load_encoder

    mini = load_encoder(settings.model_copy(update={"model": MINI, "pretrained": str(mini_checkpoint)}))
    query = mini.encode_images([Image.open(photos / "red.png").convert("RGB")])[0]
    hits = client.post("/search", json={"vector": query.tolist(), "space": "mini", "limit": 3}).json()["hits"]
    assert hits[0]["id"] == red["id"] and hits[0]["score"] == pytest.approx(1.0, abs=1e-3)
    # By example in the space: ranked by the second model's vectors, as numpy ranks them.
    keys = sorted(assets)
    mine = mini.encode_images([Image.open(photos / k).convert("RGB") for k in keys])
    cosines = mine @ mine[keys.index("red.png")]
    expected = [assets[keys[i]]["id"] for i in np.argsort(-cosines) if keys[i] != "red.png"]
    like = client.post("/search", json={"like": [red["id"]], "space": "mini", "limit": 10}).json()["hits"]
    assert [h["id"] for h in like] == expected
    np.testing.assert_allclose([h["score"] for h in like], np.sort(cosines)[::-1][1:], atol=1e-4)

    again = sync(client, space="mini", model=MINI, pretrained=str(mini_checkpoint))
    assert again["counts"]["unchanged"] == 6 and again["counts"]["added"] == 0
    # Another model into the same space is refused; so is a model without a space.
    resp = client.post("/sources/photos/sync", json={"space": "mini", "model": OFFLINE_MODEL})
    assert resp.status_code == 409
    resp = client.post("/sources/photos/sync", json={"model": MINI})
    assert resp.status_code == 422 and resp.json()["detail"].startswith("space:")


def test_a_changed_asset_keeps_its_user_vectors_marked_stale(
    client: httpx.Client, setup: tuple[LiveServer, Path, Settings], mini_checkpoint: Path
) -> None:
    _, photos, _ = setup
    assets = {a["key"]: a for a in client.get("/assets").json()["data"]}
    grad = assets["grad0.png"]
    assert (
        client.post("/vector-spaces", json={"name": "own", "dim": 3, "distance": "euclid"}).status_code == 201
    )
    rows = [{"asset_id": a["id"], "vector": [float(n), 0.0, 0.0]} for n, a in enumerate(assets.values())]
    resp = client.post(
        "/vector-spaces/own/vectors", files={"file": ("v.jsonl", "\n".join(map(json.dumps, rows)))}
    )
    assert wait(client, resp.json())["counts"]["imported"] == 6
    # A sync with nothing changed rewrites nothing; a changed file is re-embedded, its vectors kept.
    assert sync(client)["counts"]["unchanged"] == 6
    time.sleep(0.01)
    solid((10, 200, 10)).save(photos / "grad0.png")
    job = sync(client)
    assert job["counts"]["updated"] == 1, job
    asset = client.get(f"/assets/{grad['id']}").json()
    assert set(asset["vectors"]) >= {"own", "mini"}
    own_hits = client.post("/search", json={"vector": [0.0, 0.0, 0.0], "space": "own", "limit": 10}).json()[
        "hits"
    ]
    assert len(own_hits) == 6  # nothing lost
    assert listed(client, "own")["stale"] == 1 and listed(client, "mini")["stale"] == 1
    # Re-importing (or re-syncing the model's space) makes them fresh again.
    fresh = sync(client, space="mini", model=MINI, pretrained=str(mini_checkpoint))
    assert fresh["counts"]["updated"] == 1 and fresh["counts"]["unchanged"] == 5
    assert listed(client, "mini")["stale"] == 0
    one = json.dumps({"asset_id": grad["id"], "vector": [9.0, 0.0, 0.0]})
    resp = client.post("/vector-spaces/own/vectors", files={"file": ("v.jsonl", one)})
    assert wait(client, resp.json())["state"] == "succeeded"
    assert listed(client, "own")["stale"] == 0
