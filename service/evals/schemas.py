"""Evaluation requests and responses, shared by the API and the CLI (pydantic, no HTTP)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.schemas import SearchRequest, SearchResponse

EvaluationState = Literal["queued", "running", "succeeded", "failed", "cancelled"]
Task = Literal["classification", "detection"]
MAX_SLICE_FIELDS = 8
SET_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


class EvaluationRequest(BaseModel):
    """Score a predictions set against a ground-truth set, under a filter, per slice."""

    model_config = ConfigDict(extra="forbid", strict=True)

    predictions: str = Field(min_length=1, max_length=200, pattern=SET_NAME, description="A predictions set.")
    ground_truth: str = Field(
        min_length=1, max_length=200, pattern=SET_NAME, description="A ground-truth set."
    )
    filter: dict[str, Any] | None = Field(
        default=None, description="Evaluate only the assets this filter keeps (Loupe's filter language)."
    )
    slice_by: list[str] = Field(
        default_factory=list,
        max_length=MAX_SLICE_FIELDS,
        description="Fields to slice by (metadata such as `site`, or payload paths): one slice per value.",
    )
    iou: float = Field(
        default=0.5,
        description="Detection: the IoU at which tp/fp/fn are counted, in (0, 1]. mAP uses COCO's 0.5:0.95.",
    )


class EvaluationCounts(BaseModel):
    assets: int = Field(default=0, description="Assets under the filter that the ground-truth set labels.")
    matched: int = Field(
        default=0, description="Those of them that the predictions set also labels (scored)."
    )


class Confusion(BaseModel):
    labels: list[str]
    matrix: list[list[int]] = Field(description="Rows: ground truth, columns: prediction.")
    filters: list[list[dict[str, Any]]] = Field(description="The filter that selects each cell's assets.")


class Slice(BaseModel):
    field: str
    value: Any
    count: int
    metrics: dict[str, Any]


class EvaluationPublic(BaseModel):
    """An evaluation: queued or running until its job ends, then its results."""

    id: str = Field(description="Also its job's id; fields `evals.<id>.*` hold per-asset outcomes.")
    job_id: str
    state: EvaluationState
    task: Task
    predictions: str
    ground_truth: str
    filter: dict[str, Any] | None = None
    slice_by: list[str] = Field(default_factory=list)
    iou: float
    counts: EvaluationCounts = Field(default_factory=EvaluationCounts)
    metrics: dict[str, Any] = Field(default_factory=dict)
    per_class: dict[str, dict[str, Any]] = Field(default_factory=dict)
    confusion: Confusion | None = Field(
        default=None,
        description="Classification: assets by true and predicted label. Detection: boxes matched at the "
        "IoU regardless of class, with a `(none)` row (unmatched predictions) and column (unmatched "
        "ground truth); a cell's filter selects the images holding at least one of its box pairs.",
    )
    slices: list[Slice] = Field(default_factory=list)
    outcomes: dict[str, Any] = Field(
        default_factory=dict, description="The per-asset fields written back and the filters over them."
    )
    detail: str | None = None
    created_at: str | None = None
    finished_at: str | None = None


class CompareRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    a: str = Field(min_length=1, max_length=64, description="The earlier evaluation's id.")
    b: str = Field(min_length=1, max_length=64, description="The later evaluation's id.")


class AssetChange(BaseModel):
    count: int
    filter: dict[str, Any]


class SliceDelta(BaseModel):
    field: str
    value: Any
    a: dict[str, Any]
    b: dict[str, Any]
    delta: dict[str, float | None]


class ComparisonPublic(BaseModel):
    """B minus A: every metric overall, per class and per slice, and the assets fixed and broken."""

    a: str
    b: str
    task: Task
    ground_truth: str
    metrics: dict[str, float | None]
    per_class: dict[str, dict[str, float | None]]
    slices: list[SliceDelta]
    fixed: AssetChange
    broken: AssetChange
    definition: str = Field(description="What fixed and broken mean for this task.")


class SliceChoice(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    field: str = Field(min_length=1, max_length=200)
    value: str | int | bool


class SimilarRequest(BaseModel):
    """A confusion cell or a slice of an evaluation: find unlabeled assets like its errors."""

    model_config = ConfigDict(extra="forbid", strict=True)

    cell: list[str] | None = Field(
        default=None, min_length=2, max_length=2, description="[ground-truth label, predicted label]."
    )
    slice: SliceChoice | None = Field(default=None, description="A slice: its wrongly predicted assets.")
    limit: int = Field(default=50, ge=1, le=1000)


class SimilarResponse(SearchResponse):
    """The search's hits, and the search body it ran (POST /exports takes it as `search`)."""

    search: SearchRequest
    examples: int = Field(description="How many of the errors were used as examples (`like`).")
    errors: int = Field(description="How many assets the cell or slice holds.")
