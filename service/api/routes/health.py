"""Health: readiness (the index and the state store answer) and liveness (the process serves)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from service.catalog.catalog import Catalog
from service.errors import LoupeError

router = APIRouter(prefix="/health", tags=["health"])


@router.get("")
def health(request: Request) -> Any:
    """Readiness: 200 when the index and the state store answer, 503 naming each part that does not."""
    cat: Catalog = request.app.state.catalog
    backend = "server" if cat.settings.qdrant_url else "embedded"

    def index() -> dict[str, Any]:
        return {"ok": True, "backend": backend, "assets": cat.index.count(None)}

    checks: dict[str, Callable[[], dict[str, Any]]] = {"index": index, "state": cat.state.check}
    parts: dict[str, dict[str, Any]] = {}
    down: list[LoupeError] = []
    # Every part is probed each time, so the answer names every part that is down, not the first.
    for name, check in checks.items():
        try:
            parts[name] = check()
        except LoupeError as exc:
            if exc.status_code != 503:  # not an outage: a bug to see as one
                raise
            down.append(exc)
    if down:
        # The body every error has; the kind is the first part down, the detail names each.
        body = {"error": type(down[0]).__name__, "detail": " | ".join(e.detail for e in down)}
        return JSONResponse(body, status_code=503)
    return {"status": "ok", "model": cat.encoder.identity, "assets": parts["index"]["assets"], **parts}


# async: answered on the event loop, so hung index calls filling the thread pool cannot fail it.
@router.get("/live")
async def live() -> dict[str, str]:
    """Liveness: 200 while the process serves; touches neither the index nor the state store."""
    return {"status": "alive"}
