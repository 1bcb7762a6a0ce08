"""`loupe serve` listens on a socket whose connections asyncio makes TCP_NODELAY (no 40 ms stalls)."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
import uvicorn


def _served_socket(settings: Any, monkeypatch: pytest.MonkeyPatch) -> socket.socket:
    from service.server import serve

    captured: list[socket.socket] = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: captured.extend(sockets or []))
    serve(settings, host="127.0.0.1", port=0, catalog=object())  # type: ignore[arg-type]
    return captured[0]


async def _accepted_nodelay(listener: socket.socket) -> int:
    flags: list[int] = []

    def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        flags.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    server = await asyncio.start_server(on_connect, sock=listener)
    port = listener.getsockname()[1]
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    for _ in range(100):
        if flags:
            break
        await asyncio.sleep(0.01)
    writer.close()
    server.close()
    return flags[0]


def test_accepted_connections_have_nagle_off(settings, monkeypatch):
    listener = _served_socket(settings, monkeypatch)
    assert listener.proto == socket.IPPROTO_TCP
    assert asyncio.run(_accepted_nodelay(listener)) != 0
