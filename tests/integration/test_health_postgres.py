"""`loupe serve` through a PostgreSQL outage: 503s that name the store, quick answers, recovery.

The state store is a private PostgreSQL cluster (initdb + pg_ctl as the postgres
user, on its own port and socket directory), so the test can SIGKILL every one of
its processes, as a crashed host would leave it, without touching the machine's
shared server. `loupe serve` is the real command (tests/integration/replica_server:
only the encoder is the FakeEncoder). Checked: /health and state-touching requests
answer 503 naming the store, quickly, and recover; a sync running through the outage
resumes and finishes. A listener that accepts and never answers stands for a database
behind a dropped route, where only the connect timeout keeps a request from hanging.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from service.config import Settings
from service.errors import StateUnavailable
from service.state import StateStore
from tests.conftest import free_port
from tests.integration.test_replicas import Replica, add_source, assets_of, photos, submit, wait_done

# A refused connection fails at once; the bound leaves room for a loaded 2-core machine.
ANSWER_WITHIN_S = 3.0


class PrivatePostgres:
    """A PostgreSQL cluster of this test's own, run as the postgres user; killed and restarted at will."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="loupe-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        shutil.chown(self.dir, "postgres", "postgres")
        self._as_postgres("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def _as_postgres(self, *cmd: str) -> None:
        proc = subprocess.run(
            ["runuser", "-u", "postgres", "--", *cmd], capture_output=True, text=True, timeout=120
        )
        log = self.dir / "server.log"
        assert proc.returncode == 0, (cmd, proc.stderr, log.read_text() if log.exists() else "")

    def url(self, database: str, *, password: str | None = None) -> str:
        return sa.engine.URL.create(
            "postgresql+psycopg", username="postgres", password=password,
            host="127.0.0.1", port=self.port, database=database,
        ).render_as_string(hide_password=False)  # fmt: skip

    def start(self) -> None:
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} -c fsync=off"
        log = str(self.dir / "server.log")
        self._as_postgres("pg_ctl", "-D", str(self.data), "-w", "-l", log, "start", "-o", options)

    def _postmaster(self) -> int | None:
        """The running postmaster's PID (postmaster.pid outlives a killed one)."""
        try:
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, IndexError, ValueError):
            return None
        return pid if Path(f"/proc/{pid}").exists() else None

    def kill(self) -> None:
        """SIGKILL the postmaster and every backend: no shutdown, no goodbye to the clients."""
        postmaster = self._postmaster()
        assert postmaster is not None, "PostgreSQL is not running"
        pids = [postmaster, *_children(postmaster)]
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        # The postmaster's parent is init, which reaps it a second or two later; until then its
        # zombie holds the PID that postmaster.pid names and a new postmaster refuses to start.
        deadline = time.monotonic() + 30
        while any(Path(f"/proc/{pid}").exists() for pid in pids):
            assert time.monotonic() < deadline, "the killed PostgreSQL processes were not reaped"
            time.sleep(0.05)

    def stop(self) -> None:
        try:
            if self._postmaster() is not None:
                self._as_postgres("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def _children(parent: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[1]) == parent:
            found.append(int(stat.parent.name))
    return found


def _unavailable_reason() -> str | None:
    if shutil.which("initdb") is None or shutil.which("pg_ctl") is None:
        return "initdb and pg_ctl are not on PATH (apt-get install postgresql)"
    if os.geteuid() != 0:
        return "a private PostgreSQL runs as the postgres user: the test needs root for runuser"
    return None


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    reason = _unavailable_reason()
    if reason:
        pytest.skip(reason)
    pg = PrivatePostgres()
    try:
        pg.start()
        admin = sa.create_engine(pg.url("postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql("CREATE DATABASE loupe")
        admin.dispose()
        yield pg
    finally:
        pg.stop()


def timed_get(client: httpx.Client, path: str) -> tuple[float, httpx.Response]:
    t0 = time.monotonic()
    resp = client.get(path)
    return time.monotonic() - t0, resp


def assert_names_the_store(body: dict[str, Any], *, safe_url: str, password: str) -> None:
    assert body["error"] == "StateUnavailable", body
    assert safe_url in body["detail"] and "LOUPE_DATABASE_URL" in body["detail"], body
    assert password not in str(body)


def test_health_and_requests_answer_503_during_an_outage_and_recover(
    private_pg: PrivatePostgres, tmp_path: Path
) -> None:
    password = "pw-" + secrets.token_urlsafe(12)  # trust auth ignores it; it must show nowhere
    url = private_pg.url("loupe", password=password)
    safe_url = f"postgresql+psycopg://postgres:***@127.0.0.1:{private_pg.port}/loupe"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOUPE_")}
    env.update(LOUPE_DATABASE_URL=url, LOUPE_DATABASE_CONNECT_TIMEOUT_S="2")
    server = Replica("serve", home=tmp_path / "home", env=env)
    try:
        server.wait_ready()
        ok = server.client.get("/health")
        assert ok.status_code == 200, ok.text
        body = ok.json()
        assert body["status"] == "ok" and body["assets"] == 0, body
        assert body["index"] == {"ok": True, "backend": "embedded", "assets": 0}, body
        assert body["state"]["ok"] is True and body["state"]["backend"] == "postgresql", body
        add_source(server, "photos", photos(tmp_path / "photos", 2))

        private_pg.kill()
        seconds, health = timed_get(server.client, "/health")
        assert health.status_code == 503, health.text
        body = health.json()
        assert set(body) == {"error", "detail"}, body
        assert_names_the_store(body, safe_url=safe_url, password=password)
        assert "Qdrant" not in body["detail"], "the index is up: health names only the part that is down"
        assert seconds < ANSWER_WITHIN_S, f"/health took {seconds:.1f} s during the outage"
        for path in ("/api/v1/sources", "/api/v1/sources/photos", "/api/v1/jobs"):
            seconds, resp = timed_get(server.client, path)
            assert resp.status_code == 503, (path, resp.text)
            assert set(resp.json()) == {"error", "detail"}, resp.text
            assert_names_the_store(resp.json(), safe_url=safe_url, password=password)
            assert seconds < ANSWER_WITHIN_S, f"{path} took {seconds:.1f} s during the outage"
        write = server.client.post(
            "/api/v1/sources", json={"name": "x", "kind": "local", "config": {"path": "/"}}
        )
        assert write.status_code == 503 and write.json()["error"] == "StateUnavailable", write.text
        assert server.client.get("/health/live").status_code == 200, "liveness does not touch the store"

        private_pg.start()
        deadline = time.monotonic() + 30
        while (health := server.client.get("/health")).status_code != 200:
            assert time.monotonic() < deadline, f"no recovery after the restart: {health.text}"
            time.sleep(0.2)
        assert health.json()["state"]["ok"] is True, health.text
        listed = server.client.get("/api/v1/sources")
        assert listed.status_code == 200, listed.text
        assert [s["name"] for s in listed.json()["data"]] == ["photos"], "the source outlived the crash"
        # The job runner, whose claims failed all through the outage, runs a sync again.
        job = submit(server, "photos")
        assert wait_done(server, job["id"])["state"] == "succeeded"
        assert assets_of(server, "photos") == {"img_000.png", "img_001.png"}
    finally:
        server.stop()
    assert password not in server.output()


def test_a_sync_running_through_an_outage_resumes_and_finishes(
    private_pg: PrivatePostgres, tmp_path: Path
) -> None:
    """Its runner's writes and heartbeats fail while the store is down; once it is back the
    job is taken over (by the same runner: its heartbeats stopped) and every asset lands."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOUPE_")}
    env.update(
        LOUPE_DATABASE_URL=private_pg.url("loupe"),
        LOUPE_DATABASE_CONNECT_TIMEOUT_S="2",
        LOUPE_JOBS_STALE_AFTER_S="3",
        LOUPE_TEST_ENCODE_DELAY_S="0.2",  # 40 images in batches of 2: a sync of about 4 s
        LOUPE_INGEST__BATCH_SIZE="2",
        LOUPE_INDEX__OPTIMIZE_AFTER_SYNC="false",
    )
    server = Replica("serve", home=tmp_path / "home", env=env)
    try:
        server.wait_ready()
        add_source(server, "photos", photos(tmp_path / "photos", 40))
        job = submit(server, "photos")
        deadline = time.monotonic() + 60
        while server.client.get(f"/api/v1/jobs/{job['id']}").json()["counts"].get("added", 0) < 4:
            assert time.monotonic() < deadline, "the sync did not start"
            time.sleep(0.05)
        private_pg.kill()
        time.sleep(3)  # longer than the stale period: the runner's heartbeats fail meanwhile
        assert server.client.get(f"/api/v1/jobs/{job['id']}").status_code == 503
        private_pg.start()
        done = wait_done(server, job["id"], timeout_s=60)
        assert done["state"] == "succeeded", done
        assert assets_of(server, "photos") == {f"img_{i:03d}.png" for i in range(40)}
    finally:
        server.stop()


class SilentListener:
    """Accepts TCP connections on 127.0.0.1 and never sends a byte: a server that does not answer."""

    def __init__(self, *, hold_s: float) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.hold_s = hold_s  # then the connections close, so a missing timeout fails instead of hanging
        self._held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self._held.append(conn)
            threading.Timer(self.hold_s, conn.close).start()

    def close(self) -> None:
        self.sock.close()
        for conn in self._held:
            conn.close()


def test_a_database_that_never_answers_fails_after_the_connect_timeout() -> None:
    silent = SilentListener(hold_s=30)
    try:
        url = f"postgresql+psycopg://loupe:secret@127.0.0.1:{silent.port}/state"
        t0 = time.monotonic()
        with pytest.raises(StateUnavailable, match=rf"127\.0\.0\.1:{silent.port}/state") as info:
            StateStore(url, connect_timeout_s=1)
        seconds = time.monotonic() - t0
    finally:
        silent.close()
    assert 0.9 < seconds < 5, f"gave up after {seconds:.1f} s, not after the 1 s connect timeout"
    assert "secret" not in str(info.value) and "LOUPE_DATABASE_URL" in str(info.value)


def test_the_connect_timeout_setting_reaches_the_catalogs_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LOUPE_DATABASE_CONNECT_TIMEOUT_S=1 makes the catalog give up after 1 s, not the default 5."""
    from service.catalog.catalog import Catalog
    from tests.fakes import FakeEncoder

    silent = SilentListener(hold_s=30)
    monkeypatch.setenv(
        "LOUPE_DATABASE_URL", f"postgresql+psycopg://loupe:secret@127.0.0.1:{silent.port}/state"
    )
    monkeypatch.setenv("LOUPE_DATABASE_CONNECT_TIMEOUT_S", "1")
    settings = Settings(home=tmp_path / "home", _env_file=None)  # type: ignore[call-arg]
    assert settings.database_connect_timeout_s == 1
    try:
        t0 = time.monotonic()
        with pytest.raises(StateUnavailable):
            Catalog(settings, encoder=FakeEncoder())
        seconds = time.monotonic() - t0
    finally:
        silent.close()
    assert 0.9 < seconds < 4, f"gave up after {seconds:.1f} s with a 1 s connect timeout (default 5 s)"
