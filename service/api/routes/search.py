"""Search by text, by example assets and by uploaded example images; facets."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Query, UploadFile

from service.api.deps import CatalogDep, FilterDep, parse_filter_json
from service.errors import InvalidQuery, PayloadTooLarge, UnsupportedMedia
from service.schemas import MAX_EXAMPLES, Facets, FacetValue, SearchRequest, SearchResponse

router = APIRouter(tags=["search"])


@router.post("/search", response_model=SearchResponse)
def search(body: SearchRequest, catalog: CatalogDep) -> SearchResponse:
    """Search with text, `like`/`unlike` asset ids and a filter."""
    hits, nxt = catalog.search(body)
    return SearchResponse.model_validate({"hits": hits, "next_offset": nxt})


def _read_upload(upload: UploadFile, limit: int, i: int) -> bytes:
    data = upload.file.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(
            f"images[{i}] ({upload.filename}) is larger than {limit:,} bytes (LOUPE_MAX_UPLOAD_BYTES)"
        )
    if not data:
        raise InvalidQuery("the uploaded file is empty", path=f"images[{i}]")
    ctype = (upload.content_type or "").split(";")[0]
    if ctype and not ctype.startswith("image/") and ctype != "application/octet-stream":
        raise UnsupportedMedia(f"images[{i}] has content type {ctype}; upload an image")
    return data


def _ids(raw: list[str] | None) -> list[str]:
    out: list[str] = []
    for item in raw or []:
        out.extend(part.strip() for part in item.split(",") if part.strip())
    return out


@router.post("/search/image", response_model=SearchResponse)
def search_image(
    catalog: CatalogDep,
    images: Annotated[list[UploadFile], File(description="One or more example images.")],
    text: Annotated[str | None, Form(min_length=1, max_length=1000, pattern=r"\S")] = None,
    like: Annotated[list[str] | None, Form()] = None,
    unlike: Annotated[list[str] | None, Form()] = None,
    filter: Annotated[str | None, Form(description="Filter as a JSON string.")] = None,
    limit: Annotated[int, Form(ge=1, le=1000)] = 20,
    offset: Annotated[int, Form(ge=0, le=10_000)] = 0,
    score_threshold: Annotated[float | None, Form(ge=-1.0, le=1.0)] = None,
    space: Annotated[
        str | None, Form(max_length=200, description="Images search the encoder's space only.")
    ] = None,
) -> SearchResponse:
    """Search by uploaded example images (multipart), with the options of POST /search."""
    if len(images) > MAX_EXAMPLES:
        raise InvalidQuery(f"at most {MAX_EXAMPLES} images per search", path="images")
    limit_bytes = catalog.settings.max_upload_bytes
    data = [_read_upload(u, limit_bytes, i) for i, u in enumerate(images)]
    parsed_filter = parse_filter_json(filter)
    req = SearchRequest(
        text=text,
        like=_ids(like),
        unlike=_ids(unlike),
        filter=parsed_filter,
        limit=limit,
        offset=offset,
        score_threshold=score_threshold,
        space=space,
    )
    hits, nxt = catalog.search(req, images=data)
    return SearchResponse.model_validate({"hits": hits, "next_offset": nxt})


@router.get("/facets/{field}", response_model=Facets)
def facets(
    field: str,
    catalog: CatalogDep,
    filter: FilterDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> Facets:
    """Value counts of a field (built-in or metadata) under a filter."""
    values = catalog.facet(field, filter=filter, limit=limit)
    return Facets(field=field, values=[FacetValue(**v) for v in values])
