"""`loupe serve`: uvicorn around the app, announcing itself to the CLI under LOUPE_HOME."""

from __future__ import annotations

import ipaddress
import socket
from typing import TYPE_CHECKING

import uvicorn

from service.auth import parse_keys
from service.config import Settings
from service.discovery import announced
from service.errors import InvalidConfig

if TYPE_CHECKING:
    from service.catalog.catalog import Catalog


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    settings: Settings, *, host: str, port: int, insecure: bool = False, catalog: Catalog | None = None
) -> None:
    """Serve until interrupted (an already open `catalog` is served as it is)."""
    # The parsed keys, not the variable: LOUPE_API_KEYS="," is set but holds no key.
    keys = parse_keys(settings.api_keys.get_secret_value() if settings.api_keys else None)
    if not is_loopback(host) and not insecure and not keys:
        raise InvalidConfig(
            f"refusing to serve on {host} without API keys: set LOUPE_API_KEYS "
            "(see the README), or pass --insecure to expose an open API on purpose"
        )
    settings.home.mkdir(parents=True, exist_ok=True)
    # IPPROTO_TCP, not the default 0: asyncio turns Nagle off (TCP_NODELAY) only on sockets whose
    # proto says TCP, and with Nagle on, uvicorn's two writes per response (headers, body) wait for
    # the client's delayed ACK: ~40 ms added to every request.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        raise InvalidConfig(f"cannot listen on {host}:{port}: {exc.strerror}; pick another --port") from None
    bound_port = sock.getsockname()[1]
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    url = f"http://{'[' + shown + ']' if ':' in shown else shown}:{bound_port}"
    from service.api.app import create_app
    from service.catalog.catalog import Catalog

    # Opened here, not in the app's lifespan: an unreachable index or state store is then one
    # line from the CLI and exit code 1, where uvicorn would print a traceback and exit with 3.
    own = catalog is None
    try:
        catalog = catalog or Catalog(settings)
    except BaseException:
        sock.close()
        raise
    app = create_app(settings, catalog=catalog)
    config = uvicorn.Config(app, log_level="info", timeout_graceful_shutdown=10)
    server = uvicorn.Server(config)
    try:
        with announced(settings, url):
            print(f"Loupe serving on {url} (API docs at {url}/docs)", flush=True)
            server.run(sockets=[sock])
    finally:
        if own:
            catalog.close()
