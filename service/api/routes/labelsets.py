"""Label sets (ground truth, model predictions) and their annotation imports."""

from __future__ import annotations

import hashlib
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from service.api.deps import CatalogDep, RunnerDep
from service.catalog.catalog import Catalog
from service.errors import InvalidQuery, PayloadTooLarge, UnsupportedMedia
from service.labels import admin, bulk
from service.labels.formats import FORMATS
from service.labels.schemas import AnnotationImport, LabelSetCreate, LabelSetPublic, LabelSetsPublic
from service.schemas import JobPublic, job_public

router = APIRouter(prefix="/labelsets", tags=["labelsets"])
_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No label set of that name"},
    409: {"description": "The name is taken, or an import into the set is running"},
    422: {"description": "The request or the annotations are invalid; the detail names the line and field"},
}


def _inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """A model's JSON schema with its local `$defs` put in place (the document has no such section)."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return walk(defs[ref.rsplit("/", 1)[-1]])
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(schema)  # type: ignore[no-any-return]


_IMPORT_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": _inlined(AnnotationImport.model_json_schema())},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file", "format"],
                "properties": {
                    "file": {"type": "string", "format": "binary"},
                    "format": {"type": "string", "enum": list(FORMATS)},
                    "source": {
                        "type": "string",
                        "description": "The source that file names are relative to.",
                    },
                },
            }
        },
    },
}


@router.post("", status_code=201, response_model=LabelSetPublic, responses=_ERRORS)
def create_labelset(body: LabelSetCreate, catalog: CatalogDep) -> LabelSetPublic:
    """Create a label set: `ground_truth` or `predictions`, for `classification` or `detection`."""
    return admin.create(catalog, body)


@router.get("", response_model=LabelSetsPublic)
def list_labelsets(catalog: CatalogDep) -> LabelSetsPublic:
    """Every label set, by name."""
    return LabelSetsPublic(data=admin.all_sets(catalog))


@router.get("/{name}", response_model=LabelSetPublic, responses=_ERRORS)
def get_labelset(name: str, catalog: CatalogDep) -> LabelSetPublic:
    """One label set: role, task, classes, how many assets it labels, its latest import's job."""
    return admin.get(catalog, name)


@router.delete("/{name}", status_code=204, responses=_ERRORS)
def delete_labelset(name: str, catalog: CatalogDep) -> Response:
    """Delete a label set and its fields (`labels.<name>`) from every asset."""
    admin.remove(catalog, name)
    return Response(status_code=204)


@router.post(
    "/{name}/annotations",
    status_code=202,
    response_model=JobPublic,
    responses={
        **_ERRORS,
        413: {"description": "The file is too large"},
        415: {"description": "Not JSON or multipart"},
    },
    openapi_extra={"requestBody": _IMPORT_BODY},
)
async def import_annotations(
    name: str, request: Request, catalog: CatalogDep, runner: RunnerDep
) -> JobPublic:
    """Import annotations into a set; 202 with the `label_import` job (counts: received, imported,
    unknown_asset, invalid). JSON: {"format": "loupe", "annotations": [...]}, {"from_field": F} or
    {"label_studio": {url, token, project_id}}; multipart: `file` + `format` (loupe JSONL, csv,
    coco, yolo zip, label-studio JSON export) + `source`. An upload is checked whole before
    anything is written: a bad one is a 422 naming the line and field, and nothing changes."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        job = await _from_upload(name, request, catalog)
    elif ctype in ("application/json", ""):
        job = await run_in_threadpool(admin.begin_json, catalog, name, await _json_body(request))
    else:
        raise UnsupportedMedia(f"send JSON or multipart/form-data, not {ctype}")
    runner.wake()
    return job_public(job)


async def _json_body(request: Request) -> AnnotationImport:
    raw = await request.body()
    try:
        return AnnotationImport.model_validate_json(raw or b"null")
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise InvalidQuery(first["msg"], path=where) from None


async def _from_upload(name: str, request: Request, catalog: Catalog) -> Any:
    limit = catalog.settings.max_annotation_bytes
    form = await request.form(max_files=1, max_fields=8)
    try:
        upload, fmt, source = form.get("file"), form.get("format"), form.get("source")
        if not isinstance(upload, UploadFile):
            raise InvalidQuery("upload the annotations as the multipart field `file`", path="file")
        if not isinstance(fmt, str) or fmt not in FORMATS:
            raise InvalidQuery(f"expected one of {', '.join(FORMATS)}", path="format")
        data = await upload.read(limit + 1)
        if len(data) > limit:
            raise PayloadTooLarge(f"file is larger than {limit:,} bytes (LOUPE_MAX_ANNOTATION_BYTES)")
        if not data:
            raise InvalidQuery("the uploaded file is empty", path="file")
        text_source = source if isinstance(source, str) and source else None
        return await run_in_threadpool(admin.begin_upload, catalog, name, data, fmt=fmt, source=text_source)
    finally:
        await form.close()


def _who(request: Request) -> str:
    """Who labels: the API key's fingerprint (keys carry no names; never the key), else anonymous."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if not request.app.state.api_keys or scheme.lower() != "bearer" or not token.strip():
        return "anonymous"
    return "key:" + hashlib.sha256(token.strip().encode()).hexdigest()[:12]


@router.post("/{name}/labels", response_model=bulk.BulkLabeled, responses=_ERRORS)
def label_assets(name: str, body: bulk.BulkLabel, request: Request, catalog: CatalogDep) -> bulk.BulkLabeled:
    """Label many assets by hand as `label` in a ground-truth set: `ids`, every asset under a
    `filter` (a selection, a map lasso) or the hits of a `search` body; recorded with
    `labeled_by` and `labeled_at`. A label outside the set's declared classes, an unknown id or a
    predictions set is a 422 and nothing is written."""
    return bulk.label(catalog, name, body, who=_who(request))
