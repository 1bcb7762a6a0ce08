"""A labeling function's request checked against the catalog before anything is written.

Refused (4xx naming the field): rules and propagation together or neither, a rule with no
examples and no text, an unknown example id, a text outside the encoder's space, a target
precision outside (0, 1], both a threshold and a target, writing into a ground-truth or
detection set, labels outside the `into` set's declared classes, propagation from a set that is
not ground truth, has fewer than two classes or no labelled asset under the filter, and a
target precision for rules with no ground truth to measure it on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from service.errors import InvalidQuery, LabelSetNotFound
from service.index.base import Distance, Filter, VectorSpec
from service.index.filters import parse_filter
from service.index.spaces import is_encoder_space, resolve_space
from service.labelfns import propagate, rules
from service.labelfns.schemas import DEFAULT_RULE_THRESHOLD, DEFAULT_VOTE_THRESHOLD, LabelingFunctionCreate
from service.labelfns.vectors import scope
from service.labels.store import LabelSetStore
from service.state import LabelSetRow

if TYPE_CHECKING:
    from service.catalog.catalog import Catalog


@dataclass(slots=True)
class Plan:
    request: LabelingFunctionCreate
    space: VectorSpec
    scope: Filter
    into: LabelSetRow | None
    truth: str | None  # the ground-truth set to calibrate or estimate on
    rules: list[rules.ScoredRule] = field(default_factory=list)
    examples: set[str] = field(default_factory=set)

    @property
    def threshold(self) -> float:
        if self.request.threshold is not None:
            return self.request.threshold
        return DEFAULT_VOTE_THRESHOLD if self.request.propagate_from else DEFAULT_RULE_THRESHOLD


def check(catalog: Catalog, req: LabelingFunctionCreate) -> Plan:
    """The checked plan of `req`; InvalidQuery (422) naming the field otherwise."""
    if (req.rules is None) == (req.propagate_from is None):
        raise InvalidQuery("give either `rules` or `propagate_from`, not both and not neither", path="rules")
    if req.target_precision is not None and not 0.0 < req.target_precision <= 1.0:
        raise InvalidQuery(f"a precision is in (0, 1], got {req.target_precision}", path="target_precision")
    if req.target_precision is not None and req.threshold is not None:
        raise InvalidQuery(
            "give a `threshold` or a `target_precision` to choose one, not both", path="threshold"
        )
    space = resolve_space(catalog.index, req.space, path="space")
    parse_filter(req.filter)
    sets = LabelSetStore(catalog.state)
    into = sets.find(req.into)
    if into is not None and into.role != "predictions":
        raise InvalidQuery(
            f"label set {req.into!r} is {into.role}: a labeling function writes into a predictions set; "
            "name a new set (it is created) or a predictions set",
            path="into",
        )
    if into is not None and into.task != "classification":
        raise InvalidQuery(
            f"label set {req.into!r} is a {into.task} set; name a classification set", path="into"
        )
    base = scope(req.filter)
    plan = Plan(request=req, space=space, scope=base, into=into, truth=req.propagate_from or req.ground_truth)
    if req.rules is not None:
        _check_rules(catalog, plan)
    else:
        _check_propagation(catalog, plan)
    return plan


def _truth_set(catalog: Catalog, name: str, *, path: str, into: str) -> LabelSetRow:
    if name == into:
        raise InvalidQuery("the set labelled from cannot be the set written into", path=path)
    try:
        row = LabelSetStore(catalog.state).get(name)
    except LabelSetNotFound as exc:
        raise InvalidQuery(exc.detail, path=path) from None
    if row.role != "ground_truth" or row.task != "classification":
        raise InvalidQuery(
            f"label set {name!r} is a {row.role} {row.task} set; name a ground-truth classification set",
            path=path,
        )
    return row


def _check_rules(catalog: Catalog, plan: Plan) -> None:
    req = plan.request
    assert req.rules is not None
    if not req.rules:
        raise InvalidQuery("give at least one rule", path="rules")
    if plan.space.distance == Distance.euclid:
        raise InvalidQuery(
            f"rules score by similarity; space {plan.space.name!r} measures euclidean distance", path="space"
        )
    declared = set(plan.into.classes or []) if plan.into is not None and plan.into.classes_declared else None
    for i, rule in enumerate(req.rules):
        where = f"rules[{i}]"
        if not rule.like and not (rule.text and rule.text.strip()):
            raise InvalidQuery("a rule needs example assets (`like`) or a `text`", path=where)
        if declared is not None and rule.label not in declared:
            raise InvalidQuery(
                f"label {rule.label!r} is not a class of set {req.into!r} ({', '.join(sorted(declared))})",
                path=f"{where}.label",
            )
        vectors: list[np.ndarray] = []
        if rule.like:
            vectors += rules.examples(catalog.index, rule.like, space=plan.space, path=f"{where}.like")
            plan.examples.update(rule.like)
        if rule.text and rule.text.strip():
            if not is_encoder_space(catalog.index, plan.space):
                raise InvalidQuery(
                    f"a text can only be matched in the encoder's space, not {plan.space.name!r}; use `like`",
                    path=f"{where}.text",
                )
            vectors.append(catalog.encoder.encode_text(rule.text))
        parse_filter(rule.filter, path=f"{where}.filter")
        plan.rules.append(
            rules.ScoredRule(label=rule.label, vectors=vectors, scope=scope(req.filter, rule.filter))
        )
    if req.ground_truth is not None:
        _truth_set(catalog, req.ground_truth, path="ground_truth", into=req.into)
    elif req.target_precision is not None:
        raise InvalidQuery(
            "a target precision is reached on ground truth: name a ground-truth set as `ground_truth`, "
            "or give a `threshold`",
            path="ground_truth",
        )


def _check_propagation(catalog: Catalog, plan: Plan) -> None:
    req = plan.request
    assert req.propagate_from is not None
    if req.ground_truth not in (None, req.propagate_from):
        raise InvalidQuery("propagation is calibrated on the set it propagates from", path="ground_truth")
    gt = _truth_set(catalog, req.propagate_from, path="propagate_from", into=req.into)
    labelled = propagate.labelled_filter(gt.name, plan.scope)
    if catalog.index.count(labelled) == 0:
        raise InvalidQuery(
            f"no asset under the filter carries a label of {gt.name!r}: there are no labelled neighbours "
            "to propagate from",
            path="propagate_from",
        )
    classes = catalog.index.facet(f"labels.{gt.name}.label", filter=labelled, limit=3)
    if len(classes) < 2:
        raise InvalidQuery(
            f"set {gt.name!r} has {len(classes)} class under the filter; propagation needs at least two",
            path="propagate_from",
        )


def definition(req: LabelingFunctionCreate) -> dict[str, Any]:
    return req.model_dump(mode="json", exclude_none=True)
