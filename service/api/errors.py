"""Every error the API returns has the body {"error": "<Kind>", "detail": "<what and how to fix>"}."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match, Mount, compile_path

from service.errors import LoupeError
from service.schemas import ErrorBody

log = logging.getLogger(__name__)

_DESCRIBED = {
    400: "Malformed request (e.g. invalid JSON)",
    401: "An API key is needed or is not valid",
    403: "The API key's scope does not allow this",
    404: "Not found",
    409: "Conflicts with the current state (e.g. a sync already running)",
    413: "Upload too large",
    415: "Unsupported media type",
    422: "Invalid input; the detail names the offending field",
    502: "A source or labeling target failed",
    503: "The index, the state store, a source or the encoder is unavailable",
}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"description": text, "model": ErrorBody} for code, text in _DESCRIBED.items()
}


def _body(kind: str, detail: str) -> dict[str, str]:
    return {"error": kind, "detail": detail}


def _location(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "form")]
    return ".".join(parts) or "request"


async def _loupe_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, LoupeError)
    return JSONResponse(_body(type(exc).__name__, exc.detail), status_code=exc.status_code)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [f"{_location(tuple(e.get('loc', ())))}: {e.get('msg')}" for e in exc.errors()]
    malformed = any(e.get("type") == "json_invalid" for e in exc.errors())
    kind, status = ("MalformedRequest", 400) if malformed else ("InvalidRequest", 422)
    return JSONResponse(_body(kind, "; ".join(problems)), status_code=status)


PROBED_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(request: Request) -> list[str]:
    """The methods the resource at this request's path serves, for `Allow` (RFC 9110).

    Starlette's 405 names only the methods of the first route whose path matched, but
    GET and POST /sources are two routes. FastAPI nests included routers, so each method
    is probed through the routes' own matching (mounts, i.e. static files, answer their
    own 405s). Where the OpenAPI document has the path, the most specific template wins:
    /evaluations/compare is a POST, even though GET /evaluations/{id} also matches it.
    """
    probed = []
    for method in PROBED_METHODS:
        scope = {**request.scope, "method": method}
        if any(
            not isinstance(route, Mount) and route.matches(scope)[0] is Match.FULL
            for route in request.app.router.routes
        ):
            probed.append(method)
    path = request.scope["path"]
    root = request.scope.get("root_path", "")
    documented = _documented_methods(request.app.openapi(), path.removeprefix(root) if root else path)
    return [m for m in probed if m in documented] if documented else probed


def _documented_methods(spec: dict[str, Any], path: str) -> set[str]:
    templates = [t for t in spec.get("paths", {}) if compile_path(t)[0].match(path)]
    if not templates:
        return set()
    fewest = min(t.count("{") for t in templates)
    return {
        method.upper()
        for t in templates
        if t.count("{") == fewest
        for method in spec["paths"][t]
        if method.upper() in PROBED_METHODS
    }


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    kind = {404: "NotFound", 405: "MethodNotAllowed", 401: "Unauthorized", 403: "Forbidden"}.get(
        exc.status_code, "HTTPError"
    )
    headers = dict(exc.headers or {})
    detail = str(exc.detail)
    if exc.status_code == 405:
        allowed = allowed_methods(request) or [m.strip() for m in headers.get("Allow", "").split(",")]
        headers["Allow"] = ", ".join(m for m in allowed if m)
        detail = f"{request.method} is not allowed here; allowed: {headers['Allow']}"
    return JSONResponse(_body(kind, detail), status_code=exc.status_code, headers=headers or None)


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return JSONResponse(
        _body("InternalError", "an unexpected error occurred; the server log has the details"),
        status_code=500,
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(LoupeError, _loupe_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
