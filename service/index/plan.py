"""What both backends decide the same way: payload paths, exact-or-HNSW plans, recommend scores.

Exact or HNSW. Qdrant's filtered HNSW search walks only graph links between
points that pass the filter. Payload indexes add links per indexed value, so a
single-field filter keeps its recall, but an AND of two fields can strand the
walk (measured here at 100k: recall@10 0.54 for a 6.6 % two-field filter). So:

* no filter: HNSW with `hnsw_ef` (at least the number of results wanted);
* a filter whose estimated cardinality (a `count` estimate, cheap with payload
  indexes) is below `exact_below`: exact scan of the matching points, which the
  payload index enumerates, so its cost grows with the matches, not the collection;
* otherwise HNSW; when the filter keeps under `ACORN_BELOW` of the points, with a
  doubled ef and, when two or more of its ANDed parts are selective, ACORN (a
  neighbours-of-neighbours walk that repairs the stranded graph; measured at 100k it
  cost 45 ms where plain HNSW took 1.3 ms, so it is kept for the filters that need it);
* a filter on an unindexed field cannot be estimated (Qdrant guesses half the
  collection), so it is planned from the collection size alone.

Recommend. `best_score` ranks a candidate by its closest positive unless a
negative is closer, so several unlike positives ("a cyclist at night" and "a
cyclist in rain") each pull their own neighbours in, where `average_vector`
would search the empty space between them, and a negative removes what is more
like it than like any positive rather than shifting the whole query. Run as one
graph walk it strands in one positive's region (measured at 100k: recall@10
0.75 at ef 128, 0.94 at ef 1024); so each positive prefetches its
`recommend_pool` nearest points (same filter and plan) and best_score reranks
their union (recall 1.0). A candidate in the true top k is among the pool of its
closest positive unless more than pool - k points nearer that positive are
nearer a negative too.

Recommend scores. `best_score` ranks a candidate by its cosine to the closest
positive when that beats its cosine to every negative, and below all those
otherwise; Qdrant reports it as `sigmoid(cos)` or `-sigmoid(cos_neg)` with
`sigmoid(x) = (x / (1 + |x|) + 1) / 2`. Loupe reports plain cosines instead (and
`-2 - cos_neg` for candidates closer to a negative, always below -1), so a
`score_threshold` means the same for a search and a recommendation.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterator
from dataclasses import dataclass

from service.config import IndexSettings
from service.index.base import Condition, Distance, Filter, HasVector

ACORN_BELOW = 0.4  # Qdrant's own default for ACORN's max_selectivity
RECOMMEND_POOL = 64
# Payload roots that hold lists of objects: Qdrant walks into them only with `[]`.
ARRAY_ROOTS = ("exports",)


@dataclass(frozen=True, slots=True)
class SearchPlan:
    exact: bool = False
    hnsw_ef: int | None = None
    acorn: bool = False


def plan_search(
    filter: Filter | None,
    *,
    estimate: Callable[[Filter], int],
    indexed: Container[str],
    total: int,
    want: int,
    settings: IndexSettings,
) -> SearchPlan:
    """Choose exact or HNSW search (see the module docstring).

    Args:
        estimate: the backend's cardinality estimate of a filter (a cheap `count`).
        indexed: payload keys with an index; filters on others cannot be estimated.
        total: points in the collection.
        want: results the caller needs (limit + offset).
    """
    ef = max(settings.hnsw_ef, want)
    if filter is None:
        return SearchPlan(hnsw_ef=ef)
    known = all(key in indexed for key in filter_keys(filter))
    bound = min(estimate(filter), total) if known else total
    if bound < settings.exact_below:
        return SearchPlan(exact=True)
    if known and bound >= ACORN_BELOW * total:
        return SearchPlan(hnsw_ef=ef)
    # One selective indexed field keeps its recall through the graph's per-value links
    # (a catalog search adds `status = ok`, which selects nothing); two need ACORN.
    selective = [part for part in _conjuncts(filter) if not known or estimate(part) < ACORN_BELOW * total]
    return SearchPlan(hnsw_ef=2 * ef, acorn=len(selective) > 1 or not known)


def _conjuncts(node: Filter | Condition | HasVector) -> Iterator[Filter]:
    """The parts a filter ANDs together, each as a filter of its own."""
    if isinstance(node, Condition | HasVector):
        yield Filter(must=[node])
    elif node.should:
        yield node
    else:
        for part in node.must:
            yield from _conjuncts(part)
        for part in node.must_not:
            yield Filter(must_not=[part])


def recommend_pool(want: int) -> int:
    """Nearest neighbours each recommend positive contributes to the rerank."""
    return max(RECOMMEND_POOL, 4 * want)


def filter_keys(node: Filter | Condition | HasVector | None) -> Iterator[str]:
    """Every payload key a filter reads (a HasVector reads none)."""
    if node is None or isinstance(node, HasVector):
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


def score_from_best_score(score: float, distance: Distance) -> float:
    """A `best_score` recommend score on the scale of a plain search in that space.

    Qdrant ranks by similarity (for euclid: minus the distance) through the same sigmoid, so
    the logit gives it back: a cosine or a dot product; under euclid the distance to the
    closest positive, as a plain euclid search reports it (candidates closer to a negative
    are reported as `2 - distance to it`, in Qdrant's order).
    """
    similarity = cosine_from_best_score(score)
    return -similarity if distance is Distance.euclid else similarity
