"""Asset ids are uuid5 of (source, key): the fast spelling must give the very same ids, since
every catalog already on disk is keyed by them."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from service.catalog.assets import ASSET_NAMESPACE, asset_id


def _reference(source: str, key: str) -> str:
    return str(uuid.uuid5(ASSET_NAMESPACE, f"{source}\x00{key}"))


@given(st.text(), st.text())
def test_the_id_is_uuid5_of_source_and_key(source: str, key: str) -> None:
    source, key = (s.encode("utf-8", "replace").decode() for s in (source, key))  # no lone surrogates
    assert asset_id(source, key) == _reference(source, key)


def test_known_ids_stay_what_they_were() -> None:
    # Pinned: ids written by earlier versions must not move.
    assert asset_id("bench", "0.jpg") == "9798f00c-3482-50ed-8c30-9119bfac6c13"
    assert uuid.UUID(asset_id("photos", "a/b ü.png")).version == 5
    assert asset_id("s", "k") != asset_id("s\x00k", "")  # the separator keeps names apart
