"""Sources and their syncs."""

from __future__ import annotations

from fastapi import APIRouter, Response

from service.api.deps import CatalogDep, RunnerDep
from service.schemas import JobPublic, Page, SourceCreate, SourcePublic, SyncRequest, job_public
from service.spaces.model_sync import submit_space_sync

router = APIRouter(prefix="/sources", tags=["sources"])


@router.post("", status_code=201, response_model=SourcePublic)
def create_source(body: SourceCreate, catalog: CatalogDep) -> SourcePublic:
    """Add a source; its config is validated and the source is contacted once."""
    row = catalog.add_source(body.name, body.kind, body.config)
    return SourcePublic(**catalog.public_source(row))


@router.get("", response_model=Page)
def list_sources(catalog: CatalogDep) -> Page:
    """All sources, secrets masked."""
    return Page(data=[catalog.public_source(r) for r in catalog.state.list_sources()])


@router.get("/{name}", response_model=SourcePublic)
def get_source(name: str, catalog: CatalogDep) -> SourcePublic:
    """One source, secrets masked."""
    return SourcePublic(**catalog.public_source(catalog.state.get_source(name)))


@router.delete("/{name}", status_code=204)
def delete_source(name: str, catalog: CatalogDep) -> Response:
    """Remove a source and its assets from the catalog (the source itself is untouched)."""
    catalog.remove_source(name)
    return Response(status_code=204)


@router.post("/{name}/sync", status_code=202, response_model=JobPublic)
def sync_source(
    name: str, catalog: CatalogDep, runner: RunnerDep, body: SyncRequest | None = None
) -> JobPublic:
    """Start a sync; poll GET /jobs/{id} for its progress."""
    body = body or SyncRequest()
    if body.space is not None or body.model is not None:  # a second model fills a user space
        job = submit_space_sync(
            catalog, name, space=body.space, model=body.model, pretrained=body.pretrained, full=body.full
        )
        runner.wake()
        return job_public(job)
    job = catalog.submit_sync(
        name, full=body.full, prune=body.prune, engine=body.engine, address=body.address
    )
    runner.wake()
    return job_public(job)
