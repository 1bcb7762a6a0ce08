"""The vector-space API's request and response schemas, shared with the CLI."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from service.index.spaces import SPACE_NAME

DistanceName = Literal["cosine", "dot", "euclid"]


class VectorSpaceCreate(BaseModel):
    """A user space: a named vector of every asset's point, filled by imports or a model sync."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(
        pattern=SPACE_NAME,
        description="Lower-case letters, digits, `-` and `_`, at most 64 (no dots: those are the encoders').",
    )
    dim: int = Field(ge=1, le=65_536, description="Components per vector.")
    distance: DistanceName = Field(
        default="cosine", description="cosine and dot: higher scores are closer; euclid: a distance."
    )


class VectorSpacePublic(BaseModel):
    """A space and how many assets have a vector in it."""

    name: str
    dim: int
    distance: DistanceName
    encoder: bool = Field(description="The encoder's own space (text and image search work only here).")
    model: str | None = Field(default=None, description="The model whose vectors fill it, if one does.")
    pretrained: str | None = None
    count: int = Field(description="Assets with a vector in this space.")
    stale: int = Field(
        default=0, description="Of those, assets changed at their source since their vector was imported."
    )
    created_at: str | None = None


class VectorSpacesPublic(BaseModel):
    data: list[VectorSpacePublic]
    next_cursor: str | None = None
