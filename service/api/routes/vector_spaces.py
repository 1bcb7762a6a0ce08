"""Vector spaces: list, create and remove them; import vectors into one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Response, UploadFile

from service.api.deps import CatalogDep, RunnerDep
from service.schemas import JobPublic, job_public
from service.spaces.imports import begin_import
from service.spaces.registry import create_space, delete_space, get_space, list_spaces
from service.spaces.schemas import VectorSpaceCreate, VectorSpacePublic, VectorSpacesPublic

router = APIRouter(prefix="/vector-spaces", tags=["vector spaces"])


@router.get("", response_model=VectorSpacesPublic)
def list_vector_spaces(catalog: CatalogDep) -> VectorSpacesPublic:
    """The encoder's space and every user space, with how many assets have a vector in each."""
    return VectorSpacesPublic(data=list_spaces(catalog))


@router.post("", status_code=201, response_model=VectorSpacePublic)
def create_vector_space(body: VectorSpaceCreate, catalog: CatalogDep) -> VectorSpacePublic:
    """Create a user space (a name taken is a 409); fill it by importing vectors or by a model sync."""
    return create_space(catalog, name=body.name, dim=body.dim, distance=body.distance)


@router.get("/{name}", response_model=VectorSpacePublic)
def get_vector_space(name: str, catalog: CatalogDep) -> VectorSpacePublic:
    """One space and its counts."""
    return get_space(catalog, name)


@router.delete("/{name}", status_code=204)
def delete_vector_space(name: str, catalog: CatalogDep) -> Response:
    """Remove a user space and its vectors (the encoder's space cannot be removed: 409)."""
    delete_space(catalog, name)
    return Response(status_code=204)


@router.post("/{name}/vectors", status_code=202, response_model=JobPublic)
def import_vectors(
    name: str,
    catalog: CatalogDep,
    runner: RunnerDep,
    file: Annotated[
        UploadFile,
        File(
            description="`.npz` (arrays `vectors` and `ids`, or `source` and `key`), `.parquet` (columns "
            "`vector` and `asset_id`, or `source` and `key`) or `.jsonl` (one object a line with the same "
            "fields). The whole file is checked first: a bad entry refuses it (422, naming the line), "
            "nothing written."
        ),
    ],
) -> JobPublic:
    """Import vectors into a user space as a job (counts: received, imported, unknown_asset, invalid)."""
    job = begin_import(catalog, space=name, filename=file.filename, data=file.file)
    runner.wake()
    return job_public(job)
