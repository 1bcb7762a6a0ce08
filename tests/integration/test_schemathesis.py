"""`schemathesis run --checks all` against a live server: every answer as the OpenAPI document says."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.config import Settings
from tests.conftest import LiveServer
from tests.images import write_zoo

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")

# The command line, not the pytest plugin: it is what a user runs (the reproduction), it
# runs every phase (examples, coverage, fuzzing, stateful) with positive and negative data, and
# the plugin's lazy fixture loader does not run under pytest 9.
#
# - Requests that act on the world get schema-invalid data only, which must be rejected before
#   any handler runs: POST /sources contacts the source it names (an S3 endpoint, a database
#   URL); exports write files at server paths and push to Label Studio. Their tests send valid ones.
# - Filters, facet fields and colour columns are languages and data the schema cannot enumerate
#   (a field exists once some asset has it): the fuzzer draws them from real values, in the
#   phases that read dictionaries (not coverage). The filter language has its own tests
#   (tests/unit/index), where every malformed filter is a 422 naming its path.
CONFIG = """
generation.max-examples = 15
generation.database = "none"

[dictionaries.filters]
values = ['{"source": "photos"}', '{"label": {"in": ["bike", "car"]}}', '{"width": {"gte": 10}}',
          '{"not": {"status": "missing"}}', '{}', '']

[dictionaries.fields]
values = ["source", "status", "media_type", "label", "meta.label"]

[dictionaries.orderable]
values = ["width", "height", "size_bytes", "modified_at", "synced_at"]

[dictionaries.cursors]
values = ["00000000-0000-0000-0000-000000000000", "6f1d8a52-3c1b-5f0e-9a57-4c6f75706521"]

[dictionaries.spaces]
values = ["SPACE"]

[parameters]
"query.space" = { dictionary = "spaces" }
"query.filter" = { dictionary = "filters" }
"path.field" = { dictionary = "fields" }
"query.field" = { dictionary = "fields" }
"query.order_by" = { dictionary = "orderable" }
"query.cursor" = { dictionary = "cursors" }

[[operations]]
include-path-regex = "^/api/v1/exports"
generation.mode = "negative"
phases.stateful.enabled = false

[[operations]]
include-path = "/api/v1/sources"
include-method = "POST"
generation.mode = "negative"

[[operations]]
include-path-regex = "^/api/v1/(facets/|projector)"
phases.coverage.enabled = false

# order_by names a field with a numeric index, and an ordered listing's cursor is opaque: both
# are data the schema cannot enumerate (tests/integration/test_signals_api.py sends bad ones).
[[operations]]
include-path = "/api/v1/assets"
include-method = "GET"
phases.coverage.enabled = false
"""


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    from service.api.app import create_app
    from service.catalog.catalog import Catalog
    from tests.fakes import FakeEncoder

    root = tmp_path_factory.mktemp("fuzz")
    photos = root / "photos"
    write_zoo(photos)
    (photos / "red.jpg.json").write_text(json.dumps({"label": "bike", "score": 0.5}))
    settings = Settings(home=root / "home", _env_file=None)  # type: ignore[call-arg]
    catalog = Catalog(settings, encoder=FakeEncoder())
    catalog.add_source("photos", "local", {"path": str(photos)})
    catalog.sync("photos")
    with LiveServer(create_app(settings, catalog=catalog)) as server:
        # The encoder's space by name: what the fuzzer's `space` parameters take (spaces are data).
        spaces = httpx.get(f"{server.url}/api/v1/vector-spaces").json()["data"]
        server.space = spaces[0]["name"]  # type: ignore[attr-defined]
        yield server
    catalog.close()


def test_every_operation_answers_as_documented_under_every_check(
    fuzz_server: LiveServer, tmp_path: Path
) -> None:
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG.replace('"SPACE"', json.dumps(fuzz_server.space)))  # type: ignore[attr-defined]
    args = [str(SCHEMATHESIS), "--config-file", str(config), "run", f"{fuzz_server.url}/openapi.json"]
    args += ["--checks", "all", "--workers", "1"]
    # cwd: schemathesis keeps its cache and hypothesis its examples there, not in the clone.
    result = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    report = result.stdout + result.stderr
    assert result.returncode == 0, report[-30_000:]
    tested = next(line for line in report.splitlines() if line.strip().startswith("Tested:"))
    assert int(tested.split()[-1]) >= 20, report[-5_000:]


def test_enums_in_the_document_are_the_registries(fuzz_server: LiveServer) -> None:
    from connectors.registry import kinds
    from service.catalog.projector import methods
    from service.export.base import targets

    spec = httpx.get(f"{fuzz_server.url}/openapi.json").json()
    schemas = spec["components"]["schemas"]
    assert sorted(schemas["SourceCreate"]["properties"]["kind"]["enum"]) == kinds()
    assert sorted(schemas["ExportRequest"]["properties"]["target"]["enum"]) == targets()
    (method,) = [p for p in spec["paths"]["/api/v1/projector"]["get"]["parameters"] if p["name"] == "method"]
    # One choice is a `const`, several an `enum`.
    assert method["schema"].get("enum", [method["schema"].get("const")]) == methods()


def test_openapi_lists_every_documented_route(fuzz_server: LiveServer) -> None:
    spec = httpx.get(f"{fuzz_server.url}/openapi.json").json()
    paths = set(spec["paths"])
    for route in (
        "/api/v1/sources",
        "/api/v1/sources/{name}/sync",
        "/api/v1/jobs/{job_id}",
        "/api/v1/assets",
        "/api/v1/assets/{asset_id}/content",
        "/api/v1/search",
        "/api/v1/search/image",
        "/api/v1/facets/{field}",
        "/api/v1/exports",
        "/health",
    ):
        assert route in paths, route
