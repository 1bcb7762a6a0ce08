"""Shared fixtures: settings under a temporary home, a catalog, a live HTTP server."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from service.config import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", _env_file=None)  # type: ignore[call-arg]


@pytest.fixture
def fake_catalog(settings: Settings) -> Iterator[object]:
    from service.catalog.catalog import Catalog
    from tests.fakes import FakeEncoder

    cat = Catalog(settings, encoder=FakeEncoder())
    yield cat
    cat.close()


class LiveServer:
    """uvicorn serving an app on 127.0.0.1 in a thread, for tests through real HTTP."""

    def __init__(self, app: object) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("test server did not start")

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture
def live_server(settings: Settings, fake_catalog: object) -> Iterator[LiveServer]:
    from service.api.app import create_app

    with LiveServer(create_app(settings, catalog=fake_catalog)) as server:  # type: ignore[arg-type]
        yield server
