"""What a labeling function's run computes: the threshold, the held-out estimate, and the labels."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from service.index.base import VectorIndex
from service.labelfns import calibrate, propagate, rules
from service.labelfns.plan import Plan
from service.labelfns.vectors import read

Label = tuple[str, str, float, dict[str, float]]  # asset id, label, score, scores
Step = Callable[[str, float], None]  # what is happening, progress in [0, 1]


@dataclass(slots=True)
class Outcome:
    labels: list[Label] = field(default_factory=list)
    abstained: int = 0
    threshold: float | None = None
    estimate: calibrate.Estimate | None = None
    curve: list[dict[str, Any]] = field(default_factory=list)
    method: str | None = None

    def summary(self, truth: str | None) -> dict[str, Any]:
        est = self.estimate
        return {
            "labeled": len(self.labels),
            "abstained": self.abstained,
            "threshold": self.threshold,
            "estimated_precision": None if est is None else est.precision,
            "estimated_coverage": None if est is None else est.coverage,
            "estimated_from": None if est is None else truth,
            "estimated_on": 0 if est is None else est.on,
            "method": self.method,
            "curve": self.curve,
        }


def _calibrate(
    out: Outcome,
    plan: Plan,
    scores: np.ndarray,
    correct: np.ndarray,
    ids: list[str],
    bounds: tuple[float, float],
) -> None:
    target = plan.request.target_precision
    if target is not None:
        out.threshold = calibrate.choose(scores, correct, target=target)
        out.estimate = calibrate.held_out(scores, correct, calibrate.folds_of(ids), target=target)
        out.method = calibrate.METHOD
    else:
        out.threshold = plan.threshold
        out.estimate = calibrate.at_threshold(scores, correct, plan.threshold)
        out.method = "measured at the given threshold on the ground truth"
    out.curve = calibrate.curve(scores, correct, bounds=bounds)


def propagation(index: VectorIndex, plan: Plan, step: Step) -> Outcome:
    """Votes held out on the labelled assets choose the threshold; all labels vote on the rest."""
    gt = plan.request.propagate_from
    assert gt is not None
    k, space = plan.request.k, plan.space
    labelled, label_of = propagate.read_labelled(index, gt, plan.scope, space)
    among = propagate.labelled_filter(gt, plan.scope)
    step("reading", 0.05)
    calibrated = propagate.calibration_sample(labelled)
    n = max(1, len(calibrated.ids))
    oof = propagate.vote(
        index,
        calibrated,
        among=among,
        label_of=label_of,
        k=k,
        space=space,
        held_out=True,
        on_step=lambda i: step("calibrating", 0.05 + 0.25 * i / n),
    )
    truth = [label_of[i] for i in oof.ids]
    correct = np.array([p is not None and p == t for p, t in zip(oof.labels, truth, strict=True)])
    out = Outcome()
    _calibrate(out, plan, oof.shares, correct, oof.ids, (0.0, 1.0))
    rest = read(index, propagate.unlabelled_filter(gt, plan.scope), space)
    m = max(1, len(rest.ids))
    votes = propagate.vote(
        index,
        rest,
        among=among,
        label_of=label_of,
        k=k,
        space=space,
        on_step=lambda i: step("propagating", 0.3 + 0.6 * i / m),
    )
    t = out.threshold
    for asset, label, share, scores in zip(votes.ids, votes.labels, votes.shares, votes.scores, strict=True):
        if label is not None and t is not None and share >= t:
            out.labels.append((asset, label, float(share), scores))
    out.abstained = len(votes.ids) - len(out.labels)
    return out


def by_rules(index: VectorIndex, plan: Plan, step: Step) -> Outcome:
    """Rules calibrated (or only measured) on ground truth when there is one, then applied."""
    req, space = plan.request, plan.space
    out = Outcome(threshold=plan.threshold)
    if plan.truth is not None:
        within = propagate.labelled_filter(plan.truth, plan.scope)
        held, label_of = propagate.read_labelled(index, plan.truth, plan.scope, space)
        scored = rules.score(index, plan.rules, space=space, floor=None, within=within)
        ids = [i for i in held.ids if i not in plan.examples]  # an example proves nothing about itself
        scores = np.full(len(ids), -np.inf)
        correct = np.zeros(len(ids), dtype=bool)
        for n, asset in enumerate(ids):
            picked = rules.decide(scored[asset], margin=req.margin) if asset in scored else None
            if picked is not None:
                scores[n], correct[n] = picked[1], picked[0] == label_of[asset]
        finite = scores[np.isfinite(scores)]
        bounds = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
        _calibrate(out, plan, scores, correct, ids, bounds)
    step("calibrated", 0.3)
    t = out.threshold
    if t is None:
        return out
    total = sum(len(r.vectors) for r in plan.rules)
    scored = rules.score(
        index,
        plan.rules,
        space=space,
        floor=t - req.margin,
        on_search=lambda d: step("searching", 0.3 + 0.6 * d / max(1, total)),
    )
    for asset, per in scored.items():
        if max(per.values()) < t:
            continue
        picked = rules.decide(per, margin=req.margin)
        if picked is None:
            out.abstained += 1
        else:
            out.labels.append((asset, picked[0], picked[1], rules.unit_scores(per)))
    return out
