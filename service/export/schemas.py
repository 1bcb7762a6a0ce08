"""Export request and response models, shared by the API, the CLI and the exporters (pydantic, no HTTP)."""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic.config import JsonDict

from service.schemas import SearchRequest

MAX_IDS = 100_000
MAX_SELECTION = 100_000  # Label Studio itself advises at most ~100k tasks per project
MAX_PRESIGN_S = 7 * 24 * 3600  # S3's own ceiling for a presigned URL

ExportState = Literal["queued", "running", "succeeded", "failed", "cancelled"]
# The registry's targets (service.export.base.targets()), named here so that the schema and the
# CLI's parser import no exporter; a test keeps the two equal.
ExportTarget = Literal["label-studio", "jsonl", "csv", "labelbox", "coco", "label-studio-json"]

# The one-of rules of the validators below, as the OpenAPI document states them (an explicit
# null counts as not given, as it does for the validators).
_ONE_PROJECT: JsonDict = {
    "oneOf": [
        {"required": ["project_id"], "properties": {"project_id": {"type": "integer"}}},
        {"required": ["title"], "properties": {"title": {"type": "string"}}},
    ]
}
_ONE_SELECTION: JsonDict = {
    "oneOf": [
        {"required": ["search"], "properties": {"search": {"type": "object"}}},
        {"required": ["ids"], "properties": {"ids": {"type": "array"}}},
        {"required": ["filter"], "properties": {"filter": {"type": "object"}}},
        {"required": ["selection"], "properties": {"selection": {"type": "string"}}},
    ]
}


class LabelStudioOptions(BaseModel):
    """Where a live Label Studio export goes, and how the tasks look."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra=_ONE_PROJECT)

    url: str = Field(description="Label Studio's base URL, e.g. http://localhost:8080")
    token: SecretStr = Field(
        description="A legacy API token (sent as `Token`) or a personal access token (a JWT, "
        "refreshed into a `Bearer` access token). Never stored or echoed."
    )
    project_id: int | None = Field(default=None, ge=1, description="An existing project.")
    title: str | None = Field(
        default=None, min_length=3, max_length=50, description="Create a new project with this title."
    )
    label_config: str | None = Field(
        default=None,
        max_length=200_000,
        description="Label config XML for a new project (default: single-choice image classification).",
    )
    predictions: bool = Field(
        default=True, description="Send the asset's model label as a pre-annotation when it has one."
    )
    prediction_field: str | None = Field(
        default=None,
        description="Metadata key holding the model label (default: `prediction`, else `label`); "
        "its score comes from `<key>_score`, else `score`.",
    )
    predictions_set: str | None = Field(
        default=None,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$",
        description="A predictions label set (a model run or a labeling function) to send as "
        "pre-annotations: classification choices and detection rectangles (in Label Studio's percent "
        "coordinates). The way to pick pre-annotations; without it, `prediction_field` is read.",
    )
    batch_size: int = Field(default=100, ge=1, le=1000, description="Tasks per import request.")

    @field_validator("url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        v = v.strip().rstrip("/")
        if not v.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return v

    @model_validator(mode="after")
    def _one_project(self) -> LabelStudioOptions:
        if (self.project_id is None) == (self.title is None):
            raise ValueError("give exactly one of project_id (an existing project) or title (a new one)")
        if self.label_config is not None and self.project_id is not None:
            raise ValueError("label_config applies to a new project (title), not to an existing project_id")
        return self


class ExportRequest(BaseModel):
    """What to export (a search, ids, or a filter alone) and where to."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra=_ONE_SELECTION)

    target: ExportTarget
    search: SearchRequest | None = Field(default=None, description="Export the hits of this search.")
    ids: list[str] | None = Field(
        default=None, max_length=MAX_IDS, description="Export these assets (asset ids are UUIDs)."
    )
    filter: dict[str, Any] | None = Field(
        default=None, description="Export every asset matching this filter (`{}` = all)."
    )
    selection: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="Export the assets of this selection (POST /api/v1/selections).",
    )
    limit: int | None = Field(
        default=None, ge=1, le=MAX_SELECTION, description="At most this many assets (ids, filter, selection)."
    )
    path: str | None = Field(
        default=None, description="File targets: write here (on the server); without it, download."
    )
    overwrite: bool = Field(default=False, description="Replace an existing file at `path`.")
    label_studio: LabelStudioOptions | None = None
    fields: list[str] | None = Field(
        default=None, max_length=200, description="Metadata keys to include (default: all)."
    )
    presign_expiry_s: int | None = Field(
        default=None,
        ge=60,
        le=MAX_PRESIGN_S,
        description="Give S3 assets a presigned URL valid this long instead of Loupe's content URL.",
    )

    @field_validator("target", mode="before")
    @classmethod
    def _known_target(cls, v: object) -> object:
        # The registry's own wording (the schema's enum says the same): name the valid targets.
        valid = sorted(get_args(ExportTarget))
        if v not in valid:
            raise ValueError(f"unknown export target {v!r}; valid targets: {', '.join(valid)}")
        return v

    @model_validator(mode="after")
    def _one_selection(self) -> ExportRequest:
        given = [n for n in ("search", "ids", "filter", "selection") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one selection: `search` (a search body), `ids` (asset ids), "
                "`filter` (a filter alone; {} selects everything) or `selection` (a selection's name)"
                + (f"; got {', '.join(given)}" if given else "")
            )
        return self

    def public(self) -> dict[str, Any]:
        """The request as stored and shown: secrets left out."""
        out = self.model_dump(mode="json", exclude_none=True, exclude={"label_studio": {"token"}})
        if self.ids is not None and len(self.ids) > 20:
            out["ids"] = [*self.ids[:20], f"... {len(self.ids) - 20} more"]
        return out


class ExportCounts(BaseModel):
    selected: int = 0
    sent: int = 0
    skipped: int = 0
    failed: int = 0


class ExportPublic(BaseModel):
    """An export as GET /exports/{id} reports it."""

    id: str
    job_id: str = Field(description="Its job: GET /api/v1/jobs/{job_id}; DELETE there cancels it.")
    target: str
    state: ExportState
    counts: ExportCounts
    location: str | None = Field(default=None, description="The file, download URL or project URL.")
    detail: str | None = Field(default=None, description="Why it failed, or which assets failed.")
    request: dict[str, Any] = Field(default_factory=dict, description="The request, secrets left out.")
    created_at: str | None = None
    finished_at: str | None = None
