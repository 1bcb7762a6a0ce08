"""The map's versions on PostgreSQL: the one windowed query gives what one query per kind gave.

The mix of job kinds and states is tests/unit/catalog/test_versions.py's, in a private
database (tests/integration/sql_dbs.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from service.config import IndexSettings
from service.index.edge import EdgeIndex
from service.state import StateStore
from tests.integration.sql_dbs import private_database, unreachable_reason
from tests.unit.catalog.test_versions import check_versions_match_the_reference


@pytest.fixture
def store() -> Iterator[StateStore]:
    reason = unreachable_reason("postgresql")
    if reason:
        pytest.skip(reason)
    with private_database("postgresql") as db:
        s = StateStore(db.url)
        yield s
        s.close()


def test_versions_match_the_reference_in_one_query_on_postgresql(store: StateStore, tmp_path: Path) -> None:
    index = EdgeIndex(tmp_path / "index", vector_name="clip", dim=8, settings=IndexSettings())
    try:
        check_versions_match_the_reference(store, index)
    finally:
        index.close()
