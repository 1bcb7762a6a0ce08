"""The local connector: listing, globs, sidecars, versions, links."""

from __future__ import annotations

import json
import os

import pytest

from connectors.base import AssetRecord
from connectors.local import LocalConnector
from connectors.registry import build, parse_config
from service.errors import AssetError, InvalidConfig
from tests.images import solid


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "photos"
    (root / "a" / "b").mkdir(parents=True)
    solid((1, 2, 3)).save(root / "one.jpg")
    solid((1, 2, 3)).save(root / "a" / "two.png")
    solid((1, 2, 3)).save(root / "a" / "b" / "three.webp")
    (root / "a" / "notes.txt").write_text("not an image")
    (root / "one.jpg.json").write_text(json.dumps({"label": "cat", "score": 0.5}))
    (root / "a" / "two.json").write_text(json.dumps({"label": "dog"}))
    return root


def keys(conn: LocalConnector) -> dict[str, object]:
    return {r.key: r for r in conn.list().records}


def test_lists_images_with_relative_keys_and_sidecars(tree):
    conn = build("p", "local", {"path": str(tree)})
    recs = keys(conn)
    assert set(recs) == {"one.jpg", "a/two.png", "a/b/three.webp"}
    assert recs["one.jpg"].metadata == {"label": "cat", "score": 0.5}
    assert recs["a/two.png"].metadata == {"label": "dog"}
    assert recs["a/b/three.webp"].media_type == "image/webp"
    assert recs["one.jpg"].uri.startswith("file:///")


def test_globs(tree):
    assert set(keys(build("p", "local", {"path": str(tree), "include": ["a/*"]}))) == {
        "a/two.png",
        "a/b/three.webp",
    }
    assert set(keys(build("p", "local", {"path": str(tree), "exclude": ["*.webp"]}))) == {
        "one.jpg",
        "a/two.png",
    }


def test_version_changes_with_file_and_sidecar(tree):
    conn = build("p", "local", {"path": str(tree)})
    before = keys(conn)["one.jpg"].version
    assert keys(conn)["one.jpg"].version == before
    os.utime(tree / "one.jpg.json", ns=(1, 1))
    assert keys(conn)["one.jpg"].version != before


def test_never_follows_links_out_of_the_root(tree, tmp_path):
    outside = tmp_path / "secret"
    outside.mkdir()
    solid((9, 9, 9)).save(outside / "leak.jpg")
    (tree / "escape").symlink_to(outside, target_is_directory=True)
    (tree / "leak.jpg").symlink_to(outside / "leak.jpg")
    (tree / "a" / "inside.jpg").symlink_to(tree / "one.jpg")
    (tree / "a" / "loop").symlink_to(tree, target_is_directory=True)
    found = set(keys(build("p", "local", {"path": str(tree)})))
    assert not any("leak" in k for k in found)
    assert "a/inside.jpg" in found


def test_fetch_refuses_escape(tree, tmp_path):
    conn = build("p", "local", {"path": str(tree)})
    solid((9, 9, 9)).save(tmp_path / "secret.jpg")
    (tree / "leak.jpg").symlink_to(tmp_path / "secret.jpg")
    for key in ["../../etc/passwd", "../secret.jpg", "leak.jpg"]:
        with pytest.raises(AssetError, match="resolves outside the source's root"):
            conn.fetch(AssetRecord(key=key, uri="", version=""))
    assert (
        conn.fetch(AssetRecord(key="a/two.png", uri="", version="")).data
        == (tree / "a" / "two.png").read_bytes()
    )
    with pytest.raises(AssetError, match="does not exist"):
        conn.fetch(AssetRecord(key="gone.jpg", uri="", version=""))


def test_missing_root_is_invalid_config_that_names_the_path(tmp_path):
    # The user's input is wrong (422), no upstream failed (502).
    missing = tmp_path / "nope"
    with pytest.raises(InvalidConfig, match=f"path: directory {missing} does not exist"):
        build("p", "local", {"path": str(missing)}).check()
    (tmp_path / "file.jpg").write_bytes(b"x")
    with pytest.raises(InvalidConfig, match="is not a directory"):
        build("p", "local", {"path": str(tmp_path / "file.jpg")}).check()


def test_bad_config_names_the_field():
    with pytest.raises(InvalidConfig, match="bucket"):
        parse_config("local", {"path": "/tmp", "bucket": "x"})
    with pytest.raises(InvalidConfig, match="valid kinds"):
        parse_config("ftp", {})


def test_bad_sidecar_is_kept_as_an_error_field(tree):
    (tree / "one.jpg.json").write_text("{not json")
    rec = keys(build("p", "local", {"path": str(tree)}))["one.jpg"]
    assert "not valid JSON" in rec.metadata["_sidecar_error"]
