"""Loupe with its Qdrant index unreachable: a clear error at start, 503s while it is gone, syncs resume.

No Qdrant server can run on these machines, so two stand-ins, each honest about
what it shows:

- `FakeQdrant`, a real HTTP server on 127.0.0.1 that speaks just enough of
  Qdrant's REST API to open a collection and answer reads of an empty one, and
  can be told to hang or to drop each connection once it has read the request
  (a node that stops mid-request), or be shut down (a closed port). Loupe's
  qdrant-client talks real HTTP to it, so timeouts, retries, the error mapping
  and the API's 503 are the production code's; and it records the requests,
  which shows what collection creation asks a cluster for.
- For a sync, which needs a store that keeps points, `ServerIndex` over
  qdrant-client's local mode, with the outage injected at the client boundary
  as the exception qdrant-client's HTTP transport raises for a refused
  connection (`ResponseHandlingException` from `httpx.ConnectError`).
  Everything above the client — ServerIndex's retries and error mapping, the
  sync pipeline, the job record, the API — is the real code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException

from service.api.app import create_app
from service.catalog import catalog as catalog_module
from service.catalog.catalog import Catalog
from service.config import IndexSettings, Settings
from service.index import open_index
from service.index.base import BUILTIN_FIELDS, VectorIndex
from service.index.plan import qdrant_key
from service.index.server import ServerIndex
from tests.conftest import LiveServer, free_port
from tests.fakes import FakeEncoder
from tests.images import gradient

ROOT = Path(__file__).resolve().parents[2]
COLLECTION = "assets"


# -- a Qdrant stand-in over real HTTP ------------------------------------------------------


def _collection_info(vector_name: str, dim: int, created: dict[str, Any]) -> dict[str, Any]:
    """A collection's description as Qdrant returns it, with the parameters it was created with."""
    local = QdrantClient(location=":memory:")
    params = models.VectorParams(size=dim, distance=models.Distance.COSINE)
    local.create_collection("c", vectors_config={vector_name: params})
    info: dict[str, Any] = local.get_collection("c").model_dump(mode="json", exclude_none=True)
    local.close()
    for key in ("shard_number", "replication_factor", "write_consistency_factor", "on_disk_payload"):
        if created.get(key) is not None:
            info["config"]["params"][key] = created[key]
    return info


class FakeQdrant:
    """Qdrant's REST API for one empty collection; `mode` "ok", "hang" or "close" (see module docstring)."""

    def __init__(self, *, vector_name: str, dim: int, exists: bool = False, port: int = 0) -> None:
        self.vector_name, self.dim, self.exists = vector_name, dim, exists
        self.mode = "ok"
        self.requests: list[tuple[str, str, Any]] = []
        self.created: dict[str, Any] = {}
        self._release = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def set_mode(self, mode: str) -> None:
        self.mode = mode
        if mode == "hang":
            self._release.clear()
        else:
            self._release.set()  # hung requests get their connection closed

    def stop(self) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=10)

    def answer(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        base = f"/collections/{COLLECTION}"
        routes: dict[tuple[str, str], Callable[[], Any]] = {
            ("GET", f"{base}/exists"): lambda: {"exists": self.exists},
            ("PUT", base): lambda: self._create(body),
            ("GET", base): lambda: _collection_info(self.vector_name, self.dim, self.created),
            ("PUT", f"{base}/index"): lambda: {"operation_id": 1, "status": "completed"},
            ("POST", f"{base}/points/count"): lambda: {"count": 0},
            ("POST", f"{base}/points/scroll"): lambda: {"points": [], "next_page_offset": None},
            ("POST", f"{base}/points/query"): lambda: {"points": []},
            ("POST", f"{base}/points"): lambda: [],
        }
        route = routes.get((method, path))
        if route is None:
            return 404, {"error": f"the fake has no {method} {path}"}
        return 200, route()

    def _create(self, body: dict[str, Any]) -> bool:
        self.created, self.exists = body, True
        return True

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length) if length else b""
        path = urlsplit(request.path).path
        self.requests.append((request.command, path, json.loads(raw) if raw else None))
        if self.mode == "hang":
            self._release.wait(60)
        if self.mode in ("hang", "close"):
            request.close_connection = True  # no response: the client sees the connection drop
            return
        status, result = self.answer(request.command, path, json.loads(raw) if raw else None)
        envelope = {"result": result, "status": "ok", "time": 0.0} if status == 200 else {"status": result}
        data = json.dumps(envelope).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)


