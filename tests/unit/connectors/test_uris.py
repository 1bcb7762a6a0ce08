"""Opening bytes by URI scheme, in the one place every connector uses: files under a root, own schemes."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.base import AssetRecord, Blob
from connectors.uris import UriOpener, sniff_media_type
from service.errors import AssetError
from tests.images import solid


def record(uri: str, media_type: str | None = None) -> AssetRecord:
    return AssetRecord(key="k", uri=uri, version="", media_type=media_type)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "root" / "sub dir").mkdir(parents=True)
    solid((1, 2, 3)).save(tmp_path / "root" / "sub dir" / "a.png")
    solid((1, 2, 3)).save(tmp_path / "outside.png")
    return tmp_path / "root"


def test_plain_paths_and_file_uris_open_under_the_root(root: Path) -> None:
    opener = UriOpener(root=root)
    data = (root / "sub dir" / "a.png").read_bytes()
    assert opener.open(record("sub dir/a.png")).data == data
    blob = opener.open(record((root / "sub dir" / "a.png").as_uri()))
    assert blob.data == data and blob.media_type == "image/png"  # sniffed: no name given
    assert opener.open(record("file://localhost" + str(root / "sub dir" / "a.png"))).data == data


def test_nothing_outside_the_root_opens(root: Path) -> None:
    opener = UriOpener(root=root)
    (root / "link.png").symlink_to(root.parent / "outside.png")
    for uri in ["../outside.png", (root.parent / "outside.png").as_uri(), "link.png", "/etc/passwd"]:
        with pytest.raises(AssetError, match="resolves outside the source's root"):
            opener.open(record(uri))
    with pytest.raises(AssetError, match="does not exist"):
        opener.open(record("sub dir/gone.png"))
    with pytest.raises(AssetError, match="another host"):
        opener.open(record("file://nas/share/a.png"))
    with pytest.raises(AssetError, match="has no `root`"):
        UriOpener().open(record("a.png"))


def test_unknown_schemes_are_refused_with_the_known_ones() -> None:
    with pytest.raises(AssetError, match=r"'ftp' is not supported \(file, http, https, s3\)"):
        UriOpener().open(record("ftp://host/a.png"))
    with pytest.raises(AssetError, match="host 'example.com' is not in the source's `allow_http_hosts`"):
        UriOpener(allow_http_hosts=["*.example.org"]).open(record("https://example.com/a.png"))


def test_a_source_adds_its_own_scheme() -> None:
    seen: list[str] = []

    def from_row(rec: AssetRecord) -> Blob:
        seen.append(rec.uri)
        return Blob(data=b"GIF89a...", media_type="image/gif")

    opener = UriOpener(schemes={"sql": from_row})
    assert opener.open(record("sql://photos/42")).media_type == "image/gif"
    assert seen == ["sql://photos/42"]
    with pytest.raises(AssetError, match=r"\(file, http, https, s3, sql\)"):
        opener.open(record("gopher://x"))


def test_media_types_are_sniffed_from_the_first_bytes() -> None:
    assert sniff_media_type(b"\x89PNG\r\n\x1a\n....") == "image/png"
    assert sniff_media_type(b"\xff\xd8\xff\xe0") == "image/jpeg"
    assert sniff_media_type(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp"
    assert sniff_media_type(b"%PDF-1.7") is None
