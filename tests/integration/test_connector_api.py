"""Sources through the REST API: a wrong path is the user's input (422), an unreachable source is a 503."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def client(live_server) -> Iterator[httpx.Client]:  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=live_server.url, timeout=30) as c:
        yield c


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def add(client: httpx.Client, kind: str, config: dict[str, object]) -> httpx.Response:
    return client.post("/api/v1/sources", json={"name": "photos", "kind": kind, "config": config})


def test_a_local_source_whose_path_does_not_exist_is_a_422_that_names_the_path(
    client: httpx.Client, tmp_path: Path
) -> None:
    missing = tmp_path / "no" / "such" / "photos"
    resp = add(client, "local", {"path": str(missing)})
    assert resp.status_code == 422, resp.text
    body = resp.json()
    assert body["error"] == "InvalidConfig" and str(missing) in body["detail"] and "path" in body["detail"]
    assert client.get("/api/v1/sources/photos").status_code == 404  # nothing was recorded

    a_file = tmp_path / "one.jpg"
    a_file.write_bytes(b"not a folder")
    resp = add(client, "local", {"path": str(a_file)})
    assert resp.status_code == 422 and "is not a directory" in resp.json()["detail"], resp.text

    (tmp_path / "photos").mkdir()
    assert add(client, "local", {"path": str(tmp_path / "photos")}).status_code == 201


def test_an_s3_source_that_cannot_be_reached_is_a_503(client: httpx.Client) -> None:
    config = {
        "bucket": "photos",
        "endpoint_url": f"http://127.0.0.1:{closed_port()}",
        "access_key_id": "k",
        "secret_access_key": "s3-secret-not-shown",
        "connect_timeout_s": 1,
    }
    resp = add(client, "s3", config)
    assert resp.status_code == 503, resp.text
    body = resp.json()
    assert body["error"] == "SourceUnavailable" and "cannot reach the S3 endpoint" in body["detail"]
    assert "s3-secret-not-shown" not in resp.text


def test_a_sql_source_that_cannot_be_reached_is_a_503_without_the_password(client: httpx.Client) -> None:
    url = f"postgresql+psycopg://loupe:hunter2-secret@127.0.0.1:{closed_port()}/db"
    resp = add(client, "sql", {"url": url, "table": "t", "key": "id", "uri_column": "p", "max_attempts": 2})
    assert resp.status_code == 503, resp.text
    assert resp.json()["error"] == "SourceUnavailable" and "hunter2-secret" not in resp.text


def test_an_unknown_kind_is_a_422(client: httpx.Client) -> None:
    resp = add(client, "ftp", {})
    assert resp.status_code == 422, resp.text
