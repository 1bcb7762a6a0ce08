"""Thresholds chosen for a target precision on ground truth, and estimates held out from the choice.

`choose` picks the lowest threshold (the most coverage) at which the assets scored at or above
it are right at least `target` of the time, over at least `MIN_LABELED` of them. `held_out`
estimates what that choice yields on data it did not see: the ground-truth assets are split
into `FOLDS` folds by a hash of their id; each fold is labelled at the threshold chosen on the
other folds, and the pooled precision and coverage of those held-out labels are the estimate.
The scores themselves must already be held out (for propagation, an asset's vote never counts
its own fold's labels: service/labelfns/propagate.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

FOLDS = 5
MIN_LABELED = 5  # a precision over fewer assets says little
CURVE_POINTS = 21
METHOD = f"{FOLDS}-fold cross-validation: each fold labelled at the threshold chosen on the others"


@dataclass(frozen=True, slots=True)
class Estimate:
    precision: float | None
    coverage: float
    on: int


def fold_of(asset_id: str) -> int:
    """A stable fold for an asset (the same on every run and every machine)."""
    return hashlib.blake2b(asset_id.encode(), digest_size=2).digest()[0] % FOLDS


def choose(scores: np.ndarray, correct: np.ndarray, *, target: float) -> float | None:
    """The lowest score threshold whose labels reach `target` precision; None when none does."""
    if len(scores) == 0:
        return None
    order = np.argsort(-scores, kind="stable")
    s, c = scores[order], correct[order].astype(np.float64)
    n = np.arange(1, len(s) + 1)
    precision = np.cumsum(c) / n
    # Only where the next score is lower: a threshold labels all the assets tied at it.
    boundary = np.append(s[:-1] > s[1:], True)
    ok = boundary & (n >= min(MIN_LABELED, len(s))) & (precision >= target - 1e-12)
    if not ok.any():
        return None
    return float(s[np.flatnonzero(ok)[-1]])


def measure(scores: np.ndarray, correct: np.ndarray, threshold: float | None) -> tuple[int, int]:
    """(labelled, right) at `threshold` (None labels nothing)."""
    if threshold is None:
        return 0, 0
    take = scores >= threshold
    return int(take.sum()), int(correct[take].sum())


def held_out(scores: np.ndarray, correct: np.ndarray, folds: np.ndarray, *, target: float) -> Estimate:
    """Precision and coverage of each fold labelled at the threshold the other folds chose."""
    labeled = right = 0
    for f in range(FOLDS):
        test = folds == f
        t = choose(scores[~test], correct[~test], target=target)
        got, ok = measure(scores[test], correct[test], t)
        labeled, right = labeled + got, right + ok
    return Estimate(
        precision=right / labeled if labeled else None, coverage=labeled / max(1, len(scores)), on=len(scores)
    )


def at_threshold(scores: np.ndarray, correct: np.ndarray, threshold: float) -> Estimate:
    """The estimate at a fixed threshold (nothing chosen, so nothing to hold out but the scores)."""
    got, ok = measure(scores, correct, threshold)
    return Estimate(precision=ok / got if got else None, coverage=got / max(1, len(scores)), on=len(scores))


def curve(
    scores: np.ndarray, correct: np.ndarray, *, bounds: tuple[float, float]
) -> list[dict[str, float | int | None]]:
    """Precision and coverage against threshold, `CURVE_POINTS` thresholds across `bounds`."""
    out: list[dict[str, float | int | None]] = []
    for t in np.linspace(bounds[0], bounds[1], CURVE_POINTS):
        got, ok = measure(scores, correct, float(t))
        out.append(
            {
                "threshold": round(float(t), 6),
                "precision": ok / got if got else None,
                "coverage": got / max(1, len(scores)),
                "labeled": got,
            }
        )
    return out


def folds_of(ids: Sequence[str]) -> np.ndarray:
    return np.fromiter((fold_of(i) for i in ids), dtype=np.int64, count=len(ids))
