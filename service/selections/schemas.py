"""Selection requests and responses, shared by the API and the CLI (pydantic, no HTTP)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SelectionState = Literal["queued", "running", "succeeded", "failed", "cancelled"]
Measure = Literal["least_confidence", "margin", "entropy"]
NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
MAX_BUDGET = 100_000  # one labeling round; Label Studio advises at most ~100k tasks per project
MAX_STRENGTH = 10.0

_STRENGTH = Field(
    default=1.0,
    ge=0.0,
    le=MAX_STRENGTH,
    description="The exponent of this objective in the product (0 = ignored, 2 = counts twice).",
)


class _Strategy(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class UncertaintyStrategy(_Strategy):
    """Prefer the assets a predictions set is least sure about. A batch (budget > 1) without a
    diversity strategy is spread within itself: the most uncertain asset first, then each pick's
    weight times (distance to the batch's earlier picks / the largest such distance) ** 0.5.
    The exact top N (near neighbours together, and for entropy the one region the model knows
    least: worse than random on 30 classes in benchmarks/bench_active_learning.py) is
    `{"kind": "diversity", "strength": 0}`; `{"kind": "diversity"}` spreads it from what is
    labelled too."""

    kind: Literal["uncertainty"]
    predictions: str = Field(min_length=1, max_length=200, pattern=NAME, description="A predictions set.")
    measure: Measure = Field(
        description="least_confidence (1 - top p) and entropy: higher = less sure; margin (p1 - p2): "
        "the smallest margin is taken first."
    )
    strength: float = _STRENGTH


class DiversityStrategy(_Strategy):
    """Spread the picks over the embedding space: greedy k-centre seeded with what is labelled.
    Strength 0 spreads nothing: with uncertainty, the batch is then its exact top N."""

    kind: Literal["diversity"]
    strength: float = _STRENGTH


class BalanceStrategy(_Strategy):
    """Share the budget between the values of a field."""

    kind: Literal["balance"]
    field: str = Field(min_length=1, max_length=300, description="A keyword field, e.g. `site`.")
    target: Literal["uniform"] | dict[str, float] = Field(
        default="uniform",
        description='"uniform" (each value present an equal share) or {"<value>": share} '
        "(shares are normalised to sum 1; other values get none until those are filled).",
    )


class SimilarStrategy(_Strategy):
    """Prefer assets like some example assets and/or a text (cosine to their mean vector)."""

    kind: Literal["similar"]
    like: list[str] | None = Field(default=None, max_length=100, description="Example asset ids.")
    text: str | None = Field(default=None, max_length=1000, description="A text (the encoder's space only).")
    strength: float = _STRENGTH


class FieldStrategy(_Strategy):
    """Prefer assets with a higher value of a numeric field (e.g. `signals.uniqueness`)."""

    kind: Literal["field"]
    field: str = Field(min_length=1, max_length=300, description="A numeric field.")
    strength: float = _STRENGTH


Strategy = Annotated[
    UncertaintyStrategy | DiversityStrategy | BalanceStrategy | SimilarStrategy | FieldStrategy,
    Field(discriminator="kind"),
]


class SelectionRequest(BaseModel):
    """Choose what to label next: `budget` assets under `filter`, by `strategies`."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(min_length=1, max_length=100, pattern=NAME, description="The selection's name.")
    budget: int = Field(ge=1, le=MAX_BUDGET, description="How many assets to choose.")
    filter: dict[str, Any] | None = Field(
        default=None, description="Choose among the assets this filter keeps (its thresholds)."
    )
    strategies: list[Strategy] = Field(min_length=1, max_length=16)
    exclude_labeled: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        pattern=NAME,
        description="A ground-truth set: its assets are not chosen, and seed the diversity.",
    )
    space: str | None = Field(
        default=None, max_length=200, description="The vector space for diversity and similarity."
    )
    include_selected: bool = Field(
        default=False, description="Also choose assets an earlier selection already holds."
    )
    include_exported: bool = Field(default=False, description="Also choose assets already exported.")


class SelectionCounts(BaseModel):
    candidates: int = Field(default=0, description="Assets that could be chosen (filter minus exclusions).")
    seeds: int = Field(default=0, description="Labelled or already chosen assets that seeded diversity.")
    selected: int = 0


class SelectionPublic(BaseModel):
    """A selection as GET /selections/{name} reports it; `ids` in the order they were chosen."""

    name: str
    job_id: str = Field(description="Its job: GET /api/v1/jobs/{job_id}; DELETE there cancels it.")
    state: SelectionState
    budget: int
    count: int
    ids: list[str]
    strategies: list[dict[str, Any]]
    filter: dict[str, Any] | None = None
    exclude_labeled: str | None = None
    space: str | None = None
    include_selected: bool = False
    include_exported: bool = False
    counts: SelectionCounts = Field(default_factory=SelectionCounts)
    detail: str | None = Field(default=None, description="Why it failed, or that the budget took all.")
    created_at: str | None = None
    finished_at: str | None = None


class SelectionsPublic(BaseModel):
    data: list[SelectionPublic]
    next_cursor: str | None = None
