"""Assets: listing under a filter, one asset, its content and thumbnail."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from fastapi.responses import RedirectResponse

from service.api.deps import CatalogDep, FilterDep
from service.schemas import AssetPublic, AssetsPublic

# An asset id (the id order's cursor) or an ordered listing's opaque base64url cursor.
CURSOR_PATTERN = r"^[A-Za-z0-9_-]+$"

router = APIRouter(prefix="/assets", tags=["assets"])


@router.get("", response_model=AssetsPublic)
def list_assets(
    catalog: CatalogDep,
    filter: FilterDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[
        str | None,
        Query(pattern=CURSOR_PATTERN, max_length=200_000, description="`next_cursor` of the previous page."),
    ] = None,
    order_by: Annotated[
        str | None,
        Query(
            max_length=200,
            description="A numeric or datetime field to order by (e.g. signals.uniqueness, modified_at).",
        ),
    ] = None,
    order: Annotated[Literal["asc", "desc"], Query(description="With order_by: the direction.")] = "asc",
) -> AssetsPublic:
    """Assets matching a filter, in id order or by `order_by`; pass `next_cursor` back for the next page."""
    data, nxt = catalog.list_assets(filter=filter, limit=limit, cursor=cursor, order_by=order_by, order=order)
    return AssetsPublic.model_validate({"data": data, "next_cursor": nxt})


@router.get("/count")
def count_assets(catalog: CatalogDep, filter: FilterDep) -> dict[str, Any]:
    """How many assets match a filter."""
    return {"count": catalog.count(filter)}


@router.get("/{asset_id}", response_model=AssetPublic)
def get_asset(asset_id: str, catalog: CatalogDep) -> AssetPublic:
    """One asset with its metadata and export history."""
    return AssetPublic.model_validate(catalog.get_asset(asset_id))


@router.get("/{asset_id}/content", response_model=None, responses={200: {"content": {"image/*": {}}}})
def asset_content(asset_id: str, catalog: CatalogDep) -> Response:
    """The asset's original bytes (or a redirect to a presigned URL where the source allows)."""
    url = catalog.presigned_url(asset_id, expires_s=900)
    if url is not None:
        return RedirectResponse(url, status_code=307)
    data, media_type = catalog.content(asset_id)
    return Response(content=data, media_type=media_type, headers={"Cache-Control": "private, max-age=300"})


@router.get("/{asset_id}/thumbnail", response_model=None, responses={200: {"content": {"image/jpeg": {}}}})
def asset_thumbnail(
    asset_id: str, catalog: CatalogDep, size: Annotated[int, Query(ge=16, le=1024)] = 256
) -> Response:
    """A JPEG thumbnail of the asset."""
    data = catalog.thumbnail(asset_id, size=size)
    return Response(content=data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})
