"""The scores of the kNN signals, from a neighbour graph's distances: pure numpy, one function each.

Normalisation (so that a threshold means the same in every catalog): each raw distance
score d is divided by the median of the same score over the assets scored (the
catalog's, or the filter's, typical kNN distance), r = d / median, and mapped into
[0, 1) by a fixed monotone function of r alone. So 0.5 always means "as far from its
neighbours as the median asset" for uniqueness and typicality, whatever the encoder's
or the catalog's scale:

- uniqueness = r / (1 + r), d = the weighted mean distance to the k nearest
  (FiftyOne Brain's published method uses k = 3 with weights 0.6, 0.3, 0.1; those are the
  defaults here, and both are parameters).
- outlier = 1 - exp(-r), d = the mean distance to the k nearest (k = 10): cleanlab's
  published kNN outlier score is exp(-d / median) with lower = more of an outlier; this is
  its complement, so higher = more of an outlier (the median asset scores 1 - 1/e = 0.63).
- typicality = 1 / (1 + r), d = the mean distance to the k nearest: the inverse of the
  mean kNN distance, normalised (the median asset scores 0.5).
- label_issue: see `label_issue`.

The median used is stored with the signal's row, so an incremental recompute scores new
assets on the same scale as the old ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

UNIQUENESS_WEIGHTS = (0.6, 0.3, 0.1)


def weighted_distance(dist: np.ndarray, weights: Sequence[float] | None = None) -> np.ndarray:
    """Each row's weighted mean over its k nearest distances; missing neighbours (inf) are skipped.

    Without weights every neighbour counts the same. Weights are renormalised over the
    neighbours a row has, so an asset with fewer than k others is not penalised.
    """
    k = dist.shape[1]
    w = np.ones(k, dtype=np.float64) if weights is None else np.asarray(weights, dtype=np.float64)[:k]
    if w.shape[0] < k:
        w = np.concatenate([w, np.zeros(k - w.shape[0])])
    finite = np.isfinite(dist)
    ww = np.where(finite, w[None, :], 0.0)
    total = ww.sum(axis=1)
    d = np.where(finite, dist, 0.0) * ww
    with np.errstate(invalid="ignore", divide="ignore"):
        out = d.sum(axis=1) / total
    return np.where(total > 0, out, np.nan)


def typical(raw: np.ndarray) -> float:
    """The median of the finite raw scores (the normaliser); 1.0 when none is positive."""
    finite = raw[np.isfinite(raw)]
    med = float(np.median(finite)) if finite.size else 0.0
    return med if med > 0 else 1.0


def uniqueness(raw: np.ndarray, median: float) -> np.ndarray:
    r = _ratio(raw, median)
    with np.errstate(invalid="ignore"):
        return np.where(np.isinf(r), 1.0, r / (1.0 + r))


def outlier(raw: np.ndarray, median: float) -> np.ndarray:
    return 1.0 - np.exp(-_ratio(raw, median))


def typicality(raw: np.ndarray, median: float) -> np.ndarray:
    return 1.0 / (1.0 + _ratio(raw, median))


def _ratio(raw: np.ndarray, median: float) -> np.ndarray:
    # An asset with no neighbour at all is as unusual as can be: r = inf -> 1 (or 0 for typicality).
    return np.where(np.isfinite(raw), np.maximum(raw, 0.0) / median, np.inf)


def neighbour_vote(
    labels: Sequence[str | None], idx: np.ndarray, dist: np.ndarray, median: float
) -> np.ndarray:
    """The weighted share of each asset's labelled neighbours that carry its own label.

    Weights exp(-d / median) count near neighbours more than far ones, on the catalog's
    scale; an asset with no labelled neighbour gets NaN (no evidence either way).
    """
    n, k = idx.shape
    own = np.asarray([lab if lab is not None else "" for lab in labels], dtype=object)
    agree = np.zeros(n, dtype=np.float64)
    total = np.zeros(n, dtype=np.float64)
    for j in range(k):
        col = idx[:, j]
        placed = col >= 0
        w = np.where(placed & np.isfinite(dist[:, j]), np.exp(-dist[:, j] / median), 0.0)
        theirs = np.where(placed, own[np.where(placed, col, 0)], "")
        has = theirs != ""
        total += np.where(has, w, 0.0)
        agree += np.where(has & (theirs == own), w, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = agree / total
    return np.where(total > 0, share, np.nan)


def self_confidence(label: str, prediction: Mapping[str, object] | None, n_classes: int) -> float | None:
    """The model's probability of the given label (cleanlab's self-confidence), or None without one.

    From `scores` when the prediction has them; from `label` + `score` otherwise: the score
    when the predicted label is the given one, else the rest of the mass spread evenly over
    the other classes.
    """
    if not prediction:
        return None
    scores = prediction.get("scores")
    if isinstance(scores, Mapping) and scores:
        total = sum(float(v) for v in scores.values() if isinstance(v, int | float))  # type: ignore[arg-type]
        p = scores.get(label, 0.0)
        return float(p) / total if total > 0 and isinstance(p, int | float) else 0.0  # type: ignore[arg-type]
    predicted, score = prediction.get("label"), prediction.get("score")
    if predicted is None:
        return None
    s = float(score) if isinstance(score, int | float) else 1.0
    if predicted == label:
        return s
    return (1.0 - s) / max(1, n_classes - 1)


def label_issue(vote: np.ndarray, confidence: Sequence[float | None] | None = None) -> np.ndarray:
    """How likely each given label is wrong, in [0, 1]: 1 - the evidence for it.

    The evidence is the neighbour vote for the label (`neighbour_vote`), averaged with the
    model's self-confidence in it where a predictions set is given. Both are probabilities
    of the given label, so the score needs no further normalisation: 0.5 means "the
    evidence is even", whatever the catalog.
    """
    evidence = np.where(np.isnan(vote), 0.5, vote)
    if confidence is not None:
        conf = np.asarray([np.nan if c is None else c for c in confidence], dtype=np.float64)
        both = ~np.isnan(conf) & ~np.isnan(vote)
        only_model = ~np.isnan(conf) & np.isnan(vote)
        evidence = np.where(both, (evidence + conf) / 2, evidence)
        evidence = np.where(only_model, conf, evidence)
    return np.clip(1.0 - evidence, 0.0, 1.0)
