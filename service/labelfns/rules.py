"""Rules: each labels the assets most like its examples (or its text), abstaining on close calls.

A rule's score for an asset is its best score over the rule's examples: the cosine to the
closest example, which is what the index's recommend `best_score` ranks by with no negatives.
It is computed with one thresholded search per example (`score_threshold`, limit = the assets
under the rule's filter), so an asset far from every example is never read. Rules of one label
pool into that label's score (their maximum). An asset is labelled with the best label when its
score reaches the threshold and the runner-up label's score is at least `margin` below it;
closer than that, the two rules conflict and the function abstains on the asset.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from service.errors import InvalidQuery
from service.index.base import Filter, VectorIndex, VectorSpec

Scores = dict[str, dict[str, float]]  # asset id -> label -> score


@dataclass(frozen=True, slots=True)
class ScoredRule:
    label: str
    vectors: Sequence[np.ndarray]
    scope: Filter


def examples(index: VectorIndex, ids: Sequence[str], *, space: VectorSpec, path: str) -> list[np.ndarray]:
    """The example assets' vectors in `space`; a 422 naming the first unknown or vector-less id."""
    recs = {r.id: r for r in index.retrieve(list(ids), with_vectors=True, using=space.name)}
    for j, asset in enumerate(ids):
        rec = recs.get(asset)
        if rec is None:
            raise InvalidQuery(f"no asset with id {asset!r} in the catalog", path=f"{path}[{j}]")
        if rec.vector is None:
            raise InvalidQuery(
                f"asset {asset} has no vector in the space {space.name!r}", path=f"{path}[{j}]"
            )
    return [np.asarray(recs[a].vector, dtype=np.float32) for a in ids]


def score(
    index: VectorIndex,
    rules: Sequence[ScoredRule],
    *,
    space: VectorSpec,
    floor: float | None,
    within: Filter | None = None,
    on_search: Callable[[int], None] | None = None,
) -> Scores:
    """Each asset's best score per label over the rules (only scores >= `floor` are read)."""
    out: Scores = {}
    done = 0
    for rule in rules:
        flt = rule.scope if within is None else Filter(must=[rule.scope, within])
        limit = index.count(flt)
        if limit == 0:
            continue
        for vector in rule.vectors:
            hits = index.query(
                positive=[vector], filter=flt, limit=limit, score_threshold=floor, using=space.name
            )
            for h in hits:
                per = out.setdefault(h.id, {})
                if h.score > per.get(rule.label, -np.inf):
                    per[rule.label] = float(h.score)
            done += 1
            if on_search is not None:
                on_search(done)
    return out


def decide(per: dict[str, float], *, margin: float) -> tuple[str, float] | None:
    """The best label and its score, or None where the runner-up is within `margin` (a conflict)."""
    ranked = sorted(per.items(), key=lambda kv: -kv[1])
    if len(ranked) > 1 and ranked[0][1] - ranked[1][1] < margin:
        return None
    return ranked[0]


def unit_scores(per: dict[str, float]) -> dict[str, float]:
    """Scores as the label payload takes them: each label's cosine clipped to [0, 1]."""
    return {label: min(1.0, max(0.0, s)) for label, s in sorted(per.items())}
