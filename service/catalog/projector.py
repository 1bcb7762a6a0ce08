"""The embedding projector: every asset's vector laid out in 2-D, computed in the background and cached.

One pass over the index (page by page, vectors and the colourable payload
fields) feeds a streamed reduction (`service/catalog/reduce.py`): UMAP by default
(fitted on a bounded sample, deterministic, the rest placed by `transform` batch
by batch), PCA on request. The result is
cached under `<home>/projector/<method>.npz`.

The points and the colours age apart (`service/catalog/versions.py`). The
points are keyed by a fingerprint of what moves them (vector name, point count,
the last finished sync, import or space sync), so a finished sync makes the
next status request recompute. The colour columns are keyed by what only writes
payload fields (the last finished signal, label import, labeling function or
evaluation, and the names of the fields they made): after one of those the
columns are re-read from the layout's assets, batch by batch, and the reduction
is not run again. While a
sync runs, the previous layout keeps being served, marked stale, so a long
sync does not set off one recomputation per poll. One computation runs at a
time, at a lowered priority.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from service.catalog.fields import FieldInfo, catalog_fields, first, signal_fields, value_at
from service.catalog.layout import Column, Layout, build_column
from service.catalog.reduce import (
    PCA_FIT_SAMPLE,
    UMAP_FIT_SAMPLE,
    PcaReduction,
    Reduction,
    Streamed,
    UmapReduction,
)
from service.catalog.versions import Versions, layout_versions
from service.errors import Conflict, InvalidQuery, LoupeError
from service.index.base import FieldType, Filter, HasVector, Record, VectorIndex
from service.processes import background_priority
from service.state import StateStore
from service.timestamps import rfc3339

log = logging.getLogger(__name__)

PAGE = 2048
METHODS = ("umap", "pca")  # the first is the default
DEFAULT_METHOD = METHODS[0]
# Built-ins worth colouring by; `key`, `filename` and export ids are unique per asset.
COLOUR_BUILTINS = ("source", "media_type", "status", "width", "height", "size_bytes", "modified_at")


def methods() -> list[str]:
    """The layout methods, the default first (umap-learn is a dependency)."""
    return list(METHODS)


def _colourable(info: FieldInfo) -> bool:
    return info.type is not FieldType.text and (info.name in COLOUR_BUILTINS or not info.builtin)


# -- one pass over the index ---------------------------------------------------


class _Stopped(Exception):
    """The projector is closing."""


class _Scan:
    """What one pass over the index collects: ids, raw field values, and the reduced 2-D points.

    The vectors go straight into a `Streamed` reduction (`service/catalog/reduce.py`):
    it holds the first `fit` of them (a uniform sample: the scroll runs in id order and
    asset ids are hashes), fits on them, then places every later batch as it arrives,
    so the scan never holds more than the sample and one batch of full vectors.
    """

    def __init__(self, names: Sequence[str], *, method: str = DEFAULT_METHOD, fit: int | None = None) -> None:
        self.ids: list[bytes] = []
        self.values: dict[str, list[Any]] = {n: [] for n in names}
        reduction: Reduction = UmapReduction(2) if method == "umap" else PcaReduction(2)
        default = UMAP_FIT_SAMPLE if method == "umap" else PCA_FIT_SAMPLE
        self.reduced = Streamed(reduction, fit=fit or default)

    def add(self, records: Sequence[Record]) -> None:
        kept = [r for r in records if r.vector is not None]
        if not kept:
            return
        self.reduced.add(np.stack([np.asarray(r.vector, dtype=np.float32) for r in kept]))
        self.ids.extend(uuid.UUID(r.id).bytes for r in kept)
        _read_values(self.values, [r.payload for r in kept])

    @property
    def count(self) -> int:
        return len(self.ids)

    @property
    def fitted(self) -> int:
        return self.reduced.fitted

    def id_array(self) -> np.ndarray:
        return np.frombuffer(b"".join(self.ids), np.uint8).reshape(-1, 16).copy()

    def xy(self) -> np.ndarray:
        """The 2-D point of every vector added, in scan order."""
        return self.reduced.result()


def _read_values(values: dict[str, list[Any]], payloads: Sequence[dict[str, Any]]) -> None:
    """Append each field's value in each payload to `values` (field -> one value per point)."""
    for name, column in values.items():
        root, _, rest = name.partition(".")
        if not rest:  # a top-level field: one lookup (this loop runs fields x points times)
            column.extend(first(p.get(root)) for p in payloads)
        else:
            column.extend(value_at(p, name) for p in payloads)


def _columns(fields: Sequence[FieldInfo], values: Mapping[str, list[Any]]) -> dict[str, Column]:
    columns = {}
    for info in fields:
        column = build_column(info.name, info.type, values[info.name])
        if column is not None:
            columns[info.name] = column
    return columns


# -- the projector -------------------------------------------------------------


