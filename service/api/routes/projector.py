"""The catalog's fields, and the embedding projector: layout status, points and colour columns as binary.

Binary frames (`application/octet-stream`), so 100,000 points load in one
small response that the page reads into typed arrays without parsing:

    bytes 0-3   b"LPJ1"
    bytes 4-7   header length H, uint32 little-endian (8 + H is a multiple of 8)
    8 .. 8+H    JSON header, space-padded; `arrays` lists {name, dtype, offset, length}
    8+H ..      the arrays, little-endian, each at an `offset` (from 8+H) that is a multiple of 8

`/projector/points` carries `xy` (float32, x0 y0 x1 y1 ...) and `ids` (uint8,
16 bytes per point: the asset id's UUID bytes); `/projector/colors` carries
`values` for one field (uint8 category codes or float32 numbers, see its header).
"""

from __future__ import annotations

import hashlib
import json
import struct
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Depends, Query, Request, Response

from service.api.deps import CatalogDep
from service.catalog.catalog import Catalog
from service.catalog.fields import catalog_fields
from service.catalog.projector import DEFAULT_METHOD, Projector, methods
from service.catalog.reduce import UMAP_FIT_SAMPLE
from service.evals.fields import model_fields
from service.index.filters import field_key
from service.index.spaces import resolve_space
from service.schemas import Page

router = APIRouter(tags=["projector"])

MAGIC = b"LPJ1"
METHODS = tuple(methods())
Method = Annotated[
    Literal[METHODS],  # type: ignore[valid-type]
    Query(
        description=f"umap (default: fitted on a sample of {UMAP_FIT_SAMPLE:,} vectors, the rest placed "
        "by transform; deterministic) or pca (linear, faster, smears classes together)"
    ),
]


async def get_projector(request: Request) -> Projector:
    return request.app.state.projector  # type: ignore[no-any-return]


ProjectorDep = Annotated[Projector, Depends(get_projector)]
SpaceQuery = Annotated[
    str | None,
    Query(max_length=200, description="A vector space (GET /api/v1/vector-spaces); default: the encoder's"),
]


def _space(catalog: Catalog, space: str | None) -> str | None:
    """A user space's vector name, or None for the encoder's; 422 for an unknown space."""
    spec = resolve_space(catalog.index, space)
    return None if spec.name == catalog.index.vector_name else spec.name


def encode_frame(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> bytes:
    """One binary frame (see the module docstring) holding `header` and `arrays`."""
    described, blobs, offset = [], [], 0
    for name, array in arrays.items():
        data = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
        described.append({"name": name, "dtype": str(array.dtype), "offset": offset, "length": array.size})
        blobs.append(data + b"\0" * (-len(data) % 8))
        offset += len(blobs[-1])
    text = json.dumps({**header, "arrays": described}, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return MAGIC + struct.pack("<I", len(text)) + text + b"".join(blobs)


def decode_frame(frame: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The inverse of `encode_frame` (for tests and Python clients)."""
    if frame[:4] != MAGIC:
        raise ValueError("not a Loupe projector frame")
    (size,) = struct.unpack("<I", frame[4:8])
    header = json.loads(frame[8 : 8 + size])
    body = memoryview(frame)[8 + size :]
    arrays = {
        a["name"]: np.frombuffer(
            body, dtype=np.dtype(a["dtype"]).newbyteorder("<"), count=a["length"], offset=a["offset"]
        )
        for a in header["arrays"]
    }
    return header, arrays


def _binary(request: Request, frame_of: Any, etag: str) -> Response:
    """A frame with an ETag: a page reload that already holds this layout gets a 304."""
    tag = f'"{etag}"'
    if request.headers.get("if-none-match") == tag:
        return Response(status_code=304, headers={"ETag": tag})
    headers = {"ETag": tag, "Cache-Control": "private, no-cache"}
    return Response(frame_of(), media_type="application/octet-stream", headers=headers)


@router.get("/fields", response_model=Page)
def list_fields(catalog: CatalogDep) -> Page:
    """Filterable fields (built-in, metadata, then those of label sets and evaluations: `labels.<set>.*`,
    `evals.<id>.*`, marked `derived`) with their type, whether indexed and facetable."""
    fields = catalog_fields(catalog.index, derived=model_fields(catalog.state))
    return Page(data=[f.public() for f in fields])


STATUS_DESCRIPTION = """The 2-D layout's state (computing with progress, ready, stale, failed); starts it
when needed.

The points and the colours age apart. `version` (with `computed_at`, `seconds`) is the points'
version: it changes when a sync (or, for a space, a vector import or model sync) moved them,
and only then are `/projector/points` worth loading again. `colors_version` (with `colors_at`)
is the colour columns' version: a finished signal, label import, labeling function or
evaluation changes it, and the columns are then re-read from the layout's assets in the
background (`state` is `computing` meanwhile) without a new reduction, the points unchanged.
`stale` is true while either is out of date. `colors` lists the fields `/projector/colors` takes.
"""


@router.get("/projector", description=STATUS_DESCRIPTION)
def projector_status(
    projector: ProjectorDep, catalog: CatalogDep, method: Method = DEFAULT_METHOD, space: SpaceQuery = None
) -> dict[str, Any]:
    """The 2-D layout's state (computing with progress, ready, stale, failed); starts it when needed."""
    return projector.status(method, _space(catalog, space))


@router.get(
    "/projector/points",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}, "description": "A binary frame"}},
)
def projector_points(
    request: Request,
    projector: ProjectorDep,
    catalog: CatalogDep,
    method: Method = DEFAULT_METHOD,
    space: SpaceQuery = None,
) -> Response:
    """Every point's x, y and asset id as one binary frame; 409 until a layout is available."""
    layout = projector.layout(method, _space(catalog, space))
    header = {
        "method": layout.method,
        "version": layout.fingerprint,
        "count": layout.count,
        "view": layout.view,
    }
    return _binary(
        request,
        lambda: encode_frame(header, {"xy": layout.xy, "ids": layout.ids}),
        f"{layout.fingerprint}-points",
    )


@router.get(
    "/projector/colors",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}, "description": "A binary frame"}},
)
def projector_colors(
    request: Request,
    projector: ProjectorDep,
    field: Annotated[str, Query(max_length=300, description="A field from GET /projector `colors`")],
    catalog: CatalogDep,
    method: Method = DEFAULT_METHOD,
    space: SpaceQuery = None,
) -> Response:
    """One field's value per point (category codes or numbers) as a binary frame, in layout order;
    the header's `version` is the points' and `colors_version` the columns' (GET /projector)."""
    # The names filters and facets take (`label` is `meta.label`), so one field name works everywhere.
    layout, column = projector.column(method, field_key(field, path="field"), _space(catalog, space))
    header = {
        "version": layout.fingerprint,
        "colors_version": layout.colors_version,
        "count": layout.count,
        **column.header(),
    }
    tag = hashlib.sha256(field.encode()).hexdigest()[:12]  # any field name, safe in a header
    etag = f"{layout.fingerprint}-{layout.colors_version}-{tag}"  # new colours, a new tag: no stale 304
    return _binary(request, lambda: encode_frame(header, {"values": column.data}), etag)
