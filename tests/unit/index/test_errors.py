"""Third-party errors map onto Loupe's tree at the index boundary; only transient ones retry."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from service.config import IndexSettings
from service.errors import IndexUnavailable, InvalidQuery, LoupeError
from service.index.edge_store import edge_errors
from service.index.server import ServerIndex
from service.index.server_client import qdrant_errors, redact


def response(status: int, error: str = "boom") -> UnexpectedResponse:
    body = json.dumps({"status": {"error": error}}).encode()
    return UnexpectedResponse(status, "reason", body, httpx.Headers())


@pytest.mark.parametrize(
    ("raised", "expected", "words"),
    [
        (
            Exception("Wrong input: Vector dimension error: expected dim: 4, got 3"),
            InvalidQuery,
            "dim",
        ),
        (Exception("No appropriate index for faceting: `a`"), InvalidQuery, "faceting"),
        (ValueError("failed to parse zzz as UUID"), InvalidQuery, "UUID"),
        (Exception("Service runtime error: Shard is not initialized"), IndexUnavailable, "runtime"),
    ],
)
def test_edge_errors(raised: Exception, expected: type[LoupeError], words: str) -> None:
    with pytest.raises(expected, match=words) as info, edge_errors("search"):
        raise raised
    assert info.value.__cause__ is raised


@pytest.mark.parametrize(
    ("raised", "expected", "words"),
    [
        (response(400, "Bad request: wrong filter"), InvalidQuery, "wrong filter"),
        (response(422), InvalidQuery, "boom"),
        (response(401), IndexUnavailable, "LOUPE_QDRANT_API_KEY"),
        (response(404, "Collection `assets` doesn't exist"), IndexUnavailable, "doesn't exist"),
        (response(503), IndexUnavailable, "failed to search"),
        (
            ResponseHandlingException(httpx.ConnectError("refused")),
            IndexUnavailable,
            "cannot reach",
        ),
        (httpx.ReadTimeout("slow"), IndexUnavailable, "cannot reach"),
        (ValueError("Collection assets not found"), InvalidQuery, "not found"),
    ],
)
def testqdrant_errors(raised: Exception, expected: type[LoupeError], words: str) -> None:
    with pytest.raises(expected, match=words), qdrant_errors("http://q:6333", "search"):
        raise raised


def _bare(retries: int) -> ServerIndex:
    index = ServerIndex.__new__(ServerIndex)  # no client: only `_call` is under test
    index.settings = IndexSettings(retries=retries)
    index._where = "http://q:6333"
    return index


def _failing(errors: list[Exception]) -> Any:
    def call() -> str:
        if errors:
            raise errors.pop(0)
        return "ok"

    return call


def test_transient_failures_are_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("service.retry.time.sleep", lambda _s: None)
    flaky = _failing([response(503), ResponseHandlingException(httpx.ConnectError("x"))])
    assert _bare(retries=2)._call("search", flaky) == "ok"
    with pytest.raises(IndexUnavailable):
        _bare(retries=1)._call("search", _failing([response(502), response(504)]))


def test_terminal_failures_are_not_retried() -> None:
    errors: list[Exception] = [response(500), response(200)]
    with pytest.raises(IndexUnavailable):
        _bare(retries=3)._call("search", _failing(errors))
    assert len(errors) == 1
    with pytest.raises(InvalidQuery):
        _bare(retries=3)._call("search", _failing([response(400)]))


def test_credentials_never_reach_messages() -> None:
    assert redact("https://user:secret@qdrant.example:6333/x") == "https://qdrant.example:6333/x"
    assert redact("http://127.0.0.1:6333") == "http://127.0.0.1:6333"
