"""What both backends decide the same way: payload paths, exact-or-HNSW plans, recommend scores.

Exact or HNSW. Qdrant's filtered HNSW search walks only graph links between
points that pass the filter. Payload indexes add links per indexed value, so a
single-field filter keeps its recall, but an AND of two fields can strand the
walk (measured here at 100k: recall@10 0.54 for a 6.6 % two-field filter). So:

* no filter: HNSW with `hnsw_ef` (at least the number of results wanted);
* a filter whose estimated cardinality (a `count` estimate, cheap with payload
  indexes) is below `exact_below`: exact scan of the matching points, which the
  payload index enumerates, so its cost grows with the matches, not the collection;
* otherwise HNSW, with ACORN (a neighbours-of-neighbours walk that repairs the
  stranded graph) and a doubled ef when the filter keeps under `ACORN_BELOW` of the points;
* a filter on an unindexed field cannot be estimated (Qdrant guesses half the
  collection), so it is planned from the collection size alone.

Recommend scores. `best_score` ranks a candidate by its cosine to the closest
positive when that beats its cosine to every negative, and below all those
otherwise; Qdrant reports it as `sigmoid(cos)` or `-sigmoid(cos_neg)` with
`sigmoid(x) = (x / (1 + |x|) + 1) / 2`. Loupe reports plain cosines instead (and
`-2 - cos_neg` for candidates closer to a negative, always below -1), so a
`score_threshold` means the same for a search and a recommendation.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from service.config import IndexSettings
from service.index.base import Condition, Filter

ACORN_BELOW = 0.4  # Qdrant's own default for ACORN's max_selectivity
# Payload roots that hold lists of objects: Qdrant walks into them only with `[]`.
ARRAY_ROOTS = ("exports",)


@dataclass(frozen=True, slots=True)
class SearchPlan:
    exact: bool = False
    hnsw_ef: int | None = None
    acorn: bool = False


def plan_search(
    *, filtered: bool, estimate: int | None, total: int, want: int, settings: IndexSettings
) -> SearchPlan:
    """Choose exact or HNSW search (see the module docstring).

    Args:
        filtered: whether the query has a filter.
        estimate: the filter's estimated cardinality, None when it cannot be estimated.
        total: points in the collection.
        want: results the caller needs (limit + offset).
    """
    ef = max(settings.hnsw_ef, want)
    if not filtered:
        return SearchPlan(hnsw_ef=ef)
    bound = total if estimate is None else min(estimate, total)
    if bound < settings.exact_below:
        return SearchPlan(exact=True)
    if estimate is None or bound < ACORN_BELOW * total:
        return SearchPlan(hnsw_ef=2 * ef, acorn=True)
    return SearchPlan(hnsw_ef=ef)


def filter_keys(node: Filter | Condition | None) -> Iterator[str]:
    """Every payload key a filter reads."""
    if node is None:
        return
    if isinstance(node, Condition):
        yield node.key
        return
    for part in (*node.must, *node.should, *node.must_not):
        yield from filter_keys(part)


def qdrant_key(key: str) -> str:
    """Loupe's payload path as Qdrant spells it (`exports.target` -> `exports[].target`)."""
    root, dot, rest = key.partition(".")
    if dot and root in ARRAY_ROOTS:
        return f"{root}[].{rest}"
    return key


def loupe_key(key: str) -> str:
    """The inverse of `qdrant_key`."""
    root, sep, rest = key.partition("[].")
    return f"{root}.{rest}" if sep and root in ARRAY_ROOTS else key


def _sigmoid(x: float) -> float:
    return 0.5 * (x / (1.0 + abs(x)) + 1.0)


def _logit(s: float) -> float:
    y = min(max(2.0 * s - 1.0, -0.999999), 0.999999)
    return y / (1.0 - abs(y))


def cosine_from_best_score(score: float) -> float:
    """A `best_score` recommend score as Loupe reports it (see the module docstring)."""
    if score > 0:
        return _logit(score)
    return -2.0 - _logit(-score)


def best_score_threshold(threshold: float) -> float:
    """A Loupe score threshold on Qdrant's `best_score` scale."""
    if threshold >= -1.0:
        return _sigmoid(min(threshold, 1.0))
    return -_sigmoid(min(-2.0 - threshold, 1.0))
