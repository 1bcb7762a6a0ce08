"""A signal request checked before anything is queued: kind, k, threshold, weights, sets, space, filter.

Everything a user can get wrong is a 4xx here, with nothing written; the job re-reads the
checked options (`Planned`) and only computes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from service.errors import InvalidQuery
from service.index.base import Filter
from service.index.filters import parse_filter
from service.index.spaces import resolve_space
from service.signals.neighbours import with_vector
from service.signals.schemas import DEFAULT_K, DEFAULT_THRESHOLD, KINDS, MAX_K, SignalRequest
from service.signals.scores import UNIQUENESS_WEIGHTS
from service.signals.store import SignalStore, scope_id

if TYPE_CHECKING:
    from service.catalog.catalog import Catalog
    from service.state import JobRow


@dataclass
class Planned:
    """A signal's checked options, as the job reads them back."""

    kind: str
    k: int
    threshold: float | None
    space: str
    filter: dict[str, Any] | None
    weights: list[float] | None = None
    ground_truth: str | None = None
    predictions: str | None = None
    classes: int = 0
    incremental: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def row_id(self) -> str:
        return scope_id(self.kind, self.filter, self.space)

    def params(self) -> dict[str, Any]:
        out = {"k": self.k, "threshold": self.threshold}
        for name in ("weights", "ground_truth", "predictions"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return out


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise InvalidQuery(f"unknown signal kind {kind!r}; valid kinds: {', '.join(KINDS)}", path="kind")
    return kind


def plan(catalog: Catalog, kind: str, body: SignalRequest) -> Planned:
    """The request checked against the catalog; InvalidQuery / NotFound name what is wrong."""
    check_kind(kind)
    k = _k(kind, body)
    threshold = _threshold(kind, body.threshold)
    weights = _weights(kind, body.weights, k)
    space = resolve_space(catalog.index, body.space)
    planned = Planned(
        kind=kind,
        k=k,
        threshold=threshold,
        space=space.name,
        filter=body.filter or None,
        weights=weights,
        incremental=body.incremental,
    )
    flt = parse_filter(body.filter)
    _label_sets(catalog, kind, body, planned)
    if kind == "label_issues":
        flt = label_scope(flt, planned.ground_truth or "")
    if catalog.index.count(with_vector(flt, space)) == 0:
        what = f" with a {planned.ground_truth!r} label" if kind == "label_issues" else ""
        raise InvalidQuery(
            f"the filter matches no asset{what} with a vector in the space {space.name!r}; "
            "GET /api/v1/assets?filter=... shows what a filter keeps",
            path="filter",
        )
    return planned


def label_scope(flt: Filter | None, ground_truth: str) -> Filter | None:
    """`flt`, narrowed to the assets that `ground_truth` labels."""
    labelled = parse_filter({f"labels.{ground_truth}.label": {"exists": True}})
    parts = [p for p in (flt, labelled) if p is not None]
    return Filter(must=parts)


def _k(kind: str, body: SignalRequest) -> int:
    k = body.k
    if k is None:
        k = len(body.weights) if kind == "uniqueness" and body.weights else DEFAULT_K[kind]
    if k <= 0 or k > MAX_K:
        what = "HDBSCAN's smallest cluster" if kind == "clusters" else "neighbours per asset"
        raise InvalidQuery(f"k is {what}: give a whole number from 1 to {MAX_K}, not {k}", path="k")
    if kind == "clusters" and k < 2:
        raise InvalidQuery("k (HDBSCAN's smallest cluster) must be at least 2", path="k")
    return k


def _threshold(kind: str, value: float | None) -> float | None:
    default = DEFAULT_THRESHOLD[kind]
    if value is None:
        return default
    if default is None:
        raise InvalidQuery(
            f"{kind} takes no threshold (k is the smallest cluster); leave it out", path="threshold"
        )
    high = 2.0 if kind == "duplicates" else 1.0
    if not 0.0 <= value <= high:
        meaning = "a cosine distance from 0 to 2" if kind == "duplicates" else "a score from 0 to 1"
        raise InvalidQuery(f"threshold is {meaning} for {kind}, not {value}", path="threshold")
    return float(value)


def _weights(kind: str, weights: list[float] | None, k: int) -> list[float] | None:
    if kind != "uniqueness":
        if weights is not None:
            raise InvalidQuery(f"weights are uniqueness's; {kind} takes none", path="weights")
        return None
    if weights is None:
        return list(UNIQUENESS_WEIGHTS[:k]) if k <= len(UNIQUENESS_WEIGHTS) else None
    if len(weights) != k:
        raise InvalidQuery(
            f"give one weight per neighbour: k is {k}, weights has {len(weights)}", path="weights"
        )
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise InvalidQuery("weights must be >= 0 with a positive sum", path="weights")
    return [float(w) for w in weights]


def _label_sets(catalog: Catalog, kind: str, body: SignalRequest, planned: Planned) -> None:
    from service.labels.store import LabelSetStore

    if kind != "label_issues":
        for name in ("ground_truth", "predictions"):
            if getattr(body, name) is not None:
                raise InvalidQuery(f"{name} is for label_issues; {kind} takes none", path=name)
        return
    if not body.ground_truth:
        raise InvalidQuery(
            "label_issues needs ground_truth: the name of a ground-truth label set whose labels to check "
            "(GET /api/v1/labelsets lists them)",
            path="ground_truth",
        )
    store = LabelSetStore(catalog.state)
    gt = store.get(body.ground_truth)
    _role_task(gt, "ground_truth", "ground_truth")
    planned.ground_truth, planned.classes = gt.name, len(gt.classes or [])
    if body.predictions:
        pred = store.get(body.predictions)
        _role_task(pred, "predictions", "predictions")
        planned.predictions = pred.name


def _role_task(row: Any, role: str, path: str) -> None:
    if row.role != role:
        raise InvalidQuery(f"label set {row.name!r} is {row.role}, not {role}", path=path)
    if row.task != "classification":
        raise InvalidQuery(
            f"label issues are checked on classification labels; {row.name!r} is {row.task}", path=path
        )


def begin(catalog: Catalog, kind: str, body: SignalRequest) -> JobRow:
    """Check, record the signal's row as queued, and queue its job (Conflict while one runs)."""
    planned = plan(catalog, kind, body)
    job = catalog.jobs.create(
        "signal", options={"planned": asdict(planned)}, lock_key=f"signal:{planned.row_id}"
    )
    # The row keeps its last run's parameters and counts until this run finishes.
    SignalStore(catalog.state).put(
        planned.row_id,
        kind=kind,
        filter=planned.filter,
        space=planned.space,
        state="queued",
        job_id=job.id,
        detail=None,
    )
    return job


def run_now(catalog: Catalog, kind: str, body: SignalRequest) -> JobRow:
    """Check and compute in this thread (the CLI without a server); the job row says how it went."""
    from service.jobs.runner import execute

    planned = plan(catalog, kind, body)
    job = catalog.jobs.create(
        "signal",
        options={"planned": asdict(planned)},
        lock_key=f"signal:{planned.row_id}",
        state="running",
        owner=catalog.owner,
    )
    SignalStore(catalog.state).put(
        planned.row_id, kind=kind, filter=planned.filter, space=planned.space, state="running", job_id=job.id
    )
    return execute(catalog, job)
