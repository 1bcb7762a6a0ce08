"""Signal requests and responses, shared by the API and the CLI (pydantic, no HTTP)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SignalKind = Literal["duplicates", "uniqueness", "outliers", "typicality", "label_issues", "clusters"]
KINDS: tuple[str, ...] = ("duplicates", "uniqueness", "outliers", "typicality", "label_issues", "clusters")
SET_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
MAX_K = 100

# Per kind: the default k and threshold (None = the kind takes none), and what each means.
DEFAULT_K = {
    "duplicates": 5,
    "uniqueness": 3,
    "outliers": 10,
    "typicality": 10,
    "label_issues": 10,
    "clusters": 10,
}
DEFAULT_THRESHOLD: dict[str, float | None] = {
    "duplicates": 0.02,  # cosine distance (1 - similarity) at or under which two assets are near copies
    "uniqueness": 0.75,  # scores at or above it are counted as `flagged`
    "outliers": 0.9,
    "typicality": 0.75,
    "label_issues": 0.5,
    "clusters": None,
}
# The payload field each kind writes (duplicates writes two, clusters an integer).
FIELDS = {
    "uniqueness": "signals.uniqueness",
    "outliers": "signals.outlier",
    "typicality": "signals.typicality",
    "label_issues": "signals.label_issue",
    "clusters": "signals.cluster",
    "duplicates": "signals.duplicate_group",
}


class SignalRequest(BaseModel):
    """What to compute a signal over, and its parameters (each has a documented default)."""

    model_config = ConfigDict(extra="forbid")

    filter: dict[str, Any] | None = Field(
        default=None, description="Score only the assets this filter keeps (one slice, one source)."
    )
    k: int | None = Field(
        default=None,
        description=(
            f"Neighbours per asset, 1-{MAX_K} (defaults: uniqueness 3, outliers/typicality/label_issues 10, "
            "duplicates 5); for clusters, HDBSCAN's smallest cluster (default 10)."
        ),
    )
    threshold: float | None = Field(
        default=None,
        description=(
            "duplicates: the cosine distance (0-2, default 0.02) at or under which two assets are near "
            "copies; scores: the value in [0, 1] at or above which an asset counts as `flagged`."
        ),
    )
    weights: list[float] | None = Field(
        default=None,
        max_length=MAX_K,
        description="uniqueness: the weight of each of the k nearest distances (default 0.6, 0.3, 0.1).",
    )
    ground_truth: str | None = Field(
        default=None, max_length=200, pattern=SET_NAME, description="label_issues: the labels to check."
    )
    predictions: str | None = Field(
        default=None,
        max_length=200,
        pattern=SET_NAME,
        description="label_issues: a predictions set whose probabilities count with the neighbours' vote.",
    )
    space: str | None = Field(
        default=None, max_length=200, description="A vector space (default: the encoder's)."
    )
    incremental: bool = Field(
        default=True,
        description=(
            "After a sync, rescore only the new or changed assets and their neighbours when the same "
            "signal was computed over the same scope before (uniqueness, outliers, typicality, label_issues)."
        ),
    )


class SignalPublic(BaseModel):
    """One computed signal: its scope, parameters, when, over how many assets, and whether it is stale."""

    id: str
    kind: str
    field: str
    filter: dict[str, Any] | None = None
    space: str
    params: dict[str, Any] = Field(default_factory=dict)
    state: str
    job_id: str | None = None
    assets: int = Field(default=0, description="Assets the last run covered.")
    scored: int = Field(default=0, description="Assets it wrote a value on.")
    computed_at: str | None = None
    stale: bool = Field(default=False, description="Assets under its filter were added or changed since.")
    stale_count: int = Field(default=0, description="How many (synced after `computed_at`).")
    detail: str | None = None


class SignalsPublic(BaseModel):
    data: list[SignalPublic]
    next_cursor: str | None = None


class DuplicateGroupPublic(BaseModel):
    group: str
    keep: str = Field(description="The asset kept for the group (signals.duplicate_of of every member).")
    ids: list[str] = Field(description="Every member, the kept one first.")
    excluded: list[str] = Field(
        default_factory=list,
        description="Members left out of search and export (signals.duplicate_excluded).",
    )


class DuplicatesPublic(BaseModel):
    data: list[DuplicateGroupPublic]
    next_cursor: str | None = None


class KeepRequest(BaseModel):
    """Keep one member of a duplicate group; the others are left out of search and export."""

    model_config = ConfigDict(extra="forbid")

    keep: str = Field(description="The member to keep.")
    exclude_others: bool = Field(
        default=True,
        description="Mark the other members signals.duplicate_excluded (false: include them all again).",
    )
