"""Dependencies shared by the routes."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Depends, Query, Request

from service.auth import check
from service.catalog.catalog import Catalog
from service.errors import InvalidQuery
from service.jobs.runner import JobRunner

# Dependencies that do no I/O are `async def`: FastAPI runs a plain `def` dependency in its
# thread pool, one thread hand-off (and event-loop wake-up) per dependency per request, which
# py-spy showed among the largest costs of a search by id under load.


async def get_catalog(request: Request) -> Catalog:
    return request.app.state.catalog  # type: ignore[no-any-return]


async def get_runner(request: Request) -> JobRunner:
    return request.app.state.runner  # type: ignore[no-any-return]


async def filter_param(
    filter: Annotated[
        str | None,
        Query(description='A filter in the JSON filter language, e.g. {"source": "photos"}'),
    ] = None,
) -> dict[str, Any] | None:
    return parse_filter_json(filter)


def parse_filter_json(raw: str | None) -> dict[str, Any] | None:
    """A filter sent as a JSON string (query parameter or form field)."""
    if raw is None or not raw.strip():
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidQuery(f"not valid JSON: {exc.msg} at position {exc.pos}", path="filter") from None
    if not isinstance(value, dict):
        raise InvalidQuery("must be a JSON object", path="filter")
    return value


# POSTs that only read (a search body, two evaluations to compare, a search from an error).
READ_POSTS = ("/search", "/search/image", "/evaluations/compare", "/similar")


async def authorize(request: Request) -> None:
    """Every /api/v1 route: reads need `read`, changes need `write` (when keys are configured)."""
    keys = request.app.state.api_keys
    if not keys:
        return
    path = request.url.path
    reading = request.method in ("GET", "HEAD", "OPTIONS") or path.endswith(READ_POSTS)
    check(keys, request.headers.get("authorization"), "read" if reading else "write")


CatalogDep = Annotated[Catalog, Depends(get_catalog)]
RunnerDep = Annotated[JobRunner, Depends(get_runner)]
FilterDep = Annotated[dict[str, Any] | None, Depends(filter_param)]
