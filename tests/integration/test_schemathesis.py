"""Property-based fuzzing of the whole OpenAPI surface: no 5xx, every answer as documented."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings

from service.config import Settings
from tests.conftest import LiveServer
from tests.images import write_zoo


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
        yield server
    catalog.close()


CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
]


def test_no_server_errors_and_answers_match_the_schema(fuzz_server: LiveServer) -> None:
    # Exports write files and reach other servers; they have their own tests.
    schema = schemathesis.openapi.from_url(f"{fuzz_server.url}/openapi.json").exclude(
        path_regex="^/api/v1/exports"
    )
    tested = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @hsettings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def fuzz(case: schemathesis.Case) -> None:
            response = case.call()
            assert response.status_code < 500, (case.method, case.path, response.text[:500])
            case.validate_response(response, checks=CHECKS)

        fuzz()
        tested.append(operation.label)
    assert len(tested) >= 15, tested


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
