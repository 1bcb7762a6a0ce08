"""API schemas of labeling functions and their runs (shared by the routes, the CLI and the client)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.labels.schemas import SET_NAME

DEFAULT_RULE_THRESHOLD = 0.8  # cosine to the closest example
DEFAULT_VOTE_THRESHOLD = 0.5  # share of the neighbours' weighted vote: a majority
DEFAULT_MARGIN = 0.02
DEFAULT_K = 10
RunState = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class Rule(BaseModel):
    """One rule: a label, and example assets (`like`), a text, or both; optionally a filter."""

    model_config = ConfigDict(extra="forbid")

    label: str = Field(min_length=1, max_length=200)
    like: list[str] | None = Field(default=None, max_length=1000, description="Example asset ids.")
    text: str | None = Field(default=None, max_length=1000, description="A text query (encoder space only).")
    filter: dict[str, Any] | None = Field(default=None, description="Only assets under this filter.")


class LabelingFunctionCreate(BaseModel):
    """POST /labeling-functions: define (or redefine) a function and run it."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=SET_NAME)
    into: str = Field(
        pattern=SET_NAME, description="The predictions set its labels land in (made if missing)."
    )
    rules: list[Rule] | None = Field(default=None, max_length=200)
    propagate_from: str | None = Field(
        default=None, max_length=64, description="A ground-truth set whose labels spread to their neighbours."
    )
    ground_truth: str | None = Field(
        default=None,
        max_length=64,
        description="Rules only: a ground-truth set to calibrate and estimate precision on.",
    )
    threshold: float | None = Field(
        default=None,
        ge=-1.0,
        le=1.0,
        description=(
            f"Label at this score: rules, the cosine to the closest example (default "
            f"{DEFAULT_RULE_THRESHOLD}); propagation, the vote share (default {DEFAULT_VOTE_THRESHOLD})."
        ),
    )
    target_precision: float | None = Field(
        default=None, description="Choose the threshold that reaches this precision on held-out ground truth."
    )
    margin: float = Field(
        default=DEFAULT_MARGIN,
        ge=0.0,
        le=1.0,
        description="Rules: abstain where the best two rules' scores differ by less than this.",
    )
    k: int = Field(default=DEFAULT_K, ge=1, le=100, description="Propagation: neighbours that vote.")
    filter: dict[str, Any] | None = None
    space: str | None = Field(
        default=None, max_length=64, description="The vector space (default: the encoder's)."
    )


class CurvePoint(BaseModel):
    threshold: float
    precision: float | None = Field(description="Of the held-out assets labelled at this threshold.")
    coverage: float = Field(description="Share of the held-out assets labelled at this threshold.")
    labeled: int


class LabelingFunctionRun(BaseModel):
    """A function's run: what it labelled, at which threshold, and how right it is estimated to be."""

    name: str
    state: RunState
    job_id: str
    into: str
    labeled: int = 0
    abstained: int = 0
    threshold: float | None = None
    estimated_precision: float | None = None
    estimated_coverage: float | None = None
    estimated_from: str | None = Field(
        default=None,
        description="The ground-truth set the estimate was measured on; null = nothing estimated.",
    )
    estimated_on: int = Field(
        default=0,
        description="Ground-truth assets the estimate was measured on (propagation: at most 5,000 of "
        "them, a fixed random sample; all of them still vote).",
    )
    method: str | None = Field(default=None, description="How the estimate was held out.")
    curve: list[CurvePoint] = Field(default_factory=list)
    detail: str | None = None
    created_at: str | None = None
    finished_at: str | None = None


class LabelingFunctionPublic(BaseModel):
    """A function's definition and its last run."""

    name: str
    definition: dict[str, Any]
    run: LabelingFunctionRun


class LabelingFunctionsPublic(BaseModel):
    data: list[LabelingFunctionPublic]
    next_cursor: str | None = None


class CurvePublic(BaseModel):
    name: str
    estimated_from: str | None
    threshold: float | None
    curve: list[CurvePoint]
