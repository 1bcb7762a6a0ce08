"""How the CLI finds a running `loupe serve`: LOUPE_URL, or the server.json it writes under LOUPE_HOME."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from service.config import Settings
from service.processes import alive


def server_file(settings: Settings) -> Path:
    return settings.home / "server.json"


@contextmanager
def announced(settings: Settings, url: str) -> Iterator[None]:
    """Write this process's URL to the server file while the block runs."""
    marker = server_file(settings)
    marker.write_text(json.dumps({"url": url, "pid": os.getpid()}))
    try:
        yield
    finally:
        # Only our own marker: a second server on the same home may have announced itself since.
        try:
            if json.loads(marker.read_text()).get("pid") == os.getpid():
                marker.unlink()
        except (OSError, ValueError):
            pass


def running_server(settings: Settings) -> str | None:
    """The URL of a live `loupe serve` on this home, if any."""
    if settings.url:
        return settings.url.rstrip("/")
    try:
        info = json.loads(server_file(settings).read_text())
        pid, url = int(info["pid"]), str(info["url"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return url if alive(pid) else None
