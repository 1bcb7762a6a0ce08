"""The one retry policy at the HTTP boundaries (a Qdrant server, Label Studio), against a flaky real server.

`Flaky` is a real HTTP server on 127.0.0.1 that fails its first requests as
told (a status, or a connection dropped before any answer) and then answers;
the production clients (qdrant-client, Loupe's Label Studio client) talk real
HTTP to it, so what is retried, how often, and what is not, is theirs.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from service.errors import (
    ExportError,
    ExportUnavailable,
    IndexUnavailable,
    InvalidQuery,
    LoupeError,
)
from service.export.label_studio import LabelStudioClient
from service.index.server_client import call, make_client

pytestmark = pytest.mark.timeout(60)
DROP = 0  # a failure that is no answer at all: the connection closes after the request


class Flaky:
    """Fails the first requests with `failures` (statuses, or DROP), then answers `body` with 200."""

    def __init__(self, failures: list[int], body: Any) -> None:
        self.failures = list(failures)
        self.body = json.dumps(body).encode()
        self.requests: list[str] = []
        lock = threading.Lock()
        flaky = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                with lock:
                    flaky.requests.append(f"{self.command} {self.path}")
                    status = flaky.failures.pop(0) if flaky.failures else 200
                if status == DROP:
                    self.close_connection = True
                    self.connection.close()
                    return
                body = flaky.body if status == 200 else b'{"detail": "flaky says no"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = _answer  # noqa: N815 (the stdlib's names)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def flaky() -> Iterator[Any]:
    made: list[Flaky] = []

    def make(failures: list[int], body: Any) -> Flaky:
        made.append(Flaky(failures, body))
        return made[-1]

    yield make
    for server in made:
        server.close()


# -- a Qdrant server ------------------------------------------------------------------

COLLECTIONS = {"result": {"collections": [{"name": "assets"}]}, "status": "ok", "time": 0.0}


def qdrant_call(server: Flaky, *, retries: int) -> Any:
    client = make_client(server.url, api_key=None, timeout_s=2)
    try:
        return call(server.url, "list collections", client.get_collections, retries=retries)
    finally:
        client.close()


@pytest.mark.parametrize("failures", [[503, 503], [DROP, 502], [504]])
def test_qdrant_transient_failures_are_retried_then_succeed(flaky: Any, failures: list[int]) -> None:
    server = flaky(failures, COLLECTIONS)
    answer = qdrant_call(server, retries=2)
    assert [c.name for c in answer.collections] == ["assets"]
    assert len(server.requests) == len(failures) + 1


@pytest.mark.parametrize(
    ("status", "expected"),
    [(401, IndexUnavailable), (403, IndexUnavailable), (500, IndexUnavailable), (400, InvalidQuery)],
)
def test_qdrant_terminal_failures_are_not_retried(
    flaky: Any, status: int, expected: type[LoupeError]
) -> None:
    server = flaky([status, status], COLLECTIONS)
    with pytest.raises(expected) as info:
        qdrant_call(server, retries=3)
    assert not info.value.transient
    assert len(server.requests) == 1


def test_qdrant_retries_are_bounded(flaky: Any) -> None:
    server = flaky([503] * 5, COLLECTIONS)
    with pytest.raises(IndexUnavailable, match="failed to list collections") as info:
        qdrant_call(server, retries=1)
    assert info.value.transient
    assert len(server.requests) == 2


# -- Label Studio ------------------------------------------------------------------------

TOKEN = "a" * 40  # a legacy token: no refresh call in between


@pytest.mark.parametrize("failures", [[503, 429], [DROP], [502, 504]])
def test_label_studio_reads_are_retried_through_transient_failures(flaky: Any, failures: list[int]) -> None:
    server = flaky(failures, {"results": [], "count": 0})
    client = LabelStudioClient(server.url, TOKEN)
    try:
        client.check_access()
    finally:
        client.close()
    assert server.requests == ["GET /api/projects/?page_size=1"] * (len(failures) + 1)


@pytest.mark.parametrize("status", [401, 403, 404])
def test_label_studio_auth_and_missing_are_answers_not_retried(flaky: Any, status: int) -> None:
    server = flaky([status] * 3, {"results": []})
    client = LabelStudioClient(server.url, TOKEN)
    try:
        with pytest.raises(ExportError) as info:
            client.check_access()
    finally:
        client.close()
    assert not info.value.transient and str(status) in info.value.detail
    assert len(server.requests) == 1


def test_label_studio_gives_up_after_the_policy_s_tries(flaky: Any) -> None:
    server = flaky([503] * 10, {"results": []})
    client = LabelStudioClient(server.url, TOKEN)
    try:
        with pytest.raises(ExportUnavailable, match="HTTP 503"):
            client.check_access()
    finally:
        client.close()
    assert len(server.requests) == 3  # RETRY.attempts


def test_a_label_studio_import_is_not_retried_by_the_client(flaky: Any) -> None:
    # An import may have landed despite the error: the exporter looks at the project first.
    server = flaky([503], {"task_count": 1})
    client = LabelStudioClient(server.url, TOKEN)
    try:
        with pytest.raises(ExportUnavailable):
            client.import_tasks(7, [{"data": {"image": "x"}}])
    finally:
        client.close()
    assert server.requests == ["POST /api/projects/7/import"]
