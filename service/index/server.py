"""A Qdrant server or cluster by URL (qdrant-client); its local mode stands in for tests.

Same behaviour as the embedded index (one congruence suite runs both): one
collection, a named cosine vector per encoder model, payload indexes on the
built-in fields, the same exact-or-HNSW plan (plan.py) and the same recommend
strategy and score scale. Transient failures (connection errors, 502/503/504)
are retried `settings.retries` times by the one policy (service.retry); every
call is idempotent (upserts and deletes by id), so a retried write is safe.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
from qdrant_client import models
from qdrant_client.http.exceptions import UnexpectedResponse

from service.config import IndexSettings
from service.errors import InvalidConfig, InvalidQuery
from service.index.base import (
    BUILTIN_FIELDS,
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
from service.index.plan import (
    SearchPlan,
    best_score_threshold,
    loupe_key,
    plan_search,
    qdrant_key,
    recommend_pool,
    score_from_best_score,
)
from service.index.server_client import (
    call,
    make_client,
    point_id,
    quantization_config,
    redact,
    search_params,
    to_qdrant,
    vector,
)

T = TypeVar("T")
BATCH = 1000
_SCHEMA: dict[FieldType, Any] = {
    FieldType.keyword: models.PayloadSchemaType.KEYWORD,
    FieldType.integer: models.PayloadSchemaType.INTEGER,
    FieldType.float: models.PayloadSchemaType.FLOAT,
    FieldType.bool: models.PayloadSchemaType.BOOL,
    FieldType.datetime: models.PayloadSchemaType.DATETIME,
    FieldType.text: models.TextIndexParams(
        type=models.TextIndexType.TEXT, tokenizer=models.TokenizerType.WORD, lowercase=True
    ),
}
_KIND = {str(v.value): k for k, v in _SCHEMA.items() if isinstance(v, models.PayloadSchemaType)}
_FACETABLE = (FieldType.keyword, FieldType.integer, FieldType.bool)
_DISTANCE = {
    Distance.cosine: models.Distance.COSINE,
    Distance.dot: models.Distance.DOT,
    Distance.euclid: models.Distance.EUCLID,
}
_FROM_SERVER = {v: k for k, v in _DISTANCE.items()}


class ServerIndex:
    """VectorIndex on a Qdrant collection.

    Args:
        url_or_location: `http(s)://host:port` for a server or cluster, `:memory:`
            or a directory for qdrant-client's local mode (tests only: it is a
            pure-Python brute force).

    Raises:
        IndexUnavailable: Qdrant cannot be reached.
        InvalidConfig: the collection holds `vector_name` with another dimension.
    """

    def __init__(
        self,
        url_or_location: str,
        *,
        api_key: str | None,
        collection: str,
        vector_name: str,
        dim: int,
        settings: IndexSettings,
    ) -> None:
        self.vector_name = vector_name
        self.dim = dim
        self.settings = settings
        self.collection = collection
        self._where = redact(url_or_location)
        # Local mode is a brute force: payload indexes and search params do nothing there.
        self._local = not url_or_location.startswith(("http://", "https://"))
        self._client = make_client(url_or_location, api_key=api_key, timeout_s=settings.timeout_s)
        try:
            self._call("open the collection", self._ensure_collection)
            info = self._call("read the collection", self._client.get_collection, collection)
            self._indexed = {
                loupe_key(k): _KIND.get(str(v.data_type.value), FieldType.keyword)
                for k, v in (info.payload_schema or {}).items()
            }
            for key, kind in BUILTIN_FIELDS.items():
                self.ensure_field(key, kind)
        except BaseException:
            self.close()
            raise

    def _ensure_collection(self) -> None:
        quantize = quantization_config(self.settings)
        params = models.VectorParams(
            size=self.dim, distance=models.Distance.COSINE, on_disk=quantize is not None
        )
        if not self._client.collection_exists(self.collection):
            try:
                self._client.create_collection(
                    self.collection,
                    vectors_config={self.vector_name: params},
                    shard_number=self.settings.shard_number,
                    replication_factor=self.settings.replication_factor,
                    write_consistency_factor=self.settings.write_consistency_factor,
                    on_disk_payload=True,
                    quantization_config=quantize,
                )
            except (UnexpectedResponse, ValueError):
                if not self._client.collection_exists(self.collection):
                    raise  # not a race with another replica creating it
        vectors = self._client.get_collection(self.collection).config.params.vectors
        self._specs = {
            name: VectorSpec(name, int(v.size), _FROM_SERVER.get(v.distance, Distance.cosine))
            for name, v in (vectors.items() if isinstance(vectors, dict) else ())
        }
        self._specs[self.vector_name] = VectorSpec(self.vector_name, self.dim, Distance.cosine)
        known = vectors.get(self.vector_name) if isinstance(vectors, dict) else None
        if known is None:
            config = models.DenseVectorNameConfig(
                dense=models.DenseVectorConfig(size=self.dim, distance=models.Distance.COSINE)
            )
            self._client.create_vector_name(self.collection, self.vector_name, config)
        elif known.size != self.dim:
            raise InvalidConfig(
                f"collection {self.collection!r} at {self._where} holds {self.vector_name!r} "
                f"vectors of dimension {known.size}, but the encoder makes {self.dim}"
            )

    def _call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one client call; transient failures are retried by the one policy."""
        return call(self._where, what, lambda: fn(*args, **kwargs), retries=self.settings.retries)

    # -- writes ------------------------------------------------------------

    def ensure_field(self, key: str, kind: FieldType) -> None:
        if key in self._indexed:
            return
        if self._local:
            self._indexed[key] = kind
            return
        self._call(
            f"index the field {key}",
            self._client.create_payload_index,
            self.collection,
            qdrant_key(key),
            field_schema=_SCHEMA[kind],
            wait=True,
        )
        self._indexed[key] = kind

    def indexed_fields(self) -> dict[str, FieldType]:
        return dict(self._indexed)

    def drop_field(self, key: str) -> None:
        if key not in self._indexed:
            return
        if not self._local:
            self._call(
                f"drop the index of {key}",
                self._client.delete_payload_index,
                self.collection,
                qdrant_key(key),
                wait=True,
            )
        del self._indexed[key]

    def upsert(self, points: Sequence[Point]) -> None:
        with_vectors = [p for p in points if p.vector is not None]
        for start in range(0, len(with_vectors), BATCH):
            batch = with_vectors[start : start + BATCH]
            rows = np.asarray([p.vector for p in batch], dtype=np.float32).tolist()
            structs = [
                models.PointStruct(
                    id=point_id(p.id),
                    vector={**{n: vector(v) for n, v in p.vectors.items()}, self.vector_name: row},
                    payload=dict(p.payload),
                )
                for p, row in zip(batch, rows, strict=True)
            ]
            self._call("upsert points", self._client.upsert, self.collection, structs, wait=True)
        payload_only = [p for p in points if p.vector is None]
        if payload_only:
            self._replace_payloads(payload_only)

    def _replace_payloads(self, points: Sequence[Point]) -> None:
        """Points without a vector: replace the payload, keep the vector (or insert without one)."""
        existing = {r.id for r in self.retrieve([p.id for p in points])}
        for p in points:
            if p.id in existing:
                self._call(
                    "replace a payload",
                    self._client.overwrite_payload,
                    self.collection,
                    dict(p.payload),
                    points=[point_id(p.id)],
                    wait=True,
                )
            else:
                struct = models.PointStruct(id=point_id(p.id), vector={}, payload=dict(p.payload))
                self._call("insert a point", self._client.upsert, self.collection, [struct])

    def set_payload(self, ids: Sequence[str], payload: Mapping[str, Any], *, key: str | None = None) -> None:
        for start in range(0, len(ids), BATCH):
            # By filter, so ids that no longer exist are skipped rather than failing the batch.
            has = models.HasIdCondition(has_id=[point_id(i) for i in ids[start : start + BATCH]])
            selector = models.Filter(must=[has])
            self._call(
                "set payload",
                self._client.set_payload,
                self.collection,
                dict(payload),
                points=selector,
                key=key,
                wait=True,
            )

    def set_payloads(self, items: Sequence[tuple[str, Mapping[str, Any]]], *, key: str | None = None) -> None:
        for start in range(0, len(items), BATCH):
            # One request per batch: a set-payload operation per point (each has its own values),
            # selected by id filter so a point deleted meanwhile is skipped.
            ops: list[Any] = [
                models.SetPayloadOperation(
                    set_payload=models.SetPayload(
                        payload=dict(payload),
                        filter=models.Filter(must=[models.HasIdCondition(has_id=[point_id(pid)])]),
                        key=key,
                    )
                )
                for pid, payload in items[start : start + BATCH]
            ]
            self._call("set payloads", self._client.batch_update_points, self.collection, ops, wait=True)

    def write_payloads(
        self,
        items: Sequence[tuple[str, Mapping[str, Any]]],
        *,
        key: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        # The server holds what a write moves in its own memory: batches, progress after each.
        write_in_runs(self, items, key=key, progress=progress)

    def delete_keys(
        self, keys: Sequence[str], *, ids: Sequence[str] | None = None, filter: Filter | None = None
    ) -> None:
        if ids is None:
            selector = to_qdrant(filter) or models.Filter(must=[])
            self._call(
                "delete payload keys",
                self._client.delete_payload,
                self.collection,
                list(keys),
                points=selector,
                wait=True,
            )
            return
        for start in range(0, len(ids), BATCH):
            has = models.HasIdCondition(has_id=[point_id(i) for i in ids[start : start + BATCH]])
            self._call(
                "delete payload keys",
                self._client.delete_payload,
                self.collection,
                list(keys),
                points=models.Filter(must=[has]),
                wait=True,
            )

    def delete(self, ids: Sequence[str]) -> None:
        for start in range(0, len(ids), BATCH):
            selector = models.PointIdsList(points=[point_id(i) for i in ids[start : start + BATCH]])
            self._call("delete points", self._client.delete, self.collection, selector, wait=True)

    # -- reads -------------------------------------------------------------

    def retrieve(
        self,
        ids: Sequence[str],
        *,
        with_vectors: bool | Sequence[str] = False,
        using: str | None = None,
        fields: Sequence[str] | None = None,
    ) -> list[Record]:
        point_ids = [point_id(i, path=f"ids[{n}]") for n, i in enumerate(ids)]
        names = self._vector_names(with_vectors, using)
        records = self._call(
            "retrieve points",
            self._client.retrieve,
            self.collection,
            point_ids,
            with_payload=_payload_selector(fields),
            with_vectors=names or False,
        )
        found = {str(r.id): r for r in records}
        return [self._record(found[i], with_vectors, using) for i in point_ids if i in found]

    def _vector_names(self, with_vectors: bool | Sequence[str], using: str | None) -> list[str]:
        if with_vectors is True:
            return [using or self.vector_name]
        return [] if with_vectors is False else list(with_vectors)

    # -- named vectors -------------------------------------------------------

    def vector_specs(self) -> dict[str, VectorSpec]:
        return dict(self._specs)

    def add_vector(self, spec: VectorSpec) -> None:
        """A new named vector in place (Qdrant >= 1.18's create-vector-name; older servers 404)."""
        known = self._specs.get(spec.name)
        if known == spec:
            return
        if known is not None:
            raise InvalidConfig(
                f"collection {self.collection!r} holds vectors named {spec.name!r} of dimension "
                f"{known.dim} ({known.distance}), not {spec.dim} ({spec.distance})"
            )
        config = models.DenseVectorNameConfig(
            dense=models.DenseVectorConfig(size=spec.dim, distance=_DISTANCE[spec.distance])
        )
        self._call(
            f"add the named vector {spec.name}",
            self._client.create_vector_name,
            self.collection,
            spec.name,
            config,
        )
        self._specs[spec.name] = spec

    def remove_vector(self, name: str) -> None:
        if name == self.vector_name:
            raise InvalidQuery("the encoder's vectors cannot be removed", path="name")
        if name not in self._specs:
            return
        self._call(f"remove the named vector {name}", self._client.delete_vector_name, self.collection, name)
        del self._specs[name]

    def update_vectors(self, name: str, items: Sequence[tuple[str, np.ndarray]]) -> None:
        for start in range(0, len(items), BATCH):
            batch = items[start : start + BATCH]
            rows = np.asarray([v for _, v in batch], dtype=np.float32).tolist()
            structs = [
                models.PointVectors(id=point_id(pid), vector={name: row})
                for (pid, _), row in zip(batch, rows, strict=True)
            ]
            self._call(
                f"write {name} vectors", self._client.update_vectors, self.collection, structs, wait=True
            )

    def delete_vectors(self, name: str, ids: Sequence[str]) -> None:
        for start in range(0, len(ids), BATCH):
            selector = models.PointIdsList(points=[point_id(i) for i in ids[start : start + BATCH]])
            self._call(
                f"delete {name} vectors",
                self._client.delete_vectors,
                self.collection,
                [name],
                selector,
                wait=True,
            )

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
        flt = to_qdrant(filter)
        # Local mode is a brute force: search params would only earn a warning there.
        params = (
            None if self._local else search_params(self._plan(filter, want=limit + offset), self.settings)
        )
        args: dict[str, Any] = {"using": spec.name, "query_filter": flt, "limit": limit}
        args.update(offset=offset, with_payload=True, search_params=params)
        if recommend:
            args.update(self._recommend(positive, negative, flt, params, limit + offset, spec.name))
            if score_threshold is not None:
                score_threshold = best_score_threshold(score_threshold)
        else:
            args["query"] = models.NearestQuery(nearest=vector(positive[0]))
        response = self._call(
            "search",
            self._client.query_points,
            self.collection,
            score_threshold=score_threshold,
            **args,
        )
        if not recommend:
            return [Hit(id=str(p.id), score=float(p.score), payload=p.payload or {}) for p in response.points]
        return [
            Hit(id=str(p.id), score=score_from_best_score(p.score, spec.distance), payload=p.payload or {})
            for p in response.points
        ]

    def _recommend(
        self,
        positive: Sequence[np.ndarray],
        negative: Sequence[np.ndarray],
        flt: models.Filter | None,
        params: models.SearchParams | None,
        want: int,
        using: str,
    ) -> dict[str, Any]:
        """best_score over the union of each positive's nearest points (plan.py says why)."""
        prefetch = [
            models.Prefetch(
                query=models.NearestQuery(nearest=vector(v)),
                using=using,
                filter=flt,
                params=params,
                limit=recommend_pool(want),
            )
            for v in positive
        ]
        reco = models.RecommendInput(
            positive=[vector(v) for v in positive],
            negative=[vector(v) for v in negative],
            strategy=models.RecommendStrategy.BEST_SCORE,
        )
        return {"prefetch": prefetch, "query": models.RecommendQuery(recommend=reco)}

    def _plan(self, filter: Filter | None, *, want: int) -> SearchPlan:
        def estimate(part: Filter) -> int:
            counted = self._client.count(self.collection, to_qdrant(part), exact=False)
            return int(counted.count)

        def plan() -> SearchPlan:
            total = int(self._client.count(self.collection, exact=False).count)
            return plan_search(
                filter,
                estimate=estimate,
                indexed=self._indexed,
                total=total,
                want=want,
                settings=self.settings,
            )

        return self._call("estimate a filter", plan)

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
        flt = to_qdrant(filter)
        want = max(k, ef or 0)
        params = None if self._local else search_params(self._plan(filter, want=want), self.settings)
        requests = [
            models.QueryRequest(
                query=models.NearestQuery(nearest=vector(v)),
                using=spec.name,
                filter=flt,
                params=params,
                limit=k,
                with_payload=False,
            )
            for v in vectors
        ]
        responses = self._call(
            "search neighbours", self._client.query_batch_points, self.collection, requests=requests
        )
        return [[Hit(id=str(p.id), score=float(p.score)) for p in r.points] for r in responses]

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
        flt = to_qdrant(filter)
        if exclude_ids:
            skip = models.HasIdCondition(has_id=[point_id(i, path="cursor") for i in exclude_ids])
            flt = models.Filter(must=[flt] if flt is not None else None, must_not=[skip])
        order = models.OrderBy(
            key=qdrant_key(key),
            direction=models.Direction.DESC if descending else models.Direction.ASC,
            start_from=start_from,  # type: ignore[arg-type]  # qdrant reads an RFC 3339 string too
        )
        records, _ = self._call(
            f"order points by {key}",
            self._client.scroll,
            self.collection,
            scroll_filter=flt,
            limit=limit,
            order_by=order,
            with_payload=True,
        )
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
        start = None if cursor is None else point_id(cursor, path="cursor")
        names = self._vector_names(with_vectors, None)
        records, nxt = self._call(
            "scroll points",
            self._client.scroll,
            self.collection,
            scroll_filter=to_qdrant(filter),
            limit=limit,
            offset=start,
            with_payload=_payload_selector(fields),
            with_vectors=names or False,
        )
        return [self._record(r, with_vectors, None) for r in records], None if nxt is None else str(nxt)

    def all_vectors(self, space: str) -> tuple[list[str], np.ndarray]:
        """Scrolled every time: other processes may change a server's vectors, so nothing is cached."""
        spec = self._spec(space)
        has = Filter(must=[HasVector(spec.name)])
        ids: list[str] = []
        rows: list[np.ndarray] = []
        cursor: str | None = None
        while True:
            recs, cursor = self.scroll(
                filter=has, limit=BATCH, cursor=cursor, fields=[], with_vectors=[spec.name]
            )
            for rec in recs:
                if spec.name in rec.vectors:
                    ids.append(rec.id)
                    rows.append(rec.vectors[spec.name])
            if cursor is None:
                break
        matrix = np.asarray(rows, dtype=np.float32).reshape(len(rows), spec.dim)
        return ids, matrix

    def count(self, filter: Filter | None = None) -> int:
        flt = to_qdrant(filter)
        return self._call("count points", self._client.count, self.collection, flt).count

    def facet(self, key: str, *, filter: Filter | None = None, limit: int = 50) -> list[FacetCount]:
        if self._indexed.get(key) not in _FACETABLE:
            raise InvalidQuery(
                f"{key} has no keyword, integer or bool index to count values with", path="field"
            )
        response = self._call(
            "count values",
            self._client.facet,
            self.collection,
            qdrant_key(key),
            facet_filter=to_qdrant(filter),
            limit=limit,
            exact=True,
        )
        counts = [FacetCount(value=h.value, count=int(h.count)) for h in response.hits]
        return sorted(counts, key=lambda c: (-c.count, str(c.value)))

    def _record(self, r: Any, with_vectors: bool | Sequence[str] = True, using: str | None = None) -> Record:
        found = r.vector if with_vectors is not False and isinstance(r.vector, dict) else {}
        arrays = {k: np.asarray(v, dtype=np.float32) for k, v in found.items()}
        named = arrays if not isinstance(with_vectors, bool) else {}
        return Record(
            id=str(r.id), payload=r.payload or {}, vector=arrays.get(using or self.vector_name), vectors=named
        )

    # -- maintenance ---------------------------------------------------------

    def optimize(self) -> None:
        """Nothing to do: the server builds its HNSW graph in the background."""

    def flush(self) -> None:
        """Nothing to do: writes are acknowledged once durable (`wait=True`)."""

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._client.close()


def _payload_selector(fields: Sequence[str] | None) -> bool | list[str]:
    """All of the payload (None), some top-level keys, or none of it (an empty list), as the
    embedded index reads them (edge.py)."""
    if fields is None:
        return True
    return list(fields) if fields else False
