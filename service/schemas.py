"""The API's request and response schemas, shared with the CLI (pydantic, no HTTP)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.config import JsonDict

from service.timestamps import rfc3339

if TYPE_CHECKING:
    from service.state import JobRow

MAX_EXAMPLES = 64
MAX_OFFSET = 10_000
# Asset ids are UUIDs (hyphens optional, as uuid.UUID reads them).
UUID_PATTERN = r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$"


# Request bodies are strict: `"limit": "5"` or `"full": 0` is what the OpenAPI document calls
# invalid, so the server rejects it too (lax mode would read them as 5 and false).
# A JSON search needs something to search by; an image search (multipart) brings its images.
# The schema says so, the catalog enforces it (422), and exports check it up front.
_NEEDS_TEXT_OR_LIKE: JsonDict = {
    "anyOf": [
        {"required": ["text"], "properties": {"text": {"type": "string"}}},
        {"required": ["like"], "properties": {"like": {"type": "array", "minItems": 1}}},
        {"required": ["vector"], "properties": {"vector": {"type": "array", "minItems": 1}}},
    ]
}
MAX_VECTOR_DIM = 65_536


class SearchRequest(BaseModel):
    """A search: text and/or example assets, steered away from negatives, under a filter."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra=_NEEDS_TEXT_OR_LIKE)

    text: str | None = Field(
        default=None,
        min_length=1,
        max_length=1000,
        pattern=r"\S",
        description="A text query (not blank). A search needs `text` or `like` (or, at "
        "POST /search/image, example images).",
    )
    like: list[str] = Field(
        default_factory=list, max_length=MAX_EXAMPLES, description="Asset ids to find more of."
    )
    unlike: list[str] = Field(
        default_factory=list, max_length=MAX_EXAMPLES, description="Asset ids to steer away from."
    )
    vector: list[float] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_VECTOR_DIM,
        description="A raw query vector of the space's dimension (finite; not all zeros under cosine).",
    )
    space: str | None = Field(
        default=None,
        max_length=200,
        description="The vector space to search (GET /api/v1/vector-spaces); default: the encoder's. "
        "`text` and example images work only in the encoder's space.",
    )
    filter: dict[str, Any] | None = Field(default=None, description="Filter in Loupe's JSON filter language.")
    limit: int = Field(default=20, ge=1, le=1000)
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET)
    score_threshold: float | None = Field(default=None, ge=-1.0, le=1.0)


AssetStatus = Literal["ok", "missing"]


class ExportEntry(BaseModel):
    """One export of an asset: where it went and when (its `exports` history)."""

    model_config = ConfigDict(extra="allow")

    target: str
    project: str | int | None = None
    export_id: str | None = None
    at: str | None = None


class AssetPublic(BaseModel):
    """An asset as the API returns it: GET /assets/{id}, listings and search hits."""

    # Extra fields pass through: the active-learning features add `labels`, `evals`, `signals`,
    # `selections` and `vectors` under these names (DESIGN.md) and declare them here when they do.
    model_config = ConfigDict(extra="allow")

    id: str = Field(description="Deterministic: the same for the same source and key on every sync.")
    source: str
    key: str = Field(description="Its key in the source: a relative path, an object key or a row key.")
    uri: str = Field(description="Where the bytes are: file://, s3://, or the source's row.")
    media_type: str | None = None
    size_bytes: int | None = None
    width: int | None = None
    height: int | None = None
    modified_at: str | None = Field(default=None, description="RFC 3339, as the source reported it.")
    synced_at: str | None = Field(default=None, description="RFC 3339: when Loupe last encoded it.")
    status: AssetStatus = Field(
        default="ok", description="`missing`: gone from the source at the last sync (not pruned)."
    )
    metadata: dict[str, Any] = Field(default_factory=dict)
    exports: list[ExportEntry] = Field(default_factory=list)


class AssetsPublic(BaseModel):
    """A page of assets: pass `next_cursor` back for the next one."""

    data: list[AssetPublic]
    next_cursor: str | None = None


class Hit(BaseModel):
    id: str
    score: float
    asset: AssetPublic


class SearchResponse(BaseModel):
    hits: list[Hit]
    next_offset: int | None = None


# The built-in connector kinds (connectors.registry.kinds(); a test keeps the two equal).
SourceKind = Literal["local", "s3", "sql"]


class SourceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    kind: SourceKind

    @field_validator("kind", mode="before")
    @classmethod
    def _known_kind(cls, v: object) -> object:
        # The registry's own wording (the schema's enum says the same): name the valid kinds.
        if v not in get_args(SourceKind):
            raise ValueError(f"unknown source kind {v!r}; valid kinds: {', '.join(get_args(SourceKind))}")
        return v

    config: dict[str, Any] = Field(
        default_factory=dict, description="The kind's fields: `path` (local), `bucket` (s3), `url` (sql) ..."
    )


class SourcePublic(BaseModel):
    name: str
    kind: str
    config: dict[str, Any]
    created_at: str | None = None


class SyncRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    full: bool = Field(default=False, description="Re-list everything, ignoring an incremental cursor.")
    prune: bool = Field(
        default=False, description="Delete assets that are gone instead of marking them missing."
    )
    space: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$",
        description="Fill this user vector space with `model`'s vectors of the source's catalogued assets "
        "(created on first use), instead of syncing the source; the encoder's vectors and the payload "
        "stay as they are.",
    )
    model: str | None = Field(
        default=None, max_length=200, description="With `space`: an open_clip model name (e.g. ViT-S-32)."
    )
    pretrained: str | None = Field(
        default=None,
        max_length=1000,
        description="With `space`: the model's pretrained tag or a local checkpoint path (unset: none).",
    )
    engine: Literal["local", "ray"] | None = Field(
        default=None,
        description="Where the sync runs: local (in the serving process) or ray (reads, decodes and "
        "encoding on a Ray cluster). Unset: LOUPE_SYNC__ENGINE.",
    )
    address: str | None = Field(
        default=None,
        max_length=300,
        description="With engine ray: the cluster's GCS address HOST:PORT, `auto` (the cluster this "
        "host is part of) or `local` (Ray started in the server); not ray:// (Ray Data does not run "
        "over Ray Client). Unset: LOUPE_SYNC__RAY_ADDRESS.",
    )


JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class JobPublic(BaseModel):
    """A job of any kind, as GET /api/v1/jobs/{id} reports it."""

    id: str
    kind: str = Field(description="sync, export, ...: GET /api/v1/jobs?kind=... lists one kind.")
    source: str | None = Field(default=None, description="The source a sync job syncs.")
    state: JobState
    counts: dict[str, int]
    progress: float
    rate: float = 0.0
    errors: list[dict[str, str]]
    error_count: int = 0
    detail: str | None = None
    engine: str | None = Field(default=None, description="A sync's engine: local or ray.")
    cancel_requested: bool = Field(
        default=False, description="DELETE /api/v1/jobs/{id} was called; it stops at its next step."
    )
    timings: dict[str, float] = Field(
        default_factory=dict,
        description="Seconds spent per stage (a sync: list, read, decode, encode, upsert).",
    )
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None


def job_public(row: JobRow) -> JobPublic:
    """A job row as the API and the CLI show it."""
    from service.jobs.kinds import kinds

    kind = kinds().get(row.kind or "sync")
    names = kind.counts if kind is not None else ()
    counts = {**dict.fromkeys(names, 0), **{k: int(v) for k, v in (row.counts or {}).items()}}
    return JobPublic(
        id=row.id,
        kind=row.kind or "sync",
        source=row.source or None,
        state=row.state,  # type: ignore[arg-type]
        counts=counts,
        progress=row.progress or 0.0,
        rate=row.rate or 0.0,
        errors=[e for e in (row.errors or []) if isinstance(e, dict)],
        error_count=row.error_count or 0,
        detail=row.detail,
        engine=(row.options or {}).get("engine", "local") if (row.kind or "sync") == "sync" else None,
        cancel_requested=bool(row.cancel_requested),
        timings=dict(row.timings or {}),
        created_at=rfc3339(row.created_at),
        started_at=rfc3339(row.started_at),
        finished_at=rfc3339(row.finished_at),
    )


class Page(BaseModel):
    data: list[dict[str, Any]]
    next_cursor: str | None = None


class FacetValue(BaseModel):
    value: Any
    count: int


class Facets(BaseModel):
    field: str
    values: list[FacetValue]


class ErrorBody(BaseModel):
    error: str
    detail: str
