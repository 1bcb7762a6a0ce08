"""Exports to labeling tools: start one, follow it, download its file."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse

from service.api.deps import CatalogDep, RunnerDep
from service.errors import Conflict, ExportNotFound
from service.export.files import FORMATS, download_path
from service.export.runner import begin, export_public
from service.export.schemas import ExportPublic, ExportRequest
from service.schemas import Page
from service.state import utcnow

router = APIRouter(prefix="/exports", tags=["exports"])


def _base_url(request: Request, configured: str | None) -> str:
    return (configured or str(request.base_url)).rstrip("/")


@router.post("", status_code=202, response_model=ExportPublic)
def create_export(
    body: ExportRequest, catalog: CatalogDep, runner: RunnerDep, request: Request
) -> ExportPublic:
    """Start an export; the destination is checked now, the assets are sent by a job (poll
    GET /exports/{id}; DELETE /jobs/{job_id} cancels). A wrong token, unknown project or
    unreachable server is a 502."""
    row = begin(catalog, body, base_url=_base_url(request, catalog.settings.public_url))
    runner.wake()
    return export_public(row)


@router.get("", response_model=Page)
def list_exports(catalog: CatalogDep, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> Page:
    """Recent exports, newest first."""
    rows = catalog.state.list_exports(limit=limit)
    return Page(data=[export_public(r).model_dump() for r in rows])


@router.get("/{export_id}", response_model=ExportPublic)
def get_export(export_id: str, catalog: CatalogDep) -> ExportPublic:
    """One export: state, counts {selected, sent, skipped, failed} and where it went."""
    row = catalog.state.get_export(export_id)
    if row.state in ("queued", "running") and not catalog.jobs.exists(export_id):
        # Left by a Loupe from before exports were jobs: nothing can resume it.
        detail = "interrupted: the process running it stopped, before exports could resume; export again"
        catalog.state.update_export(export_id, state="failed", detail=detail, finished_at=utcnow())
        row = catalog.state.get_export(export_id)
    return export_public(row)


@router.get(
    "/{export_id}/download",
    response_model=None,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def download_export(export_id: str, catalog: CatalogDep) -> FileResponse:
    """The file of a file export made without a `path`."""
    row = catalog.state.get_export(export_id)
    if row.target not in FORMATS or row.request.get("path"):
        where = row.request.get("path") or row.location
        raise ExportNotFound(f"export {export_id} went to {where}; only file exports without a path download")
    if row.state != "succeeded":
        raise Conflict(f"export {export_id} is {row.state}; download it once it has succeeded")
    fmt = FORMATS[row.target]()
    path = download_path(catalog.settings.home, export_id, fmt.suffix)
    if not path.is_file():
        raise ExportNotFound(f"the file of export {export_id} is gone from the server; export again")
    filename = f"loupe-{row.target}-{export_id[:8]}{fmt.suffix}"
    return FileResponse(path, media_type=fmt.media_type, filename=filename)
