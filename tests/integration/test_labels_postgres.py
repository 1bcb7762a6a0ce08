"""Label sets on a PostgreSQL state store: the tables made by the store's upgrade, an import
spooled and written by its job (on another catalog sharing the store, as another replica),
the spool gone afterwards, and a store from before label sets brought up to date."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from service.catalog.catalog import Catalog
from service.config import Settings
from service.jobs.runner import execute
from service.labels import admin
from service.labels.schemas import LabelSetCreate
from service.state import StateStore
from tests.fakes import FakeEncoder
from tests.integration.labels_helpers import SIZE, filename, jsonl
from tests.integration.sql_dbs import TestDB, private_database, unreachable_reason


@pytest.fixture
def pg() -> Iterator[TestDB]:
    reason = unreachable_reason("postgresql")
    if reason is not None:
        pytest.skip(reason)
    with private_database("postgresql") as db:
        yield db


def test_an_import_spooled_in_postgresql_is_written_by_its_job(pg: TestDB, tmp_path: Path) -> None:
    from service.synth.dataset import write_dataset

    # A store made before label sets: the upgrade adds their tables.
    with pg.engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE sources (name VARCHAR(200) PRIMARY KEY, kind VARCHAR(32), config JSON)"
        )
    write_dataset(tmp_path / "shapes", 8, 5, size=SIZE, image_format="png")
    settings = Settings(home=tmp_path / "home", database_url=SecretStr(pg.url), _env_file=None)  # type: ignore[call-arg]
    catalog = Catalog(settings, encoder=FakeEncoder())
    try:
        assert {"label_sets", "label_import_batches"} <= set(sa.inspect(pg.engine).get_table_names())
        catalog.add_source("shapes", "local", {"path": str(tmp_path / "shapes")})
        assert catalog.sync("shapes").state == "succeeded"
        admin.create(catalog, LabelSetCreate(name="gt", role="ground_truth", task="classification"))
        data = jsonl([{"source": "shapes", "key": filename(i), "label": f"c{i % 2}"} for i in range(8)])
        job = admin.begin_upload(catalog, "gt", data, fmt="loupe", source=None)
        assert job.state == "queued"
        with pg.engine.connect() as conn:
            spooled = conn.exec_driver_sql("SELECT count(*) FROM label_import_batches").scalar()
        assert spooled == 1
        claimed = catalog.jobs.claim(catalog.owner, kinds=["label_import"], stale_after_s=30)
        assert claimed is not None and claimed.id == job.id
        done = execute(catalog, claimed)
        assert done.state == "succeeded" and done.counts["imported"] == 8, done.detail
        with pg.engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM label_import_batches").scalar() == 0
            row = conn.exec_driver_sql("SELECT assets, classes FROM label_sets WHERE name = 'gt'").one()
        assert row[0] == 8 and sorted(row[1]) == ["c0", "c1"]
        assert catalog.count({"labels.gt.label": "c1"}) == 4
        # The same store seen by another process: the set is there.
        other = StateStore(pg.url)
        try:
            from service.labels.store import LabelSetStore

            assert LabelSetStore(other).get("gt").assets == 8
        finally:
            other.close()
    finally:
        catalog.close()
