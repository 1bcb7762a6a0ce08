"""A selection request checked against the catalog: the candidate pool, the seeds, each strategy.

`plan()` refuses, before anything is written, what cannot run: an unknown set or one of the
wrong role, uncertainty on a set that has no scores, a balance or weight field no candidate
has, a `similar` with no example, a filter that matches nothing (or only assets excluded as
labelled, selected or exported, which the detail says and how to include them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from service.errors import InvalidQuery
from service.index.base import FieldType, VectorSpec
from service.index.filters import field_key, only_present, parse_filter
from service.index.spaces import resolve_space
from service.labels.store import LabelSetStore
from service.selections.schemas import (
    BalanceStrategy,
    DiversityStrategy,
    FieldStrategy,
    SelectionRequest,
    SimilarStrategy,
    UncertaintyStrategy,
)

if TYPE_CHECKING:
    from service.catalog.catalog import Catalog

_NUMERIC = (FieldType.integer, FieldType.float)
# A batch chosen by uncertainty without a diversity strategy is spread within itself: after the
# first (most uncertain) pick, each candidate's weight is multiplied by (d / d_max) ** BATCH_SPREAD,
# d its distance to the batch's earlier picks (not to what is labelled). Top-N by entropy alone
# was worse than random on the 30-class shapes (the N sit in the one region the model knows
# least); spread at 0.5, every measure beat both random and its own top-N on shapes and digits
# (benchmarks/bench_active_learning.py, RESULTS.md). `{"kind": "diversity", "strength": 0}`
# turns it off: the batch is then the exact top N.
BATCH_SPREAD = 0.5


@dataclass
class Weight:
    """One objective multiplied into each candidate's weight: a payload path read per asset."""

    path: str  # payload path, e.g. labels.pred.margin
    strength: float
    invert: bool = False  # margin: a small value is the uncertain one
    normalise: bool = True  # min-max over the pool (uncertainty is already in [0, 1])


@dataclass
class Plan:
    """What the selection job runs: validated filters and per-strategy parameters."""

    name: str
    budget: int
    pool: dict[str, Any]  # the candidates, as a filter
    seeds: dict[str, Any] | None  # labelled / already chosen assets under the filter
    space: VectorSpec
    # The pool's two parts, when it is `base` but not `excluded`: the pool read can then take
    # the usually few excluded assets out of the whole index instead of scrolling the rest.
    base: dict[str, Any] | None = None
    excluded: dict[str, Any] | None = None
    weights: list[Weight] = field(default_factory=list)
    diversity: float | None = None  # its strength, when asked
    spread: float | None = None  # an uncertainty batch's spread (BATCH_SPREAD); None beside diversity
    balance: BalanceStrategy | None = None
    balance_path: str | None = None
    similar: list[tuple[np.ndarray, float]] = field(default_factory=list)  # (query vector, strength)

    @property
    def needs_vectors(self) -> bool:
        return self.diversity is not None or self.spread is not None or bool(self.similar)


def plan(catalog: Catalog, request: SelectionRequest) -> Plan:
    """The request checked (see the module docstring); a 4xx naming the field otherwise."""
    index = catalog.index
    base = only_present(request.filter)
    parse_filter(request.filter)  # a malformed filter is a 422 naming its path, now
    space = resolve_space(index, request.space)
    excluded, why = _exclusions(catalog, request)
    pool = {"and": [base, {"not": {"or": excluded}}]} if excluded else base
    out = Plan(
        name=request.name,
        budget=request.budget,
        pool=pool,
        seeds={"and": [base, {"or": excluded}]} if excluded else None,
        space=space,
        base=base,
        excluded={"or": excluded} if excluded else None,
    )
    kinds = [s.kind for s in request.strategies]
    for once in ("diversity", "balance"):
        if kinds.count(once) > 1:
            raise InvalidQuery(f"give at most one {once} strategy", path=f"strategies[{kinds.index(once)}]")
    for i, strategy in enumerate(request.strategies):
        at = f"strategies[{i}]"
        if isinstance(strategy, UncertaintyStrategy):
            out.weights.append(_uncertainty(catalog, strategy, at=at, pool=pool))
        elif isinstance(strategy, DiversityStrategy):
            out.diversity = strategy.strength
        elif isinstance(strategy, BalanceStrategy):
            out.balance, out.balance_path = strategy, _present(catalog, strategy.field, at=at, pool=pool)
            if isinstance(strategy.target, dict) and (
                not strategy.target
                or any(v < 0 for v in strategy.target.values())
                or not sum(strategy.target.values())
            ):
                raise InvalidQuery("target shares must be >= 0 with a positive sum", path=f"{at}.target")
        elif isinstance(strategy, FieldStrategy):
            path = _present(catalog, strategy.field, at=at, pool=pool)
            kind = index.indexed_fields().get(path)
            if kind is not None and kind not in _NUMERIC:
                raise InvalidQuery(
                    f"{strategy.field!r} is a {kind} field; a weight needs a numeric field",
                    path=f"{at}.field",
                )
            out.weights.append(Weight(path=path, strength=strategy.strength))
        elif isinstance(strategy, SimilarStrategy):
            out.similar.append((_query_vector(catalog, strategy, space=space, at=at), strategy.strength))
    if request.budget > 1 and "uncertainty" in kinds and "diversity" not in kinds:
        out.spread = BATCH_SPREAD
    if catalog.index.count(parse_filter(pool)) == 0:
        if catalog.index.count(parse_filter(base)) == 0:
            raise InvalidQuery(
                "the filter matches no asset; loosen it (GET /api/v1/assets?filter=...)", path="filter"
            )
        raise InvalidQuery(
            f"every asset the filter matches is {why}; nothing is left to choose", path="filter"
        )
    return out


