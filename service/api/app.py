"""The FastAPI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from service import web
from service.api import errors
from service.api.deps import authorize
from service.api.routes import (
    assets,
    evaluations,
    exports,
    health,
    jobs,
    labeling_functions,
    labelsets,
    projector,
    search,
    selections,
    signals,
    sources,
    vector_spaces,
)
from service.auth import parse_keys
from service.catalog.catalog import Catalog
from service.catalog.projector import Projector
from service.config import Settings, get_settings
from service.evals.fields import model_fields
from service.jobs.runner import JobRunner

API_PREFIX = "/api/v1"


def create_app(settings: Settings | None = None, *, catalog: Catalog | None = None) -> FastAPI:
    """The app; the catalog opens at start-up (or is given, for tests) and closes at shutdown."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = catalog is None
        cat = catalog or Catalog(settings)
        runner = JobRunner(cat, stale_after_s=settings.jobs_stale_after_s, nice=settings.ingest_nice)
        runner.start()
        cat.optimize_if_behind()
        app.state.catalog = cat
        app.state.runner = runner
        layouts = cat.settings.home / "projector"
        app.state.projector = Projector(
            index=cat.index, state=cat.state, directory=layouts, derived=lambda: model_fields(cat.state)
        )
        try:
            yield
        finally:
            app.state.projector.close()
            runner.stop()
            if own:
                cat.close()

    api_keys = parse_keys(settings.api_keys.get_secret_value() if settings.api_keys else None)
    app = FastAPI(
        title="Loupe",
        version="0.1.0",
        summary="A vector-search data catalog: find the training data worth labeling.",
        lifespan=lifespan,
        responses=errors.ERROR_RESPONSES,
    )
    app.state.api_keys = api_keys
    errors.install(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    api = APIRouter(prefix=API_PREFIX, dependencies=[Depends(authorize)])
    routes = (sources, jobs, assets, search, projector, exports, labelsets, evaluations, vector_spaces)
    for module in (*routes, selections, labeling_functions, signals):
        api.include_router(module.router)
    app.include_router(api)
    _mount_page(app)

    app.include_router(health.router)  # outside /api/v1: probes need no API key
    return app


def _mount_page(app: FastAPI) -> None:
    """The web page at `/` and its static files (service/web)."""
    app.mount("/static", StaticFiles(directory=web.STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        headers = {"Content-Security-Policy": web.CONTENT_SECURITY_POLICY, "Cache-Control": "no-cache"}
        return FileResponse(web.INDEX_HTML, headers=headers)
