"""A 405 names, in `Allow`, the methods the OpenAPI document gives the path: all of them, and only them."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient

from service.api import errors


def app() -> FastAPI:
    api = FastAPI()
    errors.install(api)
    things = APIRouter(prefix="/things")

    @things.get("/{thing_id}")
    def get_thing(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    @things.delete("/{thing_id}")
    def delete_thing(thing_id: str) -> None: ...

    @things.post("/compare")
    def compare() -> dict[str, str]:
        return {}

    @things.get("")
    def list_things() -> list[str]:
        return []

    @things.post("")
    def add_thing() -> dict[str, str]:
        return {}

    # Included with a prefix: FastAPI nests the router instead of copying its routes.
    api.include_router(things, prefix="/v1")
    return api


def test_allow_lists_every_route_of_the_path_and_only_the_most_specific_template() -> None:
    client = TestClient(app())
    for method, path, allowed in (
        ("OPTIONS", "/v1/things", "GET, POST"),  # two routes, one path
        ("PUT", "/v1/things/7", "GET, DELETE"),
        ("OPTIONS", "/v1/things/compare", "POST"),  # not GET: /things/{thing_id} is less specific
    ):
        resp = client.request(method, path)
        assert resp.status_code == 405, (method, path, resp.text)
        assert resp.headers["allow"] == allowed, (method, path)
        assert resp.json() == {
            "error": "MethodNotAllowed",
            "detail": f"{method} is not allowed here; allowed: {allowed}",
        }
    assert client.get("/v1/things/compare").json() == {"id": "compare"}  # routing itself is unchanged
