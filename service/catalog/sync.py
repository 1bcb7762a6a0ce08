"""The sync pipeline: list -> skip unchanged -> fetch+decode (concurrent) -> encode -> upsert.

Fetching and decoding run in a bounded thread pool ahead of the encoder, so
the encoder (the bottleneck on CPU) always has a batch ready. Batches are
written in listing order, which lets incremental sources save their cursor
after every committed batch: a killed sync resumes where it stopped, and
deterministic ids make any re-run idempotent.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from connectors.base import AssetRecord, Connector
from service.catalog.assets import asset_id, build_payload
from service.catalog.decode import decode
from service.config import IngestSettings
from service.errors import AssetError, LoupeError, SourceError
from service.index.base import Condition, Filter, Point, VectorIndex
from service.index.filters import field_type_of

log = logging.getLogger(__name__)
MAX_REPORTED_ERRORS = 1000
MAX_AUTO_INDEXED_FIELDS = 64
STATE_FIELDS = ("key", "version", "status", "exports")


@dataclass(slots=True)
class SyncReport:
    """Counts, failures and timing of one sync; what the job and the CLI show."""

    seen: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    missing: int = 0
    restored: int = 0
    deleted: int = 0
    failed: int = 0
    total: int = 0
    done: int = 0
    errors: list[dict[str, str]] = field(default_factory=list)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    @property
    def counts(self) -> dict[str, int]:
        return {
            "seen": self.seen,
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "missing": self.missing,
            "failed": self.failed,
        }

    @property
    def progress(self) -> float:
        return 1.0 if self.total == 0 else min(1.0, self.done / self.total)

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    def fail(self, key: str, reason: str) -> None:
        self.failed += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append({"key": key, "reason": reason})

    def timed(self, stage: str, seconds: float) -> None:
        self.stage_seconds[stage] = self.stage_seconds.get(stage, 0.0) + seconds


class Encoder(Protocol):
    """What the pipeline needs of the encoder (ClipEncoder satisfies it)."""

    image_size: int

    def prepare(self, image: Any) -> Any: ...

    def encode_prepared(self, items: Sequence[Any]) -> np.ndarray: ...


@dataclass(slots=True)
class _Work:
    record: AssetRecord
    id: str
    existed: bool
    exports: list[Any]


@dataclass(slots=True)
class _Ready:
    work: _Work
    tensor: Any
    payload: dict[str, Any]


Progress = Callable[[SyncReport], None]


class SyncPipeline:
    """One sync of one source into the index."""

    def __init__(
        self,
        *,
        source: str,
        connector: Connector,
        index: VectorIndex,
        encoder: Encoder,
        settings: IngestSettings,
        on_progress: Progress | None = None,
        on_cursor: Callable[[str], None] | None = None,
    ) -> None:
        self.source = source
        self.connector = connector
        self.index = index
        self.encoder = encoder
        self.settings = settings
        self.on_progress = on_progress or (lambda _r: None)
        self.on_cursor = on_cursor or (lambda _c: None)
        self.report = SyncReport()
        self._indexed = set(index.indexed_fields())

    def run(self, *, cursor: str | None = None, full: bool = False, prune: bool = False) -> SyncReport:
        """Sync the source; raises SourceError when the source as a whole fails."""
        r = self.report
        t = time.monotonic()
        self.connector.check()
        listing = self.connector.list(cursor=None if full else cursor, full=full)
        known = self._known()
        records = list(listing.records)
        r.timed("list", time.monotonic() - t)
        r.total = len(records)
        todo, seen_ids = self._triage(records, known)
        self.on_progress(r)
        self._process(todo)
        if listing.complete:
            self._mark_missing(known, seen_ids, prune=prune)
        r.done = r.total
        self.on_progress(r)
        return r

    # -- stages ----------------------------------------------------------

    def _known(self) -> dict[str, dict[str, Any]]:
        """id -> state fields of every asset of this source already in the index."""
        flt = Filter(must=[Condition(key="source", eq=self.source)])
        out: dict[str, dict[str, Any]] = {}
        cursor: str | None = None
        while True:
            recs, cursor = self.index.scroll(filter=flt, limit=2048, cursor=cursor, fields=STATE_FIELDS)
            out.update((rec.id, rec.payload) for rec in recs)
            if cursor is None:
                return out

    def _triage(
        self, records: list[AssetRecord], known: dict[str, dict[str, Any]]
    ) -> tuple[list[_Work], set[str]]:
        r = self.report
        todo: list[_Work] = []
        seen: set[str] = set()
        restore: list[str] = []
        for rec in records:
            pid = asset_id(self.source, rec.key)
            if pid in seen:
                continue  # a source that lists a key twice
            seen.add(pid)
            r.seen += 1
            state = known.get(pid)
            if state is not None and state.get("version") == rec.version:
                r.unchanged += 1
                r.done += 1
                if state.get("status") != "ok":
                    restore.append(pid)
                continue
            exports = list(state.get("exports") or []) if state else []
            todo.append(_Work(record=rec, id=pid, existed=state is not None, exports=exports))
        if restore:
            self.index.set_payload(restore, {"status": "ok"})
            r.restored += len(restore)
        return todo, seen

    def _process(self, todo: list[_Work]) -> None:
        batch_size = self.settings.batch_size
        batch: list[_Ready] = []
        last_cursor: str | None = None
        for work, ready in self._prepared(todo):
            if ready is not None:
                batch.append(ready)
            if work.record.cursor is not None:
                last_cursor = work.record.cursor
            self.report.done += 1
            if len(batch) >= batch_size:
                self._commit(batch)
                batch = []
                if last_cursor is not None:
                    self.on_cursor(last_cursor)
                self.on_progress(self.report)
        if batch:
            self._commit(batch)
        if last_cursor is not None:
            self.on_cursor(last_cursor)

    def _prepared(self, todo: list[_Work]) -> Iterator[tuple[_Work, _Ready | None]]:
        """Fetch+decode+preprocess ahead of the consumer, yielding in listing order."""
        # A source may bound its own download concurrency (e.g. an S3 source's max_concurrency).
        workers = getattr(getattr(self.connector, "config", None), "max_concurrency", None)
        workers = int(workers or self.settings.fetch_workers)
        ahead = max(self.settings.batch_size * 3, workers * 2)
        pool = ThreadPoolExecutor(workers, thread_name_prefix="loupe-fetch")
        pending: deque[tuple[_Work, Future[_Ready]]] = deque()
        items = iter(todo)
        try:
            for work in _take(items, ahead):
                pending.append((work, pool.submit(self._prepare, work)))
            while pending:
                work, fut = pending.popleft()
                for nxt in _take(items, 1):
                    pending.append((nxt, pool.submit(self._prepare, nxt)))
                yield work, self._result(work, fut)
        finally:
            for _, fut in pending:
                fut.cancel()
            pool.shutdown(wait=True, cancel_futures=True)

    def _result(self, work: _Work, fut: Future[_Ready]) -> _Ready | None:
        try:
            return fut.result()
        except SourceError:
            raise
        except LoupeError as exc:
            self.report.fail(work.record.key, exc.detail)
        except Exception as exc:  # one bad asset never stops a sync
            log.exception("unexpected failure on %s", work.record.key)
            self.report.fail(work.record.key, f"{type(exc).__name__}: {exc}")
        return None

    def _prepare(self, work: _Work) -> _Ready:
        t0 = time.monotonic()
        blob = self.connector.fetch(work.record)
        if len(blob.data) > self.settings.max_bytes:
            raise AssetError(
                f"{len(blob.data):,} bytes is over LOUPE_INGEST__MAX_BYTES={self.settings.max_bytes:,}"
            )
        t1 = time.monotonic()
        decoded = decode(blob.data, target=self.encoder.image_size, max_pixels=self.settings.max_pixels)
        tensor = self.encoder.prepare(decoded.image)
        t2 = time.monotonic()
        self.report.timed("fetch", t1 - t0)
        self.report.timed("decode", t2 - t1)
        payload = build_payload(
            source=self.source,
            record=work.record,
            decoded=decoded,
            extra_metadata=blob.metadata,
            exports=work.exports,
            media_type=blob.media_type,
        )
        return _Ready(work=work, tensor=tensor, payload=payload)

    def _commit(self, batch: list[_Ready]) -> None:
        t0 = time.monotonic()
        vectors = self.encoder.encode_prepared([b.tensor for b in batch])
        t1 = time.monotonic()
        self._ensure_metadata_indexes(batch)
        points = [
            Point(id=b.work.id, vector=vec, payload=b.payload) for b, vec in zip(batch, vectors, strict=True)
        ]
        self.index.upsert(points)
        t2 = time.monotonic()
        self.report.timed("encode", t1 - t0)
        self.report.timed("upsert", t2 - t1)
        for b in batch:
            if b.work.existed:
                self.report.updated += 1
            else:
                self.report.added += 1

    def _ensure_metadata_indexes(self, batch: Iterable[_Ready]) -> None:
        """Index scalar metadata fields as they first appear, so filters and facets stay fast."""
        for ready in batch:
            for name, value in ready.payload["meta"].items():
                key = f"meta.{name}"
                if key in self._indexed or len(self._indexed) >= MAX_AUTO_INDEXED_FIELDS + 16:
                    continue
                kind = field_type_of(value)
                if kind is not None:
                    self.index.ensure_field(key, kind)
                    self._indexed.add(key)

    def _mark_missing(self, known: dict[str, dict[str, Any]], seen: set[str], *, prune: bool) -> None:
        gone = [pid for pid in known if pid not in seen]
        if not gone:
            return
        if prune:
            self.index.delete(gone)
            self.report.deleted = len(gone)
            return
        newly = [pid for pid in gone if known[pid].get("status") != "missing"]
        if newly:
            self.index.set_payload(newly, {"status": "missing"})
        self.report.missing = len(gone)


def _take(items: Iterator[_Work], n: int) -> list[_Work]:
    out = []
    for _ in range(n):
        try:
            out.append(next(items))
        except StopIteration:
            break
    return out
