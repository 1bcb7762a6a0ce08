"""The catalog: sources, syncs, assets and search over one index, for the API and the CLI."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from connectors import base as connectors
from connectors import registry
from service.catalog import label_scores
from service.catalog.assets import asset_from_payload
from service.catalog.decode import decode, thumbnail
from service.catalog.jobs import sync_lock
from service.catalog.priority import SearchGate
from service.catalog.sync import SyncPipeline, SyncReport
from service.config import Settings
from service.errors import (
    AssetError,
    AssetNotFound,
    InvalidQuery,
    SourceError,
)
from service.index import open_index
from service.index.base import Condition, Filter, VectorIndex, VectorSpec
from service.index.filters import only_present, parse_filter, without_excluded
from service.index.spaces import check_vector, resolve_space
from service.jobs.queue import JobQueue
from service.jobs.runner import JobContext, execute
from service.processes import process_owner
from service.schemas import SearchRequest
from service.state import JobRow, SourceRow, StateStore, utcnow
from service.timestamps import rfc3339

log = logging.getLogger(__name__)
THUMBNAIL_SIZE = 256


class Catalog:
    """Loupe's core, shared by `loupe serve` and the in-process CLI."""

    def __init__(self, settings: Settings, *, encoder: Any | None = None) -> None:
        from service.index import vector_name_for

        settings.home.mkdir(parents=True, exist_ok=True)
        self.settings = settings
        self.state = StateStore(settings.state_url, connect_timeout_s=settings.database_connect_timeout_s)
        if encoder is None:
            from service.encoder import load_encoder  # imports torch: only when no encoder is given

            encoder = load_encoder(settings)
        self.encoder = encoder
        self.index: VectorIndex = open_index(
            settings,
            vector_name=vector_name_for(self.encoder.model_name, self.encoder.pretrained),
            dim=self.encoder.dim,
        )
        self.jobs = JobQueue(self.state)
        self.owner = process_owner()
        # In-process syncs' progress callbacks (the CLI's bar), by job id.
        self._listeners: dict[str, Callable[[SyncReport], None] | None] = {}
        self.searches = SearchGate()  # syncs in this process step aside while searches run
        self._optimizer: threading.Thread | None = None
        self._optimize_again = threading.Event()

    def close(self) -> None:
        # Closing the index stops a running graph build (its child process) at once;
        # the next `loupe serve` starts it again (see optimize_if_behind).
        self._optimize_again.clear()
        self.index.close()
        if self._optimizer is not None:
            self._optimizer.join(timeout=60)
        self.state.close()

    # -- sources ---------------------------------------------------------

    def add_source(self, name: str, kind: str, config: dict[str, Any]) -> SourceRow:
        """Validate the config, check the source answers, then record it."""
        conn = registry.build(name, kind, config)
        conn.check()
        parsed = registry.parse_config(kind, config)
        return self.state.add_source(name, kind, parsed.stored())

    def public_source(self, row: SourceRow) -> dict[str, Any]:
        cfg = registry.parse_config(row.kind, row.config).public()
        return {"name": row.name, "kind": row.kind, "config": cfg, "created_at": rfc3339(row.created_at)}

    def remove_source(self, name: str) -> int:
        """Forget a source and delete its assets from the index; returns how many."""
        self.state.get_source(name)
        flt = Filter(must=[Condition(key="source", eq=name)])
        ids: list[str] = []
        cursor: str | None = None
        while True:
            recs, cursor = self.index.scroll(filter=flt, limit=2048, cursor=cursor, fields=["key"])
            ids.extend(r.id for r in recs)
            if cursor is None:
                break
        for start in range(0, len(ids), 1000):
            self.index.delete(ids[start : start + 1000])
        self.state.remove_source(name)
        return len(ids)

    def connector(self, name: str) -> connectors.Connector:
        row = self.state.get_source(name)
        return registry.build(row.name, row.kind, row.config)

    # -- syncs -----------------------------------------------------------

    def submit_sync(
        self,
        name: str,
        *,
        full: bool = False,
        prune: bool = False,
        engine: str | None = None,
        address: str | None = None,
    ) -> JobRow:
        """Queue a sync of `name` for a runner; Conflict while one is queued or running."""
        self.state.get_source(name)
        options = self._sync_options(full=full, prune=prune, engine=engine, address=address)
        if options["engine"] == "ray" and options["address"] is None and address != "local":
            # A server starts no Ray runtime of its own unless told to: it would take the cores its
            # searches need. The in-process CLI sync does (`loupe sync --engine ray` without a server).
            raise InvalidQuery(
                "engine ray needs a Ray cluster: give `address` (HOST:PORT of its head, or auto), set "
                "LOUPE_SYNC__RAY_ADDRESS, or pass address `local` to start Ray inside the server",
                path="address",
            )
        return self.jobs.create("sync", source=name, options=options, lock_key=sync_lock(name))

    def _sync_options(
        self, *, full: bool, prune: bool, engine: str | None, address: str | None
    ) -> dict[str, Any]:
        """A sync job's options; the engine (local unless asked or set) is recorded for the job's view."""
        engine = engine or self.settings.sync.engine
        options: dict[str, Any] = {"full": full, "prune": prune, "engine": engine}
        if engine == "ray":
            from service.catalog.distributed import check_address  # a wrong address is a 422 here, not later

            options["address"] = check_address(address or self.settings.sync.ray_address)
        elif address:
            raise InvalidQuery("`address` is the Ray cluster of engine ray; add engine=ray", path="address")
        return options

    def sync(
        self,
        name: str,
        *,
        full: bool = False,
        prune: bool = False,
        engine: str | None = None,
        address: str | None = None,
        on_progress: Callable[[SyncReport], None] | None = None,
    ) -> JobRow:
        """Run one sync to its end in this thread (the CLI without a server); the job records how
        it went. A sync left by a process that died on this host is closed first."""
        self.state.get_source(name)
        options = self._sync_options(full=full, prune=prune, engine=engine, address=address)
        self.jobs.take_over(stale_after_s=self.settings.jobs_stale_after_s)
        waiting = self.jobs.holder(sync_lock(name))
        if waiting is not None and waiting.state == "queued":
            # Nobody serves the queue while the CLI holds the index: this sync takes its place.
            self.jobs.update(
                waiting.id,
                state="failed",
                finished_at=utcnow(),
                detail=(
                    f"{waiting.detail or 'interrupted'}; superseded by a sync started in process {self.owner}"
                ),
            )
        job = self.jobs.create(
            "sync",
            source=name,
            options=options,
            lock_key=sync_lock(name),
            state="running",
            owner=self.owner,
        )
        self._listeners[job.id] = on_progress
        try:
            return execute(self, job)
        finally:
            self._listeners.pop(job.id, None)

    def run_sync(self, ctx: JobContext) -> None:
        """The sync job kind's work: the pipeline, reporting through the job (which can stop it)."""
        name = ctx.job.source
        row = self.state.get_source(name)
        listener = self._listeners.get(ctx.job.id)

        def progress(report: SyncReport) -> None:
            ctx.report(**_sync_fields(report))
            if listener is not None:
                listener(report)

        common: dict[str, Any] = {
            "source": name,
            "connector": registry.build(row.name, row.kind, row.config),
            "index": self.index,
            "encoder": self.encoder,
            "on_progress": progress,
            "on_cursor": lambda c: self.state.set_cursor(name, c),
            "gate": self.searches,
        }
        pipeline: SyncPipeline
        if ctx.options.get("engine", "local") == "ray":
            from service.catalog.distributed import RaySync  # imports ray: only for a distributed sync
            from service.index import vector_name_for

            pipeline = RaySync(
                settings=self.settings,
                address=ctx.options.get("address"),
                kind=row.kind,
                config=row.config,
                vector_name=vector_name_for(self.encoder.model_name, self.encoder.pretrained),
                **common,
            )
        else:
            pipeline = SyncPipeline(settings=self.settings.ingest, **common)
        try:
            report = pipeline.run(
                cursor=row.cursor, full=bool(ctx.options.get("full")), prune=bool(ctx.options.get("prune"))
            )
        finally:
            ctx.remember(**_sync_fields(pipeline.report))  # what it did, however it ended
            self.index.flush()
        if report.added or report.updated:
            self.optimize_soon()

    def optimize_if_behind(self) -> None:
        """At start-up: build the graph for points a previous process left unindexed, or rebuild
        it when the index settings changed (e.g. LOUPE_INDEX__QUANTIZATION)."""
        stats = getattr(self.index, "stats", None)
        if stats is None:
            return  # a Qdrant server indexes by itself
        info = stats()
        behind = info["points"] - info["indexed_vectors"] >= self.settings.index.exact_below
        if behind or (info.get("reconfigured") and info["indexed_vectors"]):
            self.optimize_soon()

    def optimize_soon(self) -> None:
        """Build the search graph in the background; searches keep answering meanwhile.

        Below `exact_below` points a scan is as fast as the graph (a few ms), so
        small catalogs skip the work.
        """
        if not self.settings.index.optimize_after_sync:
            return
        if self.index.count(None) < self.settings.index.exact_below:
            return
        self._optimize_again.set()
        if self._optimizer is not None and self._optimizer.is_alive():
            return
        self._optimizer = threading.Thread(target=self._optimize_loop, name="loupe-optimize", daemon=True)
        self._optimizer.start()

    def _optimize_loop(self) -> None:
        while self._optimize_again.is_set():
            self._optimize_again.clear()
            try:
                self.index.optimize()
            except Exception:
                log.exception("index optimisation failed; searches stay exact")

    # -- assets ----------------------------------------------------------

    def get_asset(self, asset_id: str) -> dict[str, Any]:
        try:
            uuid.UUID(asset_id)
        except ValueError:
            raise AssetNotFound(f"no asset with id {asset_id!r} (asset ids are UUIDs)") from None
        recs = self.index.retrieve([asset_id])
        if not recs:
            raise AssetNotFound(f"no asset with id {asset_id!r}")
        return self._with_scores([asset_from_payload(recs[0].id, recs[0].payload)])[0]

    def _with_scores(self, assets: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The assets with their label sets' `scores` back from the state store (one query)."""
        return label_scores.attach(self.state, assets)

    def list_assets(
        self,
        *,
        filter: dict[str, Any] | None,
        limit: int,
        cursor: str | None,
        order_by: str | None = None,
        order: str = "asc",
    ) -> tuple[list[dict[str, Any]], str | None]:
        """A page of assets in id order, or in the order of `order_by` (service/catalog/ordering.py)."""
        flt = parse_filter(filter)
        if order_by:
            from service.catalog.ordering import orderable_key, ordered_page

            key = orderable_key(self.index, order_by)
            recs, nxt = ordered_page(
                self.index, key=key, descending=order == "desc", filter=flt, limit=limit, cursor=cursor
            )
        else:
            recs, nxt = self.index.scroll(filter=flt, limit=limit, cursor=cursor)
        return self._with_scores([asset_from_payload(r.id, r.payload) for r in recs]), nxt

    def count(self, filter: dict[str, Any] | None) -> int:
        return self.index.count(parse_filter(filter))

    def content(self, asset_id: str) -> tuple[bytes, str]:
        """The asset's bytes and media type, read from its source."""
        asset = self.get_asset(asset_id)
        conn = self.connector(asset["source"])
        record = connectors.AssetRecord(
            key=asset["key"], uri=asset["uri"], version="", media_type=asset["media_type"]
        )
        try:
            blob = conn.fetch(record)
        except AssetError as exc:
            raise AssetNotFound(f"asset {asset_id} cannot be read from its source: {exc.detail}") from None
        return blob.data, blob.media_type or asset["media_type"] or "application/octet-stream"

    def presigned_url(self, asset_id: str, *, expires_s: int) -> str | None:
        asset = self.get_asset(asset_id)
        conn = self.connector(asset["source"])
        if not isinstance(conn, connectors.PresignsUrls):
            return None
        record = connectors.AssetRecord(key=asset["key"], uri=asset["uri"], version="")
        return conn.presigned_url(record, expires_s=expires_s)

    def thumbnail(self, asset_id: str, *, size: int = THUMBNAIL_SIZE) -> bytes:
        data, _ = self.content(asset_id)
        try:
            return thumbnail(data, size=size, max_pixels=self.settings.ingest.max_pixels)
        except AssetError as exc:
            raise AssetNotFound(f"asset {asset_id} has no readable image: {exc.detail}") from None

    def facet(self, field: str, *, filter: dict[str, Any] | None, limit: int) -> list[dict[str, Any]]:
        from service.index.filters import field_key

        counts = self.index.facet(field_key(field), filter=parse_filter(filter), limit=limit)
        return [{"value": c.value, "count": c.count} for c in counts]

    # -- search ----------------------------------------------------------

    def search(
        self, req: SearchRequest, *, images: Sequence[bytes] = ()
    ) -> tuple[list[dict[str, Any]], int | None]:
        """Hits as (id, score, asset) dicts, and the next offset or None."""
        with self.searches.search():
            return self._search(req, images)

    def _search(self, req: SearchRequest, images: Sequence[bytes]) -> tuple[list[dict[str, Any]], int | None]:
        space = resolve_space(self.index, req.space)
        positive, negative = self._examples(req, images, space)
        if not positive:
            raise InvalidQuery(
                "a search needs `text`, `like` asset ids, a `vector` or an example image; "
                "to list assets by filter alone use GET /api/v1/assets"
            )
        flt = self._search_filter(req.filter)
        exclude = set(req.like) | set(req.unlike)
        want = req.offset + req.limit + len(exclude)
        hits = self.index.query(
            positive=positive,
            negative=negative,
            filter=flt,
            limit=want,
            offset=0,
            score_threshold=req.score_threshold,
            using=space.name,
        )
        kept = [h for h in hits if h.id not in exclude]
        page = kept[req.offset : req.offset + req.limit]
        # A full answer from the index means there may be more beyond it.
        more = len(kept) > req.offset + req.limit or len(hits) == want
        assets = self._with_scores([asset_from_payload(h.id, h.payload) for h in page])
        out = [{"id": h.id, "score": float(h.score), "asset": a} for h, a in zip(page, assets, strict=True)]
        nxt = req.offset + req.limit if more and len(page) == req.limit else None
        return out, nxt

    def _search_filter(self, raw: dict[str, Any] | None) -> Filter:
        # Never empty: only_present adds a condition; assets set aside as duplicates stay out too.
        return parse_filter(without_excluded(only_present(raw))) or Filter()

    def _examples(
        self, req: SearchRequest, images: Sequence[bytes], space: VectorSpec
    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        positive: list[np.ndarray] = []
        if space.name != self.index.vector_name and ((req.text and req.text.strip()) or images):
            what = "text" if req.text else "example images"
            raise InvalidQuery(
                f"{what} can only be searched in the encoder's space ({self.index.vector_name!r}): "
                f"{space.name!r} holds vectors the encoder does not make; search it by `like` or `vector`",
                path="text" if req.text else "images",
            )
        if req.text and req.text.strip():
            positive.append(self.encoder.encode_text(req.text))
        if req.vector is not None:
            positive.append(check_vector(req.vector, space, path="vector"))
        positive.extend(self._vectors(req.like, "like", space.name))
        if images:
            decoded = []
            for i, data in enumerate(images):
                try:
                    decoded.append(
                        decode(
                            data, target=self.encoder.image_size, max_pixels=self.settings.ingest.max_pixels
                        ).image
                    )
                except AssetError as exc:
                    raise InvalidQuery(f"example image {i + 1}: {exc.detail}", path=f"images[{i}]") from None
            positive.extend(self.encoder.encode_images(decoded))
        return positive, self._vectors(req.unlike, "unlike", space.name)

    def _vectors(self, ids: Sequence[str], field: str, using: str | None = None) -> list[np.ndarray]:
        if not ids:
            return []
        recs = {r.id: r for r in self.index.retrieve(list(ids), with_vectors=True, using=using)}
        missing = [i for i in ids if i not in recs]
        if missing:
            raise AssetNotFound(f"{field}: no asset with id {missing[0]!r}")
        if using is not None and using != self.index.vector_name:
            lacking = [n for n, i in enumerate(ids) if recs[i].vector is None]
            if lacking:
                n = lacking[0]
                detail = f"asset {ids[n]} has no vector in the space {using!r}"
                raise InvalidQuery(detail, path=f"{field}[{n}]")
        return [recs[i].vector for i in ids if recs[i].vector is not None]  # type: ignore[misc]


def _sync_fields(report: SyncReport) -> dict[str, Any]:
    return {
        "counts": report.counts,
        "progress": report.progress,
        "rate": report.rate,
        "errors": list(report.errors),
        "error_count": report.failed,
        "timings": {k: round(v, 3) for k, v in report.timings.items()},
    }


__all__ = ["Catalog", "SourceError"]