def _handler(fake: FakeQdrant) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_args: Any) -> None:
            pass

        def do_GET(self) -> None:
            fake.handle(self)

        do_PUT = do_POST = do_DELETE = do_GET

    return Handler


# -- fixtures --------------------------------------------------------------------------------


def server_settings(tmp_path: Path, url: str, **index: Any) -> Settings:
    return Settings(  # type: ignore[call-arg]
        home=tmp_path / "home",
        qdrant_url=url,
        index=IndexSettings(timeout_s=1, retries=1, **index),
        _env_file=None,
    )


@pytest.fixture
def fake() -> Iterator[FakeQdrant]:
    enc = FakeEncoder()
    from service.index import vector_name_for

    server = FakeQdrant(vector_name=vector_name_for(enc.model_name, enc.pretrained), dim=enc.dim)
    yield server
    server.stop()


def assert_unavailable(resp: httpx.Response, *words: str) -> str:
    assert resp.status_code == 503, resp.text
    body = resp.json()
    assert set(body) == {"error", "detail"} and body["error"] == "IndexUnavailable", body
    assert "Traceback" not in body["detail"]
    for word in words:
        assert word in body["detail"], body["detail"]
    return str(body["detail"])


# -- collection creation ---------------------------------------------------------------------


def creations(fake: FakeQdrant) -> list[dict[str, Any]]:
    """The bodies of the create-collection requests the fake received."""
    return [
        body
        for method, path, body in fake.requests
        if (method, path) == ("PUT", f"/collections/{COLLECTION}")
    ]


