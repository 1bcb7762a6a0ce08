"""The embedded index: Qdrant's engine in process (qdrant-edge), one shard under the Loupe home.

`EdgeStore` (edge_store.py) owns the directory, its lock and the live shard, and
builds the HNSW graph without stopping searches; this module speaks Loupe's
index interface on top: points, filters, queries and their exact-or-HNSW plan.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as qe

from service.config import IndexSettings
from service.errors import InvalidConfig, InvalidQuery
from service.index.base import (
    BUILTIN_FIELDS,
    Condition,
    Distance,
    FacetCount,
    FieldType,
    Filter,
    HasVector,
    Hit,
    Point,
    Record,
    VectorSpec,
    write_in_runs,
)
from service.index.edge_store import EdgeStore, edge_errors, stored_vector_params
from service.index.plan import (
    SearchPlan,
    best_score_threshold,
    loupe_key,
    plan_search,
    qdrant_key,
    recommend_pool,
    score_from_best_score,
)
from service.index.vector_cache import Page

BATCH = 1000
_SCHEMA = {
    FieldType.keyword: qe.PayloadSchemaType.Keyword,
    FieldType.integer: qe.PayloadSchemaType.Integer,
    FieldType.float: qe.PayloadSchemaType.Float,
    FieldType.bool: qe.PayloadSchemaType.Bool,
    FieldType.datetime: qe.PayloadSchemaType.Datetime,
    FieldType.text: qe.PayloadSchemaType.Text,
}
_KIND = {str(v): k for k, v in _SCHEMA.items()}
# Payload indexes live on disk, read through the page cache: an index of 1M assets opens in a
# fraction of the time (the engine rebuilds in-RAM payload indexes at every load; measured: 6
# keyword indexes of 300k points, 0.42 s in RAM, 0.12 s on disk) and holds less memory.
_IN_RAM = frozenset({"status"})
_PARAMS: dict[FieldType, Callable[[], Any]] = {
    FieldType.keyword: lambda: qe.KeywordIndexParams(on_disk=True),
    FieldType.integer: lambda: qe.IntegerIndexParams(lookup=True, range=True, on_disk=True),
    FieldType.float: lambda: qe.FloatIndexParams(on_disk=True),
    FieldType.bool: lambda: qe.BoolIndexParams(on_disk=True),
    FieldType.datetime: lambda: qe.DatetimeIndexParams(on_disk=True),
    FieldType.text: lambda: qe.TextIndexParams(on_disk=True),
}
_FACETABLE = (FieldType.keyword, FieldType.integer, FieldType.bool)
_DISTANCE = {
    Distance.cosine: qe.Distance.Cosine,
    Distance.dot: qe.Distance.Dot,
    Distance.euclid: qe.Distance.Euclid,
}
_FROM_ENGINE = {"Cosine": Distance.cosine, "Dot": Distance.dot, "Euclid": Distance.euclid}
_CANONICAL_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class EdgeIndex:
    """VectorIndex on an embedded qdrant-edge shard under `path`.

    `indexing_threshold_kb` / `full_scan_threshold_kb` override Qdrant's defaults
    (10,000 KB each) when the shard is created; tests lower them so a small
    collection gets a real HNSW graph.

    Raises:
        IndexLocked: another process (or another EdgeIndex) has `path` open.
        InvalidConfig: the shard holds `vector_name` with another dimension.
    """

    def __init__(
        self,
        path: Path,
        *,
        vector_name: str,
        dim: int,
        settings: IndexSettings,
        indexing_threshold_kb: int | None = None,
        full_scan_threshold_kb: int | None = None,
    ) -> None:
        self.path = Path(path)
        self.vector_name = vector_name
        self.dim = dim
        self.settings = settings
        hnsw = qe.HnswIndexConfig(
            m=16, ef_construct=100, full_scan_threshold=full_scan_threshold_kb or 10_000
        )
        # The user spaces' named vectors are part of the configuration the shard is opened with,
        # so that changed settings (quantization) reach them too.
        stored = {
            name: VectorSpec(name, size, _FROM_ENGINE.get(dist, Distance.cosine))
            for name, (size, dist) in stored_vector_params(self.path).items()
        }
        vectors = {
            n: _vector_params(v.dim, settings, v.distance) for n, v in stored.items() if n != vector_name
        }
        config = qe.EdgeConfig(
            vectors={**vectors, vector_name: _vector_params(dim, settings)},
            payload_memory=qe.Memory.Cold,  # read per hit and per filter check, never scanned
            hnsw_config=hnsw,
            optimizers=qe.EdgeOptimizersConfig(indexing_threshold=indexing_threshold_kb),
        )
        self._store = EdgeStore(self.path, config=config)
        self._cache = self._store.vectors
        try:
            self._ensure_vector()
            with self._store.shard() as shard, edge_errors("read the payload schema"):
                schema = shard.info().payload_schema
            self._indexed = {
                loupe_key(k): _KIND.get(str(v.data_type), FieldType.keyword) for k, v in schema.items()
            }
            for key, kind in BUILTIN_FIELDS.items():
                self.ensure_field(key, kind)
        except BaseException:
            self._store.close()
            raise

    def _ensure_vector(self) -> None:
        """Add this encoder's named vector to a shard made for another model."""
        self._specs = {
            name: VectorSpec(name, size, _FROM_ENGINE.get(dist, Distance.cosine))
            for name, (size, dist) in self._store.vector_params().items()
        }
        size = self._store.vector_sizes().get(self.vector_name)
        self._specs[self.vector_name] = VectorSpec(self.vector_name, self.dim, Distance.cosine)
        if size is None:
            op = qe.UpdateOperation.create_dense_vector(self.vector_name, self.dim, qe.Distance.Cosine)
            self._store.apply(op, "add a named vector")
        elif size != self.dim:
            raise InvalidConfig(
                f"the index at {self.path} holds {self.vector_name!r} vectors of dimension "
                f"{size}, but the encoder makes {self.dim}; use another LOUPE_HOME"
            )

    # -- writes ------------------------------------------------------------

    def ensure_field(self, key: str, kind: FieldType) -> None:
        if key in self._indexed:
            return
        # `status` filters every catalog search: its index stays in RAM (a few bytes a point).
        params = _SCHEMA[kind] if key in _IN_RAM else _PARAMS[kind]()
        op = qe.UpdateOperation.create_field_index(qdrant_key(key), params)
        self._store.apply(op, f"index the field {key}")
        self._indexed[key] = kind

    def indexed_fields(self) -> dict[str, FieldType]:
        return dict(self._indexed)

    def drop_field(self, key: str) -> None:
        if key not in self._indexed:
            return
        self._store.apply(qe.UpdateOperation.delete_field_index(qdrant_key(key)), f"drop the index of {key}")
        del self._indexed[key]

    def upsert(self, points: Sequence[Point]) -> None:
        with_vectors = [p for p in points if p.vector is not None]
        for start in range(0, len(with_vectors), BATCH):
            batch = with_vectors[start : start + BATCH]
            rows = np.asarray([p.vector for p in batch], dtype=np.float32).tolist()
            edge_points = [
                qe.Point(_point_id(p.id), {**_named(p.vectors), self.vector_name: row}, dict(p.payload))
                for p, row in zip(batch, rows, strict=True)
            ]
            with self._cache.writing():
                self._store.apply(qe.UpdateOperation.upsert_points(edge_points), "upsert points")
        payload_only = [p for p in points if p.vector is None]
        if payload_only:
            self._replace_payloads(payload_only)

    def _replace_payloads(self, points: Sequence[Point]) -> None:
        """Points without a vector: replace the payload, keep the vector (or insert without one)."""
        existing = {r.id for r in self.retrieve([p.id for p in points])}
        for p in points:
            if p.id in existing:
                op = qe.UpdateOperation.overwrite_payload([_point_id(p.id)], dict(p.payload))
                self._store.apply(op, "replace a payload")
                continue
            # A new point without vectors; counted as a vector write all the same, since a point
            # upserted with a vector meanwhile (after the retrieve) would lose it.
            op = qe.UpdateOperation.upsert_points([qe.Point(_point_id(p.id), {}, dict(p.payload))])
            with self._cache.writing():
                self._store.apply(op, "replace a payload")

    def set_payload(self, ids: Sequence[str], payload: Mapping[str, Any], *, key: str | None = None) -> None:
        for start in range(0, len(ids), BATCH):
            has = qe.HasIdCondition({_point_id(i) for i in ids[start : start + BATCH]})
            op = qe.UpdateOperation.set_payload_by_filter(qe.Filter(must=[has]), dict(payload), key=key)
            self._store.apply(op, "set payload")

    def set_payloads(self, items: Sequence[tuple[str, Mapping[str, Any]]], *, key: str | None = None) -> None:
        # One operation per point (each point gets its own values), applied in runs under one
        # hold of the locks. By id rather than by an id filter (whose building cost a tenth of
        # the write); a point deleted meanwhile is refused by the engine and skipped.
        ops = [
            qe.UpdateOperation.set_payload([_point_id(p)], v if type(v) is dict else dict(v), key=key)
            for p, v in items
        ]
        self._store.apply_each(ops, "set payloads", skip_missing=True)

    def write_payloads(
        self,
        items: Sequence[tuple[str, Mapping[str, Any]]],
        *,
        key: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        through = (
            len(items) >= self.settings.write_through_min
            and self.settings.optimize_after_sync  # it rebuilds the graph, which that turns off
            and self.stats()["indexed_vectors"] > 0  # else the points are appendable already
        )
        if not through:
            write_in_runs(self, items, key=key, progress=progress)
            return
        rows = ((_point_id(pid), payload) for pid, payload in items)
        check = None if progress is None else (lambda: progress(0))
        self._store.write_through(rows, key=key, check=check)
        if progress is not None:
            progress(len(items))

    def delete_keys(
        self, keys: Sequence[str], *, ids: Sequence[str] | None = None, filter: Filter | None = None
    ) -> None:
        if ids is None:
            flt = _to_edge(filter) or qe.Filter(must=[])
            self._store.apply(
                qe.UpdateOperation.delete_payload_by_filter(flt, list(keys)), "delete payload keys"
            )
            return
        for start in range(0, len(ids), BATCH):
            has = qe.HasIdCondition({_point_id(i) for i in ids[start : start + BATCH]})
            op = qe.UpdateOperation.delete_payload_by_filter(qe.Filter(must=[has]), list(keys))
            self._store.apply(op, "delete payload keys")

    def delete(self, ids: Sequence[str]) -> None:
        for start in range(0, len(ids), BATCH):
            op = qe.UpdateOperation.delete_points([_point_id(i) for i in ids[start : start + BATCH]])
            with self._cache.writing():
                self._store.apply(op, "delete points")

    # -- reads -------------------------------------------------------------

    def retrieve(
        self,
        ids: Sequence[str],
        *,
        with_vectors: bool | Sequence[str] = False,
        using: str | None = None,
        fields: Sequence[str] | None = None,
    ) -> list[Record]:
        point_ids = _point_ids(ids)
        names = self._vector_names(with_vectors, using)
        payload = _payload_selector(fields)
        with self._store.shard() as shard, edge_errors("retrieve points"):
            found = {str(r.id): r for r in shard.retrieve(point_ids, payload, names or False)}
        return [self._record(found[i], with_vectors, using, id=i) for i in point_ids if i in found]

    def _vector_names(self, with_vectors: bool | Sequence[str], using: str | None) -> list[str]:
        if with_vectors is True:
            return [using or self.vector_name]
        return [] if with_vectors is False else list(with_vectors)

    # -- named vectors -------------------------------------------------------

    def vector_specs(self) -> dict[str, VectorSpec]:
        return dict(self._specs)

    def add_vector(self, spec: VectorSpec) -> None:
        known = self._specs.get(spec.name)
        if known == spec:
            return
        if known is not None:
            raise InvalidConfig(
                f"the index holds vectors named {spec.name!r} of dimension {known.dim} "
                f"({known.distance}), not {spec.dim} ({spec.distance})"
            )
        op = qe.UpdateOperation.create_dense_vector(spec.name, spec.dim, _DISTANCE[spec.distance])
        with self._cache.writing():
            self._store.apply(op, f"add the named vector {spec.name}")
        self._specs[spec.name] = spec

    def remove_vector(self, name: str) -> None:
        if name == self.vector_name:
            raise InvalidQuery("the encoder's vectors cannot be removed", path="name")
        if name not in self._specs:
            return
        with self._cache.writing():
            self._store.apply(qe.UpdateOperation.delete_vector_name(name), f"remove the named vector {name}")
        del self._specs[name]

    def update_vectors(self, name: str, items: Sequence[tuple[str, np.ndarray]]) -> None:
        for start in range(0, len(items), BATCH):
            batch = items[start : start + BATCH]
            # numpy rows go to the engine as they are: three times faster than lists of floats.
            rows = np.ascontiguousarray(np.asarray([v for _, v in batch], dtype=np.float32))
            op = qe.UpdateOperation.update_vectors(
                [
                    qe.PointVectors(_point_id(pid), {name: row})
                    for (pid, _), row in zip(batch, rows, strict=True)
                ]
            )
            with self._cache.writing():
                self._store.apply(op, f"write {name} vectors")

    def delete_vectors(self, name: str, ids: Sequence[str]) -> None:
        for start in range(0, len(ids), BATCH):
            points: list[Any] = [_point_id(i) for i in ids[start : start + BATCH]]
            with self._cache.writing():
                self._store.apply(qe.UpdateOperation.delete_vectors(points, [name]), f"delete {name} vectors")

    def _spec(self, using: str | None) -> VectorSpec:
        spec = self._specs.get(using or self.vector_name)
        if spec is None:
            raise InvalidQuery(f"the index has no vectors named {using!r}", path="space")
        return spec

    def query(
        self,
        *,
        positive: Sequence[np.ndarray],
        negative: Sequence[np.ndarray] = (),
        filter: Filter | None = None,
        limit: int = 10,
        offset: int = 0,
        score_threshold: float | None = None,
        using: str | None = None,
    ) -> list[Hit]:
        if not positive:
            raise InvalidQuery("a query needs at least one positive example", path="positive")
        spec = self._spec(using)
        recommend = len(positive) > 1 or bool(negative)
        flt = _to_edge(filter)
        with self._store.shard() as shard:
            params = _params(self._plan(shard, filter, want=limit + offset), self.settings)
            page = {"limit": limit, "offset": offset, "filter": flt, "with_payload": True}
            if recommend:
                request = self._recommend(positive, negative, flt, params, page, score_threshold, spec.name)
            else:
                nearest = qe.Query.Nearest(_vector(positive[0]), using=spec.name)
                request = qe.QueryRequest(
                    query=nearest, params=params, score_threshold=score_threshold, **page
                )
            with edge_errors("search"):
                points = shard.query(request)
        if not recommend:
            return [Hit(id=str(p.id), score=float(p.score), payload=p.payload or {}) for p in points]
        return [
            Hit(id=str(p.id), score=score_from_best_score(p.score, spec.distance), payload=p.payload or {})
            for p in points
        ]

    def _recommend(
        self,
        positive: Sequence[np.ndarray],
        negative: Sequence[np.ndarray],
        flt: Any,
        params: Any,
        page: dict[str, Any],
        score_threshold: float | None,
        using: str,
    ) -> Any:
        """best_score over the union of each positive's nearest points (plan.py says why)."""
        pool = recommend_pool(page["limit"] + page["offset"])
        prefetches = [
            qe.Prefetch(
                limit=pool,
                query=qe.Query.Nearest(_vector(v), using=using),
                filter=flt,
                params=params,
            )
            for v in positive
        ]
        reco = qe.RecommendQuery([_vector(v) for v in positive], [_vector(v) for v in negative])
        threshold = None if score_threshold is None else best_score_threshold(score_threshold)
        return qe.QueryRequest(
            prefetches=prefetches,
            query=qe.Query.RecommendBestScore(reco, using=using),
            params=params,  # with int8 on, the rerank must score the full vectors too
            score_threshold=threshold,
            **page,
        )

    def _plan(self, shard: Any, filter: Filter | None, *, want: int) -> SearchPlan:
        def estimate(part: Filter) -> int:
            return int(shard.count(qe.CountRequest(exact=False, filter=_to_edge(part))))

        with edge_errors("estimate a filter"):
            total = int(shard.count(qe.CountRequest(exact=False)))
            return plan_search(
                filter,
                estimate=estimate,
                indexed=self._indexed,
                total=total,
                want=want,
                settings=self.settings,
            )

    def neighbours(
        self,
        vectors: Sequence[np.ndarray],
        *,
        k: int,
        filter: Filter | None = None,
        using: str | None = None,
        ef: int | None = None,
    ) -> list[list[Hit]]:
        if not vectors:
            return []
        spec = self._spec(using)
        flt = _to_edge(filter)
        with self._store.shard() as shard:
            params = _params(self._plan(shard, filter, want=max(k, ef or 0)), self.settings)
            requests = [
                qe.QueryRequest(
                    limit=k,
                    query=qe.Query.Nearest(_vector(v), using=spec.name),
                    filter=flt,
                    params=params,
                    with_payload=False,
                )
                for v in vectors
            ]
            with edge_errors("search neighbours"):
                results = shard.query_batch(qe.QueryBatchRequest(requests))
        return [[Hit(id=str(p.id), score=float(p.score)) for p in points] for points in results]

    def scroll_ordered(
        self,
        *,
        key: str,
        descending: bool = False,
        filter: Filter | None = None,
        limit: int = 100,
        start_from: float | str | None = None,
        exclude_ids: Sequence[str] = (),
    ) -> list[Record]:
        direction = qe.Direction.Desc if descending else qe.Direction.Asc
        flt = _to_edge(filter)
        if exclude_ids:
            skip = qe.HasIdCondition({_point_id(i, path="cursor") for i in exclude_ids})
            flt = qe.Filter(must=[flt] if flt is not None else None, must_not=[skip])
        request = qe.ScrollRequest(
            limit=limit,
            filter=flt,
            with_payload=True,
            order_by=qe.OrderBy(qdrant_key(key), direction, start_from=start_from),
        )
        with self._store.shard() as shard, edge_errors(f"order points by {key}"):
            records, _ = shard.scroll(request)
        return [self._record(r, False) for r in records]

    def scroll(
        self,
        *,
        filter: Filter | None = None,
        limit: int = 100,
        cursor: str | None = None,
        fields: Sequence[str] | None = None,
        with_vectors: bool | Sequence[str] = False,
    ) -> tuple[list[Record], str | None]:
        start = None if cursor is None else _point_id(cursor, path="cursor")
        names = self._vector_names(with_vectors, None)
        payload = _payload_selector(fields)
        request = qe.ScrollRequest(
            offset=start,
            limit=limit,
            filter=_to_edge(filter),
            with_payload=payload,
            with_vector=names or False,
        )
        with self._store.shard() as shard, edge_errors("scroll points"):
            records, nxt = shard.scroll(request)
        nxt_id = None if nxt is None else str(nxt)
        if with_vectors is False:  # the common page: ids and payload fields, one call less each
            return [Record(id=str(r.id), payload=r.payload or {}) for r in records], nxt_id
        return [self._record(r, with_vectors, None) for r in records], nxt_id

    def all_vectors(self, space: str) -> tuple[list[str], np.ndarray]:
        """Served from the cache beside the shard (vector_cache.py), built on the first call after
        a vector write; the matrix is read-only (a mapped file)."""
        spec = self._spec(space)
        has = Filter(must=[HasVector(spec.name)])
        return self._cache.get(
            spec.name,
            dim=spec.dim,
            count=lambda: self.count(has),
            pages=lambda: self._vector_pages(spec.name),
        )

    def _vector_pages(self, space: str) -> Iterator[Page]:
        """(id, vector as a list) of every point with a vector in `space`, in scroll order."""
        has = qe.Filter(must=[qe.HasVectorCondition(space)])
        cursor = None
        while True:
            request = qe.ScrollRequest(
                offset=cursor, limit=BATCH, filter=has, with_payload=False, with_vector=[space]
            )
            with self._store.shard() as shard, edge_errors(f"read the {space} vectors"):
                records, cursor = shard.scroll(request)
            yield [(str(r.id), r.vector[space]) for r in records]
            if cursor is None:
                return

    def count(self, filter: Filter | None = None) -> int:
        request = qe.CountRequest(exact=True, filter=_to_edge(filter))
        with self._store.shard() as shard, edge_errors("count points"):
            return int(shard.count(request))

    def facet(self, key: str, *, filter: Filter | None = None, limit: int = 50) -> list[FacetCount]:
        if self._indexed.get(key) not in _FACETABLE:
            raise InvalidQuery(
                f"{key} has no keyword, integer or bool index to count values with", path="field"
            )
        request = qe.FacetRequest(qdrant_key(key), limit=limit, exact=True, filter=_to_edge(filter))
        with self._store.shard() as shard, edge_errors("count values"):
            hits = shard.facet(request).hits
        counts = [FacetCount(value=h.value, count=int(h.count)) for h in hits]
        return sorted(counts, key=lambda c: (-c.count, str(c.value)))

    def _record(
        self, r: Any, with_vectors: bool | Sequence[str] = True, using: str | None = None, *, id: str = ""
    ) -> Record:
        # Each attribute of an engine record is converted to Python when read: read each once
        # (the id too: the binding makes a uuid.UUID of it each time; `id` is it, spelled already).
        if with_vectors is False:  # most scrolls: ids and a few payload fields
            return Record(id=id or str(r.id), payload=r.payload or {})
        vectors = r.vector
        found = vectors if isinstance(vectors, dict) else {}
        arrays = {k: np.asarray(v, dtype=np.float32) for k, v in found.items()}
        main = arrays.get(using or self.vector_name)
        named = arrays if not isinstance(with_vectors, bool) else {}
        return Record(id=id or str(r.id), payload=r.payload or {}, vector=main, vectors=named)

    def stats(self) -> dict[str, int]:
        """Points, vectors already in the HNSW graph, segments of the live shard, and whether
        changed settings (reconfigured = 1) wait for an optimize to rebuild it."""
        with self._store.shard() as shard, edge_errors("read the shard info"):
            info = shard.info()
        return {
            "points": info.points_count,
            "indexed_vectors": info.indexed_vectors_count,
            "segments": info.segments_count,
            "reconfigured": int(self._store.reconfigured),
        }

    # -- optimize, flush, close -------------------------------------------

    def optimize(self) -> None:
        """Build the HNSW graph in a child process; searches keep answering (edge_store.py)."""
        self._store.optimize()

    def flush(self) -> None:
        self._store.flush()

    def close(self) -> None:
        self._store.close()


# -- translation -------------------------------------------------------------


def _to_edge(node: Filter | None) -> Any:
    if node is None:
        return None
    return _edge_filter(node)


def _edge_filter(node: Filter) -> Any:
    def parts(items: Sequence[Condition | Filter | HasVector]) -> list[Any] | None:
        return [_edge_node(i) for i in items] or None

    return qe.Filter(must=parts(node.must), should=parts(node.should), must_not=parts(node.must_not))


def _edge_node(node: Condition | Filter | HasVector) -> Any:
    if isinstance(node, Filter):
        return _edge_filter(node)
    if isinstance(node, HasVector):
        return qe.HasVectorCondition(node.name)
    key = qdrant_key(node.key)
    if node.eq is not None:
        # qdrant-edge 0.9 reads a Python bool as the integer 1 (bool subclasses int), which
        # matches nothing; numpy's bool reaches the engine as a bool.
        value: Any = np.bool_(node.eq) if isinstance(node.eq, bool) else node.eq
        return qe.FieldCondition(key, match=qe.MatchValue(value))
    if node.any_of is not None:
        return qe.FieldCondition(key, match=qe.MatchAny(list(node.any_of)))
    if node.match is not None:
        return qe.FieldCondition(key, match=qe.MatchText(node.match))
    if node.exists is not None:
        empty = qe.IsEmptyCondition(key)
        return qe.Filter(must_not=[empty]) if node.exists else empty
    if node.range is not None:
        bounds = dict(node.range)
        if node.is_datetime:
            return qe.FieldCondition(key, range=qe.RangeDateTime(**{k: str(v) for k, v in bounds.items()}))
        return qe.FieldCondition(key, range=qe.RangeFloat(**{k: float(v) for k, v in bounds.items()}))
    raise InvalidQuery(f"condition on {node.key} has no operator", path="filter")


def _payload_selector(fields: Sequence[str] | None) -> Any:
    """All of the payload (None), some top-level keys, or none of it (an empty list): the engine
    then never reads the payload storage (a retrieve of ids alone is 4x cheaper than with an
    empty include list, which still reads every payload)."""
    if fields is None:
        return True
    return qe.PayloadSelector.Include(list(fields)) if fields else False


def _named(vectors: Mapping[str, np.ndarray]) -> dict[str, list[float]]:
    return {name: _vector(v) for name, v in vectors.items()}


def _vector_params(dim: int, settings: IndexSettings, distance: Distance = Distance.cosine) -> Any:
    if settings.quantization == "none":
        return qe.EdgeVectorParams(size=dim, distance=_DISTANCE[distance])
    # The int8 copy is built with each segment's HNSW graph and pinned in RAM; the full vectors
    # are read from disk only to rescore candidates (and by the small unindexed segments).
    int8 = qe.ScalarQuantizationConfig(qe.ScalarType.Int8, quantile=0.99, memory=qe.Memory.Pinned)
    return qe.EdgeVectorParams(
        size=dim, distance=_DISTANCE[distance], quantization_config=int8, memory=qe.Memory.Cold
    )


def _params(plan: SearchPlan, settings: IndexSettings) -> Any:
    # The plan already weighed selectivity, so ACORN runs whenever it asks for it.
    acorn = qe.AcornSearchParams(enable=True, max_selectivity=1.0) if plan.acorn else None
    quant = None
    if settings.quantization != "none":
        quant = qe.QuantizationSearchParams(rescore=True, oversampling=settings.oversampling)
    return qe.SearchParams(hnsw_ef=plan.hnsw_ef, exact=plan.exact, acorn=acorn, quantization=quant)


def _vector(v: np.ndarray) -> list[float]:
    return np.asarray(v, dtype=np.float32).reshape(-1).tolist()


def _point_ids(ids: Sequence[str]) -> list[str]:
    """`_point_id` of each, naming the position of a bad one (`ids[3]`)."""
    return [
        i if type(i) is str and _CANONICAL_ID.fullmatch(i) else _point_id(i, path=f"ids[{n}]")
        for n, i in enumerate(ids)
    ]


def _point_id(value: str, *, path: str = "ids") -> str:
    if type(value) is str and _CANONICAL_ID.fullmatch(value):
        return value  # already as str(UUID) spells it: ids the index gave out (2 us a UUID parse)
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise InvalidQuery(f"{value!r} is not an asset id (a UUID)", path=path) from None
