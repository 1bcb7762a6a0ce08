"""Reading assets and their vectors in one space, page by page, and one neighbour search each."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from service.index.base import Distance, Filter, Hit, VectorIndex, VectorSpec
from service.index.filters import only_present, parse_filter

PAGE = 1024


@dataclass(slots=True)
class Assets:
    ids: list[str]
    vectors: np.ndarray  # (n, dim) float32
    payloads: list[dict[str, Any]]


def scope(*parts: dict[str, Any] | None) -> Filter:
    """Ready assets under all of `parts` (JSON filters) as one parsed filter."""
    given = [p for p in parts if p]
    raw: dict[str, Any] = {"and": given} if given else {}
    return parse_filter(only_present(raw)) or Filter()


def read(
    index: VectorIndex,
    flt: Filter,
    space: VectorSpec,
    *,
    fields: Sequence[str] = (),
    on_page: Callable[[int], None] | None = None,
) -> Assets:
    """Every asset under `flt` that has a vector in `space`, with the payload roots `fields`."""
    ids: list[str] = []
    rows: list[np.ndarray] = []
    payloads: list[dict[str, Any]] = []
    for recs in _pages(index, flt, space, fields):
        for r in recs:
            vec = r.vectors.get(space.name) if r.vectors else None
            if vec is None:
                vec = r.vector
            if vec is None:
                continue
            ids.append(r.id)
            rows.append(np.asarray(vec, dtype=np.float32))
            payloads.append(r.payload)
        if on_page is not None:
            on_page(len(ids))
    vectors = np.stack(rows) if rows else np.zeros((0, space.dim), dtype=np.float32)
    return Assets(ids=ids, vectors=vectors, payloads=payloads)


def _pages(index: VectorIndex, flt: Filter, space: VectorSpec, fields: Sequence[str]) -> Iterator[list[Any]]:
    cursor: str | None = None
    while True:
        recs, cursor = index.scroll(
            filter=flt,
            limit=PAGE,
            cursor=cursor,
            fields=list(fields) or ["source"],
            with_vectors=[space.name],
        )
        yield recs
        if cursor is None:
            return


def neighbours(
    index: VectorIndex, vectors: np.ndarray, *, among: Filter, k: int, space: VectorSpec
) -> list[list[Hit]]:
    """The `k` nearest assets under `among` to each of `vectors` (the index's search).

    One batch query of the engine where the index offers it (`neighbours`, the batched helper
    the signals use), else one search per vector.
    """
    batch = getattr(index, "neighbours", None)
    if batch is not None:
        return list(batch(list(vectors), k=k, filter=among, using=space.name))
    return [
        [
            Hit(id=h.id, score=h.score)
            for h in index.query(positive=[v], filter=among, limit=k, using=space.name)
        ]
        for v in vectors
    ]


def similarity(score: float, distance: Distance) -> float:
    """A vote weight >= 0 from a search score: cosine/dot clipped at 0, euclid as 1 / (1 + d)."""
    if distance == Distance.euclid:
        return 1.0 / (1.0 + max(0.0, score))
    return max(0.0, score)
