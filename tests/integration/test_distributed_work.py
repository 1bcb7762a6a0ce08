"""The Ray workers' code run as plain functions (no cluster): what a read task and an encoder actor hand back.

Ray Data calls `read_and_decode` with blocks and `EncodeActor` with batches; run here
directly on real files, the real loupe-tiny model and a real embedded index, they show
the row contract the driver relies on (one row per asset, a bad asset an error row)
and the actors' own writes, the path a Qdrant server takes (the server itself is
tested where Docker exists: tests/integration/test_distributed.py).
"""

from __future__ import annotations

import functools
import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from connectors.base import AssetRecord
from service.catalog.assets import asset_id
from service.catalog.distributed_work import EncodeActor, read_and_decode
from service.config import OFFLINE_MODEL, Settings
from service.index import open_index, vector_name_for
from tests.images import write_bad, write_zoo


def _block(root: Path, names: list[str]) -> dict[str, Any]:
    records = [AssetRecord(key=n, uri=(root / n).as_uri(), version="1") for n in names]
    return {
        "id": np.array([asset_id("imgs", r.key) for r in records]),
        "record": np.array([pickle.dumps(r) for r in records], dtype=object),
        "existed": np.array([False] * len(records)),
    }


def _read(root: Path, names: list[str]) -> dict[str, Any]:
    source = {"name": "imgs", "kind": "local", "config": json.dumps({"path": str(root)})}
    return read_and_decode(
        _block(root, names), source=source, target=64, max_pixels=100_000_000, max_bytes=10**8
    )


def test_a_read_task_gives_one_row_per_asset_and_a_bad_asset_is_an_error_row(tmp_path: Path) -> None:
    write_zoo(tmp_path)
    write_bad(tmp_path)
    names = ["red.jpg", "notimage.png", "rotated.jpg", "truncated.jpg"]
    out = _read(tmp_path, names)
    assert list(out["key"]) == names
    errors = dict(zip(out["key"], out["error"], strict=True))
    assert errors["red.jpg"] == "" and errors["rotated.jpg"] == ""
    assert errors["notimage.png"] == "not an image, or a format Loupe cannot read"
    assert errors["truncated.jpg"].startswith("image is corrupt or truncated")
    assert not any(out["fatal"])
    rotated = json.loads(out["payload"][2])
    assert (rotated["width"], rotated["height"]) == (40, 80)  # EXIF orientation applied, as locally
    assert len(out["pixels"][2]) == out["width"][2] * out["height"][2] * 3


@functools.cache
def _settings(home: str) -> Settings:
    return Settings(home=Path(home), model=OFFLINE_MODEL, _env_file=None)  # type: ignore[call-arg]


def test_an_encoder_actor_embeds_like_the_encoder_and_writes_when_asked(tmp_path: Path) -> None:
    from service.encoder import load_encoder

    write_zoo(tmp_path / "imgs")
    settings = _settings(str(tmp_path / "home"))
    encoder = load_encoder(settings)
    names = ["red.jpg", "green.png", "notimage.png"]
    (tmp_path / "imgs" / "notimage.png").write_bytes(b"not an image")
    source = {"name": "imgs", "kind": "local", "config": json.dumps({"path": str(tmp_path / "imgs")})}
    block = read_and_decode(
        _block(tmp_path / "imgs", names),
        source=source,
        target=encoder.image_size,
        max_pixels=100_000_000,
        max_bytes=10**8,
    )
    name = vector_name_for(encoder.model_name, encoder.pretrained)
    actor = EncodeActor(settings=settings, vector_name=name, dim=encoder.dim, write=True)
    out = actor(block)
    assert list(out["id"]) == list(block["id"]) and out["error"][2]
    from service.catalog.decode import decode

    direct = encoder.encode_images(
        [
            decode((tmp_path / "imgs" / n).read_bytes(), target=encoder.image_size, max_pixels=10**8).image
            for n in names[:2]
        ]
    )
    np.testing.assert_allclose(out["vector"][:2], direct, atol=2e-5)
    assert (out["t_encode"][:2] > 0).all() and (out["t_upsert"][:2] > 0).all()
    assert list(out["payload"]) == ["", "", ""]  # written already: nothing to carry back
    actor.writer.index.close()  # type: ignore[union-attr]
    index = open_index(settings, vector_name=name, dim=encoder.dim)
    try:
        got = {r.id: r for r in index.retrieve(list(out["id"]), with_vectors=True)}
        assert sorted(got) == sorted(out["id"][:2])
        assert got[out["id"][0]].payload["key"] == "red.jpg"
        np.testing.assert_allclose(got[out["id"][0]].vector, out["vector"][0], atol=1e-6)
    finally:
        index.close()


def test_an_actor_whose_model_has_another_size_than_the_index_refuses_to_start(tmp_path: Path) -> None:
    from service.errors import EncoderError

    with pytest.raises(EncoderError, match="embeds in .* dimensions but the index holds 7"):
        EncodeActor(settings=_settings(str(tmp_path / "home")), vector_name="x", dim=7, write=False)
