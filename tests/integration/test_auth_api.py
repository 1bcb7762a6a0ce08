"""API keys, CORS and the exposure guard of `loupe serve`, through real HTTP.

The server is `loupe serve` as a subprocess (tests/integration/replica_server.py:
the real CLI with the FakeEncoder) with LOUPE_API_KEYS holding a read, a write
and an admin key and one CORS origin; its whole output is kept and searched for
the keys at the end. A server without CORS origins runs in process.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.api.app import create_app
from service.catalog.catalog import Catalog
from service.config import Settings
from tests.conftest import LiveServer, free_port
from tests.fakes import FakeEncoder
from tests.images import gradient

ROOT = Path(__file__).resolve().parents[2]
ORIGIN = "https://labeling.example.com"
KEYS = {scope: f"{scope}-{secrets.token_urlsafe(24)}" for scope in ("read", "write", "admin")}
WRONG_KEY = "wrong-" + secrets.token_urlsafe(24)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOUPE_")}
    env.update(extra)
    return env


class Served:
    def __init__(self, url: str, log: Path) -> None:
        self.url, self.log = url, log

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("auth")
    port = free_port()
    log = tmp / "server.log"
    env = clean_env(
        LOUPE_HOME=str(tmp / "home"),
        LOUPE_API_KEYS=",".join(f"{key}:{scope}" for scope, key in KEYS.items()),
        LOUPE_CORS_ORIGINS=f'["{ORIGIN}"]',
        LOUPE_INDEX__OPTIMIZE_AFTER_SYNC="false",
    )
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.replica_server", "serve", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            served = Served(f"http://127.0.0.1:{port}", log)
            _wait_live(served, proc)
            yield served
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)


def _wait_live(served: Served, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert proc.poll() is None, served.log.read_text()
        try:
            if httpx.get(f"{served.url}/health/live", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"the server did not start:\n{served.log.read_text()}")


def error_of(resp: httpx.Response, status: int, kind: str) -> str:
    assert resp.status_code == status, (resp.request.method, resp.request.url, resp.text)
    body = resp.json()
    assert set(body) == {"error", "detail"} and body["error"] == kind, body
    return str(body["detail"])


def test_no_key_or_a_wrong_one_is_401_on_every_api_route_and_health_stays_open(server: Served) -> None:
    with server.client() as anonymous:
        spec = anonymous.get("/openapi.json").json()
        routes = [
            (method.upper(), path.replace("{", "").replace("}", ""))
            for path, ops in spec["paths"].items()
            if path.startswith("/api/v1/")
            for method in ops
        ]
        assert len(routes) >= 15, routes
        for method, path in routes:
            detail = error_of(anonymous.request(method, path), 401, "Unauthorized")
            assert "Authorization: Bearer" in detail
        assert anonymous.get("/health").status_code == 200
        assert anonymous.get("/health/live").status_code == 200
        for header in (f"Bearer {WRONG_KEY}", f"Basic {KEYS['admin']}", "Bearer", KEYS["admin"]):
            resp = anonymous.get("/api/v1/sources", headers={"Authorization": header})
            error_of(resp, 401, "Unauthorized")


def test_a_read_key_searches_and_lists_but_cannot_change_anything(server: Served, tmp_path: Path) -> None:
    with server.client(KEYS["read"]) as reader:
        assert reader.get("/api/v1/sources").status_code == 200
        assert reader.get("/api/v1/assets").status_code == 200
        assert reader.get("/api/v1/jobs").status_code == 200
        assert reader.post("/api/v1/search", json={"text": "a red bike"}).status_code == 200
        body = {"name": "nope", "kind": "local", "config": {"path": str(tmp_path)}}
        detail = error_of(reader.post("/api/v1/sources", json=body), 403, "Forbidden")
        assert "'read'" in detail and "'write'" in detail
        error_of(reader.post("/api/v1/sources/nope/sync", json={}), 403, "Forbidden")
        error_of(reader.delete("/api/v1/sources/nope"), 403, "Forbidden")
        export = {"target": "jsonl", "filter": {}, "path": str(tmp_path / "x.jsonl")}
        error_of(reader.post("/api/v1/exports", json=export), 403, "Forbidden")


def test_a_write_key_adds_a_source_and_syncs_it(server: Served, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(4):
        gradient(i).save(photos / f"{i}.png")
    with server.client(KEYS["write"]) as writer, server.client(KEYS["read"]) as reader:
        body = {"name": "photos", "kind": "local", "config": {"path": str(photos)}}
        assert writer.post("/api/v1/sources", json=body).status_code == 201
        resp = writer.post("/api/v1/sources/photos/sync", json={})
        assert resp.status_code == 202, resp.text
        job = resp.json()
        deadline = time.monotonic() + 60
        while job["state"] in ("queued", "running"):
            assert time.monotonic() < deadline, job
            time.sleep(0.05)
            job = reader.get(f"/api/v1/jobs/{job['id']}").json()
        assert job["state"] == "succeeded" and job["counts"]["added"] == 4, job
        hits = reader.post("/api/v1/search", json={"text": "anything", "limit": 10}).json()["hits"]
        assert len(hits) == 4
    with server.client(KEYS["admin"]) as admin:  # admin includes write
        assert admin.delete("/api/v1/sources/photos").status_code == 204


def test_cors_answers_the_configured_origin_only(server: Served) -> None:
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
    with server.client() as anonymous:
        ok = anonymous.options("/api/v1/search", headers={"Origin": ORIGIN, **preflight})
        assert ok.status_code == 200, ok.text
        assert ok.headers["access-control-allow-origin"] == ORIGIN
        assert "authorization" in ok.headers["access-control-allow-headers"].lower()
        other = anonymous.options("/api/v1/search", headers={"Origin": "https://evil.example", **preflight})
        assert other.status_code == 400 and "access-control-allow-origin" not in other.headers
        # Actual requests: the header for the configured origin (errors included, so a page can read them).
        unauthorized = anonymous.get("/api/v1/sources", headers={"Origin": ORIGIN})
        assert unauthorized.status_code == 401
        assert unauthorized.headers["access-control-allow-origin"] == ORIGIN
    with server.client(KEYS["read"]) as reader:
        assert (
            reader.get("/api/v1/sources", headers={"Origin": ORIGIN}).headers["access-control-allow-origin"]
            == ORIGIN
        )
        evil = reader.get("/api/v1/sources", headers={"Origin": "https://evil.example"})
        assert evil.status_code == 200 and "access-control-allow-origin" not in evil.headers


def test_cors_is_off_without_configured_origins(settings: Settings) -> None:
    cat = Catalog(settings, encoder=FakeEncoder())
    try:
        with LiveServer(create_app(settings, catalog=cat)) as live, httpx.Client(base_url=live.url) as client:
            headers = {"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
            preflight = client.options("/api/v1/search", headers=headers)
            assert "access-control-allow-origin" not in preflight.headers, preflight.headers
            plain = client.get("/api/v1/sources", headers={"Origin": ORIGIN})
            assert plain.status_code == 200 and "access-control-allow-origin" not in plain.headers
    finally:
        cat.close()


def test_keys_never_reach_the_log(server: Served) -> None:
    # Every key in use, a wrong one and a malformed header, on allowed and refused requests alike.
    for key in (*KEYS.values(), WRONG_KEY):
        with server.client(key) as c:
            c.get("/api/v1/sources")
            c.post("/api/v1/sources", json={"name": "x", "kind": "local", "config": {"path": "/nonexistent"}})
            c.get("/api/v1/jobs/not-a-job")
    httpx.get(f"{server.url}/api/v1/sources", headers={"Authorization": KEYS["admin"]})
    time.sleep(0.3)  # uvicorn writes its access lines after the response
    log = server.log.read_text()
    assert '"GET /api/v1/sources HTTP/1.1" 401' in log, "the access log is not being captured"
    for key in (*KEYS.values(), WRONG_KEY):
        assert key not in log
        assert hashlib.sha256(key.encode()).hexdigest() not in log
    assert "Traceback" not in log, log


# -- the exposure guard ----------------------------------------------------------------------


def _serve(tmp_path: Path, host: str, *flags: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.integration.replica_server",
            "serve",
            "--host",
            host,
            "--port",
            str(free_port()),
            *flags,
        ],  # fmt: skip
        cwd=ROOT,
        env=clean_env(LOUPE_HOME=str(tmp_path / "home"), **env),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("host", "env"),
    [("0.0.0.0", {}), ("::", {}), ("0.0.0.0", {"LOUPE_API_KEYS": " , "})],
    ids=["all-ipv4", "all-ipv6", "keys-variable-without-a-key"],
)
def test_serve_on_a_non_loopback_host_without_keys_refuses(tmp_path: Path, host: str, env: Any) -> None:
    proc = _serve(tmp_path, host, **env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.strip() == (
        f"loupe: error: refusing to serve on {host} without API keys: set LOUPE_API_KEYS "
        "(see the README), or pass --insecure to expose an open API on purpose"
    )


def test_insecure_or_keys_lift_the_refusal(tmp_path: Path) -> None:
    # 192.0.2.1 (TEST-NET-1) is on no interface here: once the guard lets it through, binding fails,
    # which proves the guard passed without ever exposing an open API on this machine.
    for flags, env in (((), {"LOUPE_API_KEYS": f"{KEYS['read']}:read"}), (("--insecure",), {})):
        proc = _serve(tmp_path, "192.0.2.1", *flags, **env)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "cannot listen on 192.0.2.1" in proc.stderr and "refusing" not in proc.stderr, proc.stderr