def _exclusions(catalog: Catalog, request: SelectionRequest) -> tuple[list[dict[str, Any]], str]:
    """The filters of what is not chosen again (labelled, selected, exported), and their wording."""
    out: list[dict[str, Any]] = []
    why: list[str] = []
    if request.exclude_labeled is not None:
        gt = LabelSetStore(catalog.state).get(request.exclude_labeled)
        if gt.role != "ground_truth":
            raise InvalidQuery(
                f"label set {gt.name!r} is {gt.role}; exclude_labeled names a ground-truth set",
                path="exclude_labeled",
            )
        leaf = "label" if gt.task == "classification" else "count"
        out.append({f"labels.{gt.name}.{leaf}": {"exists": True}})
        why.append(f"labelled in {gt.name!r}")
    if not request.include_selected:
        out.append({"selections": {"exists": True}})
        why.append("in an earlier selection (set include_selected)")
    if not request.include_exported:
        # An export entry always has its id: that key is indexed (the `exports` list of objects is
        # not, and an `exists` on it read every payload of the index).
        out.append({"exports.export_id": {"exists": True}})
        why.append("already exported (set include_exported)")
    return out, " or ".join(why)


def _uncertainty(catalog: Catalog, s: UncertaintyStrategy, *, at: str, pool: dict[str, Any]) -> Weight:
    pred = LabelSetStore(catalog.state).get(s.predictions)
    if pred.role != "predictions":
        raise InvalidQuery(
            f"label set {pred.name!r} is {pred.role}; uncertainty needs a predictions set (a model run)",
            path=f"{at}.predictions",
        )
    path = f"labels.{pred.name}.{s.measure}"
    if catalog.index.count(parse_filter({"and": [pool, {path: {"exists": True}}]})) == 0:
        raise InvalidQuery(
            f"no candidate has a {s.measure} from {pred.name!r}: import its predictions with class "
            "probabilities (`scores`) or a `score`",
            path=f"{at}.predictions",
        )
    return Weight(path=path, strength=s.strength, invert=s.measure == "margin", normalise=False)


def _present(catalog: Catalog, name: str, *, at: str, pool: dict[str, Any]) -> str:
    path = field_key(name, path=f"{at}.field")
    if catalog.index.count(parse_filter({"and": [pool, {path: {"exists": True}}]})) == 0:
        raise InvalidQuery(
            f"no candidate has a field {name!r} (payload path {path}); GET /api/v1/fields lists the fields",
            path=f"{at}.field",
        )
    return path


def _query_vector(catalog: Catalog, s: SimilarStrategy, *, space: VectorSpec, at: str) -> np.ndarray:
    if not s.like and not (s.text and s.text.strip()):
        raise InvalidQuery("a similar strategy needs `like` (asset ids) or `text`", path=at)
    vectors: list[np.ndarray] = []
    if s.text and s.text.strip():
        if space.name != catalog.index.vector_name:
            raise InvalidQuery(
                f"text is embedded in the encoder's space, not {space.name!r}; use `like`", path=f"{at}.text"
            )
        vectors.append(np.asarray(catalog.encoder.encode_text(s.text), dtype=np.float32))
    if s.like:
        recs = {r.id: r for r in catalog.index.retrieve(list(s.like), with_vectors=True, using=space.name)}
        for n, asset_id in enumerate(s.like):
            rec = recs.get(asset_id)
            if rec is None or rec.vector is None:
                raise InvalidQuery(
                    f"no asset {asset_id!r} with a vector in {space.name!r}", path=f"{at}.like[{n}]"
                )
            vectors.append(np.asarray(rec.vector, dtype=np.float32))
    # The mean of the examples, as the index's recommend search scores several positives.
    mean = np.mean([v / max(float(np.linalg.norm(v)), 1e-12) for v in vectors], axis=0)
    return (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)