@dataclass(slots=True)
class _Task:
    method: str
    versions: Versions
    space: str | None = None  # a user space's named vector; None = the encoder's
    base: Layout | None = None  # set: re-read the colour columns of this layout; no reduction
    progress: float = 0.0
    thread: threading.Thread | None = None


class Projector:
    """The layouts of one index; computes one at a time in a background thread.

    `derived`: the payload fields the catalog writes beyond the signals' (label sets',
    evaluations'), by name and type, so that the map can colour by them too.
    """

    def __init__(
        self,
        *,
        index: VectorIndex,
        state: StateStore,
        directory: Path,
        derived: Callable[[], Mapping[str, FieldType]] | None = None,
    ) -> None:
        self._index = index
        self._state = state
        self._dir = Path(directory)
        self._derived = derived or dict
        self._lock = threading.Lock()
        self._layouts: dict[str, Layout] = {}
        self._failures: dict[str, tuple[str, str]] = {}  # key -> (both fingerprints, detail)
        self._task: _Task | None = None
        self._stop = threading.Event()
        self.reductions = 0  # reductions run (UMAP or PCA fits), not colour refreshes: tests read it

    def status(self, method: str = DEFAULT_METHOD, space: str | None = None) -> dict[str, Any]:
        """Where the layout of `method` stands; starts computing it when it is missing or out of date.

        `space`: the layout of a user vector space's vectors (its assets only); None = the encoder's.
        """
        _check_method(method)
        key = _key(method, space)
        versions = self._versions(method, space)
        syncing = versions.syncing
        with self._lock:
            layout = self._cached(key)
            failure = self._failures.get(key)
            failed = failure is not None and failure[0] == versions.both
            fresh = layout is not None and layout.fingerprint == versions.points
            coloured = layout is not None and layout.colors_version == versions.colours
            if not failed and self._task is None:
                # During a sync a layout that exists is served as it is (see the module docstring).
                if not fresh and not (syncing and layout is not None):
                    self._start(method, versions, space)
                elif layout is not None and not coloured:
                    self._start(method, versions, space, base=layout)
            task = self._task
        mine = task is not None and _key(task.method, task.space) == key
        state = "ready" if layout is not None else "missing"
        if task is not None:
            state = "computing" if mine else "queued"
        elif failed:
            state = "failed"
        return {
            "method": method,
            "space": space,
            "methods": methods(),
            "state": state,
            "progress": task.progress if task is not None and mine else 0.0,
            "available": layout is not None,
            "stale": layout is not None and not (fresh and coloured),
            "syncing": syncing,
            "detail": failure[1] if failed and failure is not None else None,
            **(_describe(layout) if layout is not None else {"count": 0, "colors": []}),
        }

    def layout(self, method: str = DEFAULT_METHOD, space: str | None = None) -> Layout:
        """The latest layout of `method` (possibly stale); Conflict while there is none yet."""
        _check_method(method)
        with self._lock:
            layout = self._cached(_key(method, space))
            task = self._task
        if layout is None:
            mine = task is not None and _key(task.method, task.space) == _key(method, space)
            where = f" ({task.progress:.0%} done)" if task is not None and mine else ""
            raise Conflict(
                f"the {method} layout is not ready yet{where}; poll GET /api/v1/projector until "
                "`available` is true"
            )
        return layout

    def column(self, method: str, field: str, space: str | None = None) -> tuple[Layout, Column]:
        layout = self.layout(method, space)
        column = layout.columns.get(field)
        if column is None:
            choices = ", ".join(layout.columns) or "none yet"
            raise InvalidQuery(f"no colour column {field!r}; choose one of: {choices}", path="field")
        return layout, column

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            task = self._task
        if task is not None and task.thread is not None:
            task.thread.join(timeout=60)

    # -- inside ----------------------------------------------------------------

    def _versions(self, method: str, space: str | None = None) -> Versions:
        return layout_versions(
            index=self._index, state=self._state, method=method, space=space, fields=self._field_names()
        )

    def _field_names(self) -> list[str]:
        """The derived fields that can be colour columns (cheap: no payload is read)."""
        return [*signal_fields(self._index.indexed_fields()), *self._derived()]

    def _colour_fields(self) -> list[FieldInfo]:
        derived = self._derived()
        return [f for f in catalog_fields(self._index, derived=derived) if _colourable(f)]

    def _path(self, key: str) -> Path:
        return self._dir / f"{key}.npz"

    def _cached(self, key: str) -> Layout | None:
        """The layout in memory, else the one on disk (a restart keeps it); caller holds the lock."""
        layout = self._layouts.get(key)
        if layout is None and self._path(key).exists():
            try:
                layout = self._layouts[key] = Layout.load(self._path(key))
            except Exception:  # an unreadable cache is recomputed, never fatal
                log.warning("ignoring the unreadable projector cache %s", self._path(key), exc_info=True)
        return layout

    def _start(
        self, method: str, versions: Versions, space: str | None = None, *, base: Layout | None = None
    ) -> None:
        task = _Task(method=method, versions=versions, space=space, base=base)
        task.thread = threading.Thread(target=self._run, args=(task,), name=f"loupe-projector-{method}")
        task.thread.daemon = True
        self._task = task
        task.thread.start()

    def _run(self, task: _Task) -> None:
        _lower_priority()
        key = _key(task.method, task.space)
        try:
            layout = self._compute(task) if task.base is None else self._recolour(task, task.base)
            layout.save(self._path(key))  # points and colours together: a restart keeps both
        except _Stopped:
            return
        except Exception as exc:
            log.exception("projector: the %s layout failed", task.method)
            detail = exc.detail if isinstance(exc, LoupeError) else f"{type(exc).__name__}: {exc}"
            with self._lock:
                self._failures[key] = (task.versions.both, detail)
                self._task = None
            return
        with self._lock:
            self._layouts[key] = layout
            self._failures.pop(key, None)
            self._task = None

    def _compute(self, task: _Task) -> Layout:
        started = time.monotonic()
        fields = self._colour_fields()
        scan = self._scan(task, [f.name for f in fields])
        xy = scan.xy()
        self.reductions += 1
        now, seconds = rfc3339(datetime.now(UTC)), round(time.monotonic() - started, 3)
        return Layout(
            method=task.method,
            fingerprint=task.versions.points,
            ids=scan.id_array(),
            xy=xy,
            columns=_columns(fields, scan.values),
            computed_at=now,
            seconds=seconds,
            colors_version=task.versions.colours,
            colors_at=now,
            colors_seconds=seconds,
        )

    def _recolour(self, task: _Task, layout: Layout) -> Layout:
        """`layout` with its colour columns read again from its assets' payloads."""
        started = time.monotonic()
        fields = self._colour_fields()
        values: dict[str, list[Any]] = {f.name: [] for f in fields}
        for payloads in self._payloads(task, layout.ids, sorted({f.name.split(".")[0] for f in fields})):
            _read_values(values, payloads)
        return layout.recoloured(
            _columns(fields, values),
            version=task.versions.colours,
            at=rfc3339(datetime.now(UTC)),
            seconds=round(time.monotonic() - started, 3),
        )

    def _payloads(self, task: _Task, ids: np.ndarray, roots: Sequence[str]) -> Iterable[list[dict[str, Any]]]:
        """The payloads (`roots` only) of the assets `ids` (16-byte rows), in their order, a page at a time;
        an asset deleted since the layout gives an empty payload (no value)."""
        total = max(len(ids), 1)
        for start in range(0, len(ids), PAGE):
            if self._stop.is_set():
                raise _Stopped
            page = [str(uuid.UUID(bytes=row.tobytes())) for row in ids[start : start + PAGE]]
            found = {r.id: r.payload for r in self._index.retrieve(page, fields=roots)} if roots else {}
            yield [found.get(i, {}) for i in page]
            task.progress = min((start + len(page)) / total, 1.0)

    def _scan(self, task: _Task, names: Sequence[str]) -> _Scan:
        scan = _Scan(names, method=task.method)
        roots = sorted({n.split(".")[0] for n in names})
        held = None if task.space is None else Filter(must=[HasVector(task.space)])
        total = max(self._index.count(held), 1)
        cursor: str | None = None
        while True:
            if self._stop.is_set():
                raise _Stopped
            if task.space is None:
                records, cursor = self._index.scroll(
                    limit=PAGE, cursor=cursor, fields=roots, with_vectors=True
                )
            else:  # only the assets with a vector in the space, laid out by it
                named, cursor = self._index.scroll(
                    filter=held, limit=PAGE, cursor=cursor, fields=roots, with_vectors=[task.space]
                )
                records = [Record(r.id, r.payload, r.vectors.get(task.space)) for r in named]
            scan.add(records)
            task.progress = 0.9 * min(scan.count / total, 1.0)
            if cursor is None:
                return scan


def _key(method: str, space: str | None) -> str:
    """The cache name of a layout: the method for the encoder's space (as before spaces existed)."""
    return method if space is None else f"{method}.space-{space}"


def _describe(layout: Layout) -> dict[str, Any]:
    return {
        "count": layout.count,
        "version": layout.fingerprint,
        "computed_at": layout.computed_at,
        "seconds": layout.seconds,
        "view": layout.view,
        "colors": [{"field": c.field, "kind": c.kind} for c in layout.columns.values()],
        "colors_version": layout.colors_version,
        "colors_at": layout.colors_at,
    }


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise InvalidQuery(f"unknown method {method!r}; choose {' or '.join(METHODS)}", path="method")


def _lower_priority() -> None:
    """Layouts are background work: searches and syncs get the CPU first (Linux: this thread only)."""
    background_priority(10)
