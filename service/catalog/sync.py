"""The sync pipeline: list -> skip unchanged -> fetch+decode (concurrent) -> encode -> upsert.

Fetching and decoding run in a bounded thread pool ahead of the encoder, so
the encoder (the bottleneck on CPU) always has a batch ready. Batches are
written in listing order, which lets incremental sources save their cursor
after every committed batch: a killed sync resumes where it stopped, and
deterministic ids make any re-run idempotent.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from connectors.base import AssetRecord, Blob, Connector
from service.catalog.assets import asset_id, build_payload
from service.catalog.decode import Decoded, PixelBudget, load, open_image
from service.catalog.priority import SearchGate
from service.config import IngestSettings
from service.errors import AssetError, InvalidQuery, LoupeError, SourceError
from service.index.base import Condition, Filter, Point, VectorIndex
from service.index.filters import RESERVED_ROOTS, field_type_of
from service.index.spaces import check_vector

log = logging.getLogger(__name__)
MAX_REPORTED_ERRORS = 1000
MAX_AUTO_INDEXED_FIELDS = 64
STATE_FIELDS = ("version", "status")
# Payload roots that features write on an asset and a re-embed must keep (the filter roots).
CARRIED_ROOTS: tuple[str, ...] = RESERVED_ROOTS
LIST_CHUNK = 10_000
_TIMINGS_LOCK = threading.Lock()


STAGES = ("list", "read", "decode", "encode", "upsert")


def _zero_timings() -> dict[str, float]:
    return dict.fromkeys(STAGES, 0.0)


@dataclass(slots=True)
class SyncReport:
    """Counts, failures and timing of one sync; what the job and the CLI show.

    `restored` counts assets that were marked missing and are listed again; `deleted`
    those a `prune` sync removed. `timings` maps each stage (list, read, decode, encode,
    upsert) to the wall-clock seconds spent in it, summed over every call of that stage.
    Reads and decodes run in the fetch pool, several at once and while the encoder works,
    so their sums can exceed the sync's elapsed time; list, encode and upsert run one at a
    time on the sync's thread. Waits (for a search, a decode slot, the pixel budget) count
    in no stage.
    """

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
    timings: dict[str, float] = field(default_factory=_zero_timings)
    started: float = field(default_factory=time.monotonic)

    @property
    def counts(self) -> dict[str, int]:
        return {
            "seen": self.seen,
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "missing": self.missing,
            "restored": self.restored,
            "deleted": self.deleted,
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
        # Called from every fetch worker: the lock-free read-add-write of a dict entry
        # could lose an update between two threads.
        with _TIMINGS_LOCK:
            self.timings[stage] = self.timings.get(stage, 0.0) + seconds


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
    was_missing: bool = False  # in the index, marked missing by an earlier sync


@dataclass(slots=True)
class _Ready:
    work: _Work
    tensor: Any
    payload: dict[str, Any]


Progress = Callable[[SyncReport], None]


class SyncPipeline:
    """One sync of one source into the index.

    The distributed engine (service/catalog/distributed.py) subclasses it: listing,
    triage, cursor, missing marks and index writes stay here; only `_process` (fetch,
    decode and encode of the changed assets) runs elsewhere.
    """

    list_chunk = LIST_CHUNK  # records triaged and processed per step; the cursor moves after each

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
        gate: SearchGate | None = None,
    ) -> None:
        self.source = source
        self.connector = connector
        self.index = index
        self.encoder = encoder
        self.settings = settings
        self.on_progress = on_progress or (lambda _r: None)
        self.on_cursor = on_cursor or (lambda _c: None)
        self.report = SyncReport()
        self.gate = gate or SearchGate()
        self._indexed = set(index.indexed_fields())
        # Downloads wait on the network, decodes on the CPU: `decode_workers` may bound the
        # decodes among the fetches in flight.
        bound = settings.decode_workers
        self._decoding = threading.BoundedSemaphore(bound) if bound else contextlib.nullcontext()
        # ... and the pixels decoding at once: memory follows pixels, not the count of decodes.
        self.pixels = PixelBudget(settings.max_pixels_in_flight)

    def run(self, *, cursor: str | None = None, full: bool = False, prune: bool = False) -> SyncReport:
        """Sync the source; raises SourceError when the source as a whole fails.

        The listing streams in chunks, so a million-row source never sits in
        memory and encoding starts while the listing goes on; `report.total`
        grows with it.
        """
        r = self.report
        self.connector.check()
        t = time.monotonic()
        listing = self.connector.list(cursor=None if full else cursor, full=full)
        known = self._known()
        r.timed("list", time.monotonic() - t)
        seen: set[str] = set()
        records = iter(listing.records)
        while True:
            t = time.monotonic()
            chunk = list(itertools.islice(records, self.list_chunk))
            r.timed("list", time.monotonic() - t)
            if not chunk:
                break
            r.total += len(chunk)
            self._process(self._triage(chunk, known, seen))
            last = next((rec.cursor for rec in reversed(chunk) if rec.cursor is not None), None)
            if last is not None:
                self.on_cursor(last)  # everything up to here is committed
            self.on_progress(r)
        if listing.complete:
            self._mark_missing(known, seen, prune=prune)
        r.done = r.total
        self.on_progress(r)
        return r

    # -- stages ----------------------------------------------------------

    def _known(self) -> dict[str, tuple[str, bool]]:
        """id -> (version, status is ok) of every asset of this source already in the index."""
        flt = Filter(must=[Condition(key="source", eq=self.source)])
        out: dict[str, tuple[str, bool]] = {}
        cursor: str | None = None
        while True:
            recs, cursor = self.index.scroll(filter=flt, limit=4096, cursor=cursor, fields=STATE_FIELDS)
            for rec in recs:
                out[rec.id] = (str(rec.payload.get("version")), rec.payload.get("status") == "ok")
            if cursor is None:
                return out

    def _triage(
        self, records: list[AssetRecord], known: dict[str, tuple[str, bool]], seen: set[str]
    ) -> list[_Work]:
        r = self.report
        todo: list[_Work] = []
        restore: list[str] = []
        for rec in records:
            pid = asset_id(self.source, rec.key)
            if pid in seen:
                r.total -= 1
                continue  # a source that lists a key twice
            seen.add(pid)
            r.seen += 1
            state = known.get(pid)
            if state is not None and state[0] == rec.version:
                r.unchanged += 1
                r.done += 1
                if not state[1]:
                    restore.append(pid)
                continue
            todo.append(
                _Work(
                    record=rec,
                    id=pid,
                    existed=state is not None,
                    was_missing=state is not None and not state[1],
                )
            )
        if restore:
            self.index.set_payload(restore, {"status": "ok"})
            r.restored += len(restore)
        return todo

    def _process(self, todo: list[_Work]) -> None:
        batch_size = self.settings.batch_size
        batch: list[_Ready] = []
        for _work, ready in self._prepared(todo):
            if ready is not None:
                batch.append(ready)
            self.report.done += 1
            if len(batch) >= batch_size:
                self._commit(batch)
                batch = []
                self.on_progress(self.report)
        if batch:
            self._commit(batch)

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
        self.gate.yield_to_searches()
        t0 = time.monotonic()
        blob = fetch_checked(self.connector, work.record, max_bytes=self.settings.max_bytes)
        t1 = time.monotonic()
        self.gate.yield_to_searches()
        t1g = time.monotonic()
        target = self.encoder.image_size
        opened = open_image(blob.data, target=target, max_pixels=self.settings.max_pixels)
        t1h = time.monotonic()
        # Time spent waiting for pixels or a decode slot counts as neither read nor decode.
        with self.pixels.hold(opened.pixels), self._decoding:
            t1w = time.monotonic()
            decoded = load(opened, target=target)
            tensor = self.encoder.prepare(decoded.image)
            t2 = time.monotonic()
        self.report.timed("read", t1 - t0)
        self.report.timed("decode", (t1h - t1g) + (t2 - t1w))
        return _Ready(
            work=work, tensor=tensor, payload=asset_payload(self.source, work.record, decoded, blob)
        )

    def _commit(self, batch: list[_Ready]) -> None:
        self.gate.yield_to_searches()
        t0 = time.monotonic()
        vectors = self.encoder.encode_prepared([b.tensor for b in batch])
        t1 = time.monotonic()
        t1u = time.monotonic() if self.gate.yield_to_searches() else t1  # a wait is neither stage
        self._write(batch, vectors)
        t2 = time.monotonic()
        self.report.timed("encode", t1 - t0)
        self.report.timed("upsert", t2 - t1u)
        self._count_written(batch)

    def _write(self, batch: list[_Ready], vectors: Sequence[np.ndarray] | np.ndarray) -> None:
        """Upsert one encoded batch, keeping what the index already holds on re-embedded assets."""
        self._carry_exports(batch)
        carried = self._carry_vectors(batch)
        self._ensure_metadata_indexes(batch)
        points = [
            Point(id=b.work.id, vector=vec, payload=b.payload, vectors=carried.get(b.work.id, {}))
            for b, vec in zip(batch, vectors, strict=True)
        ]
        self.index.upsert(points)

    def _carry_vectors(self, batch: list[_Ready]) -> dict[str, dict[str, np.ndarray]]:
        """A re-embedded asset keeps its vectors in the other spaces (an upsert replaces the whole
        point); the source changed it, so they are marked stale (`vectors_stale`) until replaced."""
        own = self.index.vector_name
        others = [name for name in self.index.vector_specs() if name != own]
        for b in batch:
            b.payload["vectors"], b.payload["vectors_stale"] = [own], []
        existed = [b.work.id for b in batch if b.work.existed]
        kept: dict[str, dict[str, np.ndarray]] = {}
        if others and existed:
            kept = {r.id: r.vectors for r in self.index.retrieve(existed, with_vectors=others)}
        for b in batch:
            spaces = sorted(kept.get(b.work.id) or {})
            if spaces:
                b.payload["vectors"], b.payload["vectors_stale"] = [own, *spaces], spaces
            if b.work.record.vectors:
                self._source_vectors(b, kept.setdefault(b.work.id, {}))
        return kept

    def _source_vectors(self, b: _Ready, vectors: dict[str, np.ndarray]) -> None:
        """Vectors the source carries (the sql connector's vector column): fresh, not stale."""
        specs = self.index.vector_specs()
        for space, raw in b.work.record.vectors.items():
            spec = specs.get(space)
            try:
                if spec is None or space == self.index.vector_name:
                    raise InvalidQuery(f"no user vector space named {space!r}; create it first")
                vectors[space] = check_vector(raw, spec, path=f"vector_space {space}")
            except InvalidQuery as exc:  # the image syncs; its vector is reported
                self.report.fail(b.work.record.key, exc.detail)
                continue
            if space not in b.payload["vectors"]:
                b.payload["vectors"].append(space)
            b.payload["vectors_stale"] = [s for s in b.payload["vectors_stale"] if s != space]

    def _count_written(self, batch: Iterable[_Ready]) -> None:
        for b in batch:
            if b.work.existed:
                self.report.updated += 1
            else:
                self.report.added += 1
            self.report.restored += b.work.was_missing  # listed again, and changed meanwhile

    def _carry_exports(self, batch: list[_Ready]) -> None:
        """A re-embedded asset keeps what features wrote on it: where it was exported, its labels,
        evaluation outcomes, signals and selections (CARRIED_ROOTS); only the file's facts change."""
        existed = [b.work.id for b in batch if b.work.existed]
        if not existed:
            return
        previous = {rec.id: rec.payload for rec in self.index.retrieve(existed)}
        for b in batch:
            old = previous.get(b.work.id) or {}
            for root in CARRIED_ROOTS:
                if old.get(root):
                    mine = b.payload.get(root)
                    # What the new bytes say (signals.sha256) wins over what was carried.
                    merge = isinstance(mine, dict) and isinstance(old[root], dict)
                    b.payload[root] = {**old[root], **mine} if merge else old[root]  # type: ignore[dict-item]

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

    def _mark_missing(self, known: dict[str, tuple[str, bool]], seen: set[str], *, prune: bool) -> None:
        gone = [pid for pid in known if pid not in seen]
        if not gone:
            return
        if prune:
            self.index.delete(gone)
            self.report.deleted = len(gone)
            return
        # Anything not ok (i.e. missing already) needs no new write.
        newly = [pid for pid in gone if known[pid][1]]
        if newly:
            self.index.set_payload(newly, {"status": "missing"})
        self.report.missing = len(gone)


def fetch_checked(connector: Connector, record: AssetRecord, *, max_bytes: int) -> Blob:
    """The asset's bytes; AssetError when they are over LOUPE_INGEST__MAX_BYTES."""
    blob = connector.fetch(record)
    if len(blob.data) > max_bytes:
        raise AssetError(f"{len(blob.data):,} bytes is over LOUPE_INGEST__MAX_BYTES={max_bytes:,}")
    return blob


def asset_payload(source: str, record: AssetRecord, decoded: Decoded, blob: Blob) -> dict[str, Any]:
    """The index payload of a decoded asset (exports and other features' fields are carried at write time)."""
    payload = build_payload(
        source=source,
        record=record,
        decoded=decoded,
        extra_metadata=blob.metadata,
        exports=[],
        media_type=blob.media_type,
    )
    # The content hash of the bytes as fetched: exact duplicates share it (service/signals).
    payload["signals"] = {"sha256": hashlib.sha256(blob.data).hexdigest()}
    return payload


def _take(items: Iterator[_Work], n: int) -> list[_Work]:
    out = []
    for _ in range(n):
        try:
            out.append(next(items))
        except StopIteration:
            break
    return out