def test_collection_creation_asks_for_the_configured_shards_and_replicas(
    fake: FakeQdrant, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOUPE_QDRANT_URL", fake.url)
    monkeypatch.setenv("LOUPE_INDEX__SHARD_NUMBER", "6")
    monkeypatch.setenv("LOUPE_INDEX__REPLICATION_FACTOR", "2")
    monkeypatch.setenv("LOUPE_INDEX__WRITE_CONSISTENCY_FACTOR", "2")
    settings = Settings(home=tmp_path / "home", _env_file=None)  # type: ignore[call-arg]
    index = open_index(settings, vector_name=fake.vector_name, dim=fake.dim)
    try:
        assert isinstance(index, ServerIndex)
        (create,) = [
            body for method, path, body in fake.requests if (method, path) == ("PUT", "/collections/assets")
        ]
        assert (create["shard_number"], create["replication_factor"], create["write_consistency_factor"]) == (
            6,
            2,
            2,
        )
        # int8 quantization by default: the int8 copy in RAM, the full vectors on disk.
        vectors = {fake.vector_name: {"size": fake.dim, "distance": "Cosine", "on_disk": True}}
        assert create["vectors"] == vectors
        int8 = {"scalar": {"type": "int8", "quantile": 0.99, "always_ram": True}}
        assert create["quantization_config"] == int8
        assert create["on_disk_payload"] is True
        indexed = {body["field_name"] for method, path, body in fake.requests if path.endswith("/index")}
        assert indexed == {qdrant_key(k) for k in BUILTIN_FIELDS}, "payload indexes on every built-in field"
    finally:
        index.close()


def test_defaults_leave_sharding_to_the_server_and_an_existing_collection_is_not_recreated(
    fake: FakeQdrant, tmp_path: Path
) -> None:
    index = open_index(server_settings(tmp_path, fake.url), vector_name=fake.vector_name, dim=fake.dim)
    index.close()
    (create,) = [
        body for method, path, body in fake.requests if (method, path) == ("PUT", "/collections/assets")
    ]
    for key in ("shard_number", "replication_factor", "write_consistency_factor"):
        assert create.get(key) is None, f"{key} sent although not configured: {create}"
    # A second replica finds the collection there and only reads it.
    fake.requests.clear()
    settings = server_settings(tmp_path, fake.url, shard_number=3)
    open_index(settings, vector_name=fake.vector_name, dim=fake.dim).close()
    assert ("PUT", "/collections/assets") not in {(m, p) for m, p, _ in fake.requests}
    assert ("GET", "/collections/assets/exists") in {(m, p) for m, p, _ in fake.requests}


# -- a closed port at start -------------------------------------------------------------------


def test_serve_against_a_closed_port_exits_with_one_clear_line(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOUPE_")}
    env.update(
        LOUPE_HOME=str(tmp_path / "home"),
        LOUPE_QDRANT_URL=f"http://127.0.0.1:{port}",
        LOUPE_INDEX__RETRIES="1",
    )
    serve_port = free_port()
    # The real `loupe serve` (tests/integration/replica_server.py only swaps the encoder).
    proc = subprocess.run(
        [sys.executable, "-m", "tests.integration.replica_server", "serve", "--port", str(serve_port)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("loupe: error: cannot reach Qdrant at http://127.0.0.1:") and "refused" in last, (
        last
    )
    assert "serving on" not in proc.stdout, "it announced itself before the index was open"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{serve_port}/health/live", timeout=2)


# -- an index that stops mid-request -------------------------------------------------------------


@pytest.fixture
def api(fake: FakeQdrant, tmp_path: Path) -> Iterator[tuple[httpx.Client, FakeQdrant]]:
    settings = server_settings(tmp_path, fake.url)
    cat = Catalog(settings, encoder=FakeEncoder())
    try:
        with LiveServer(create_app(settings, catalog=cat)) as server:
            with httpx.Client(base_url=server.url, timeout=30) as client:
                yield client, fake
    finally:
        cat.close()


def test_an_index_that_hangs_or_drops_requests_gives_503_and_loupe_recovers(
    api: tuple[httpx.Client, FakeQdrant],
) -> None:
    client, fake = api
    search = {"text": "a cyclist at night"}
    assert client.post("/api/v1/search", json=search).json() == {"hits": [], "next_offset": None}
    assert client.get("/api/v1/assets").json()["data"] == []

    fake.set_mode("hang")
    hung: dict[str, Any] = {}

    def search_while_hung() -> None:
        t0 = time.monotonic()
        hung["resp"] = client.post("/api/v1/search", json=search)
        hung["seconds"] = time.monotonic() - t0

    background = threading.Thread(target=search_while_hung)
    background.start()
    time.sleep(0.3)
    # Liveness answers while the search still hangs on the index.
    assert client.get("/health/live").status_code == 200
    assert background.is_alive(), "the search should still be waiting on the hung index"
    background.join(timeout=30)
    assert_unavailable(hung["resp"], f"cannot reach Qdrant at {fake.url}", "timed out")
    # timeout_s=1 with one retry: about 2 s, bounded, never a hang.
    assert 1.0 <= hung["seconds"] < 8, hung["seconds"]
    assert_unavailable(client.get("/api/v1/assets"), "timed out")

    fake.set_mode("close")
    t0 = time.monotonic()
    assert_unavailable(client.get("/api/v1/assets"), f"cannot reach Qdrant at {fake.url}", "disconnected")
    assert time.monotonic() - t0 < 5
    assert_unavailable(client.post("/api/v1/search", json=search))
    assert_unavailable(client.get("/health"))  # readiness fails, liveness holds
    assert client.get("/health/live").status_code == 200

    fake.set_mode("ok")
    assert client.get("/health").status_code == 200
    assert client.post("/api/v1/search", json=search).status_code == 200


def test_an_index_whose_port_closes_gives_503_until_it_is_back(
    api: tuple[httpx.Client, FakeQdrant],
) -> None:
    client, fake = api
    fake.stop()
    assert_unavailable(client.get("/api/v1/assets"), "refused")
    assert_unavailable(client.post("/api/v1/search", json={"text": "x"}), "refused")
    assert client.get("/health/live").status_code == 200
    back = FakeQdrant(vector_name=fake.vector_name, dim=fake.dim, exists=True, port=fake.port)
    try:
        assert client.get("/api/v1/assets").status_code == 200
        assert client.get("/health").status_code == 200
    finally:
        back.stop()


# -- a sync across an outage --------------------------------------------------------------------


class FlakyClient:
    """qdrant-client whose every call fails as a refused HTTP connection while `down` is set.

    The outage starts by itself after `upserts_before_outage` successful upserts, i.e. mid-sync.
    """

    def __init__(self, client: QdrantClient, *, upserts_before_outage: int) -> None:
        self._client = client
        self.down = False
        self.upserts_left = upserts_before_outage

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.down:
                raise ResponseHandlingException(httpx.ConnectError("[Errno 111] Connection refused"))
            if name == "upsert":
                if self.upserts_left == 0:
                    self.down = True
                    raise ResponseHandlingException(httpx.ConnectError("[Errno 111] Connection refused"))
                self.upserts_left -= 1
            return attr(*args, **kwargs)

        return call


def test_a_sync_cut_off_by_an_outage_fails_clearly_and_the_next_one_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flaky: list[FlakyClient] = []

    def local_server_index(settings: Settings, *, vector_name: str, dim: int) -> VectorIndex:
        index = ServerIndex(
            str(tmp_path / "qdrant-local"),
            api_key=None,
            collection=COLLECTION,
            vector_name=vector_name,
            dim=dim,
            settings=settings.index,
        )
        index._client = FlakyClient(index._client, upserts_before_outage=2)  # type: ignore[assignment]
        flaky.append(index._client)  # type: ignore[arg-type]
        return index

    monkeypatch.setattr(catalog_module, "open_index", local_server_index)
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(20):
        gradient(i).save(photos / f"img_{i:02d}.png")
    settings = Settings(home=tmp_path / "home", _env_file=None)  # type: ignore[call-arg]
    settings.index.retries = 1
    settings.ingest.batch_size = 4
    cat = Catalog(settings, encoder=FakeEncoder())
    try:
        with (
            LiveServer(create_app(settings, catalog=cat)) as server,
            httpx.Client(base_url=server.url, timeout=30) as client,
        ):
            body = {"name": "photos", "kind": "local", "config": {"path": str(photos)}}
            assert client.post("/api/v1/sources", json=body).status_code == 201
            job = _sync(client)
            assert job["state"] == "failed", job
            assert job["detail"].startswith("cannot reach Qdrant at ") and "refused" in job["detail"], job
            assert job["counts"]["added"] == 8, "two batches of 4 were written before the outage"

            assert_unavailable(client.get("/api/v1/assets"), "refused")
            assert_unavailable(client.get("/health"))
            assert client.get("/health/live").status_code == 200

            flaky[0].down, flaky[0].upserts_left = False, -1  # the index is back, for good
            again = _sync(client)
            assert again["state"] == "succeeded", again
            assert (again["counts"]["unchanged"], again["counts"]["added"]) == (8, 12), again
            listed = client.get("/api/v1/assets", params={"limit": 100}).json()
            assert len({a["id"] for a in listed["data"]}) == 20 and listed["next_cursor"] is None
    finally:
        cat.close()


def _sync(client: httpx.Client) -> dict[str, Any]:
    resp = client.post("/api/v1/sources/photos/sync", json={})
    assert resp.status_code == 202, resp.text
    job = resp.json()
    deadline = time.monotonic() + 60
    while job["state"] in ("queued", "running"):
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
        job = client.get(f"/api/v1/jobs/{job['id']}").json()
    return job  # type: ignore[no-any-return]
